"""Files on records: attached by those who may edit, downloaded by those who may see."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_a_manager_attaches_a_file_to_a_deal_and_downloads_it(alice, make_deal, client_for):
    deal = make_deal(alice, "Racks")
    client = client_for(alice)
    upload = SimpleUploadedFile("offer.pdf", b"%PDF-1.4 offer", content_type="application/pdf")
    r = client.post(reverse("attachment-add", args=["deal", deal.pk]), {"file": upload})
    assert r.status_code == 302
    page = client.get(reverse("deal-detail", args=[deal.pk]) + "?tab=files").content.decode()
    assert "offer.pdf" in page
    from rapport.core.models import Attachment, AuditEntry

    att = Attachment.objects.get(object_type="deal", object_id=deal.pk)
    got = client.get(reverse("attachment-download", args=[att.pk]))
    assert b"".join(got.streaming_content) == b"%PDF-1.4 offer"
    assert got["Content-Disposition"].startswith("attachment")
    assert AuditEntry.objects.filter(
        object_type="deal", object_id=deal.pk, changes__has_key="files"
    )


def test_another_team_cannot_see_download_or_attach(alice, carol, make_company, client_for):
    company = make_company(alice, "Secret Co")
    from rapport.core.attachments import attachment_add

    att = attachment_add(
        actor=alice,
        object_type="company",
        record=company,
        upload=SimpleUploadedFile("plan.txt", b"secret plan"),
    )
    client = client_for(carol)
    assert client.get(reverse("attachment-download", args=[att.pk])).status_code == 404
    assert client.post(reverse("attachment-remove", args=[att.pk])).status_code == 404
    upload = SimpleUploadedFile("x.txt", b"x")
    r = client.post(reverse("attachment-add", args=["company", company.pk]), {"file": upload})
    assert r.status_code == 404


def test_an_empty_or_too_large_file_is_refused_by_name(alice, make_deal, settings):
    from rapport.core.attachments import attachment_add
    from rapport.core.errors import FieldErrors

    deal = make_deal(alice, "Racks")
    with pytest.raises(FieldErrors, match="empty.txt"):
        attachment_add(
            actor=alice,
            object_type="deal",
            record=deal,
            upload=SimpleUploadedFile("empty.txt", b""),
        )
    settings.ATTACHMENT_MAX_MB = 0
    with pytest.raises(FieldErrors, match="big.bin"):
        attachment_add(
            actor=alice, object_type="deal", record=deal, upload=SimpleUploadedFile("big.bin", b"1")
        )


def test_a_removed_file_leaves_the_list_but_stays_in_the_history(alice, make_deal, client_for):
    from rapport.core.attachments import attachment_add
    from rapport.core.models import AuditEntry

    deal = make_deal(alice, "Racks")
    att = attachment_add(
        actor=alice, object_type="deal", record=deal, upload=SimpleUploadedFile("a.txt", b"a")
    )
    client = client_for(alice)
    assert client.post(reverse("attachment-remove", args=[att.pk])).status_code == 302
    att.refresh_from_db()
    assert att.deleted_at is not None
    assert att.file.storage.exists(att.file.name)
    assert AuditEntry.objects.filter(changes__files=["a.txt", None]).exists()
