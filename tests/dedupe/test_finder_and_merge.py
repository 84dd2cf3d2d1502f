"""Finding duplicates already in the base, merging them field by field, and undoing it."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from rapport.activities.services import task_create
from rapport.core.errors import PermissionDenied
from rapport.core.events import outbox_dispatch
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.dedupe import finder, selectors, services
from rapport.dedupe.models import DuplicatePair, PairStatus
from rapport.parties.models import Company, Employment, Person
from rapport.parties.services import company_create, person_create, person_update


def _person(actor, first, last, **data):
    return person_create(
        actor=actor, data={"first_name": first, "last_name": last, **data}, force=True
    )


@pytest.fixture
def twins(alice):
    """The same client entered twice, differently, plus a colleague sharing the switchboard."""
    acme = company_create(actor=alice, data={"short_name": "ООО Ромашка"})
    a = _person(
        alice, "Иван", "Иванов", phones=[{"raw": "+7 912 000-11-22"}],
        emails=[{"raw": "ivan@romashka.ru"}], city="Тула",
        employments=[{"company_id": acme.pk, "position": "Директор"}],
    )  # fmt: skip
    b = _person(
        alice, "Ivan", "Ivanov", phones=[{"raw": "8 (495) 111-22-33"}],
        emails=[{"raw": "ivan@romashka.ru"}], birthday="1980-05-01",
    )  # fmt: skip
    colleague = _person(alice, "Анна", "Сидорова", phones=[{"raw": "8 (495) 111-22-33"}])
    return {"a": a, "b": b, "colleague": colleague, "acme": acme}


def test_the_scan_finds_the_same_client_entered_twice_and_not_the_colleague(alice, twins):
    finder.scan("person")
    found = selectors.clusters(user=alice, object_type="person")
    assert len(found) == 1
    cluster = found[0]
    assert {m.pk for m in cluster.members} == {twins["a"].pk, twins["b"].pk}
    assert cluster.score >= 95
    assert "email" in cluster.reason_codes


def test_a_typo_in_a_name_with_the_same_phone_is_found(alice):
    a = _person(alice, "Мария", "Кузнецова", phones=[{"raw": "+7 912 555-66-77"}])
    b = _person(alice, "Мария", "Кузнецава", phones=[{"raw": "+7 912 555-66-77"}])
    finder.scan("person")
    pair = DuplicatePair.objects.get()
    assert (pair.a_id, pair.b_id) == (a.pk, b.pk)
    assert "phone" in pair.reasons


def test_companies_with_the_same_tax_id_are_one_and_different_tax_ids_are_two(alice):
    a = company_create(actor=alice, data={"short_name": "Ромашка ООО", "tax_id": "7707083893"},
                       force=True)  # fmt: skip
    b = company_create(actor=alice, data={"short_name": "ООО «Ромашка»", "tax_id": "7707083893"},
                       force=True)  # fmt: skip
    company_create(actor=alice, data={"short_name": "Ромашка", "tax_id": "500100732259"},
                   force=True)  # fmt: skip
    finder.scan("company")
    assert list(DuplicatePair.objects.values_list("a_id", "b_id", "score")) == [(a.pk, b.pk, 100)]


def test_new_records_are_checked_as_they_are_created(alice, twins):
    outbox_dispatch()
    assert DuplicatePair.objects.filter(
        object_type="person", a_id=twins["a"].pk, b_id=twins["b"].pk
    ).exists()


def test_another_teams_records_are_not_shown_in_clusters(carol, twins):
    finder.scan("person")
    assert selectors.clusters(user=carol, object_type="person") == []


def test_merging_keeps_chosen_values_and_moves_everything_to_the_survivor(alice, twins):
    a, b = twins["a"], twins["b"]
    task = task_create(actor=alice, data={"title": "Call Ivan", "person_id": b.pk})
    record = services.merge(
        actor=alice, object_type="person", survivor_id=a.pk, merged_id=b.pk,
        keep={"first_name": "survivor", "city": "survivor"},
    )  # fmt: skip
    a.refresh_from_db()
    b.refresh_from_db()
    assert b.deleted_at is not None  # in the recycle bin
    assert (a.first_name, a.city) == ("Иван", "Тула")
    assert a.birthday.isoformat() == "1980-05-01"  # an empty field is filled from the other
    phones = set(a.contact_points.filter(channel="phone").values_list("value", flat=True))
    assert phones == {"+79120001122", "+74951112233"}
    assert a.contact_points.filter(channel="email").count() == 1
    task.refresh_from_db()
    assert task.person_id == a.pk
    assert AuditEntry.objects.filter(object_type="person", object_id=a.pk, action="merge").exists()
    assert DuplicatePair.objects.filter(status=PairStatus.MERGED).count() <= 1
    assert record.moved


def test_the_merged_records_company_link_moves_unless_the_survivor_has_it(alice, twins):
    a, b, acme = twins["a"], twins["b"], twins["acme"]
    person_update(actor=alice, person=b, data={"employments": [{"company_id": acme.pk}]})
    services.merge(actor=alice, object_type="person", survivor_id=b.pk, merged_id=a.pk)
    assert list(Employment.objects.filter(person=b).values_list("company_id", flat=True)) == [
        acme.pk
    ]
    assert not Employment.objects.filter(person=a).exists()


def test_undo_puts_both_records_back_as_they_were(alice, twins):
    a, b = twins["a"], twins["b"]
    task = task_create(actor=alice, data={"title": "Call Ivan", "person_id": b.pk})
    job = Employment.objects.get(person=a)
    record = services.merge(
        actor=alice, object_type="person", survivor_id=b.pk, merged_id=a.pk,
        keep={"first_name": "merged", "last_name": "merged"},
    )  # fmt: skip
    b.refresh_from_db()
    assert (b.last_name, b.first_name) == ("Иванов", "Иван")
    services.merge_undo(actor=alice, record=record)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.deleted_at is None
    assert (b.last_name, b.first_name, b.city) == ("Ivanov", "Ivan", "")
    assert set(b.contact_points.values_list("value", flat=True)) == {
        "+74951112233", "ivan@romashka.ru"
    }  # fmt: skip
    assert Employment.objects.get(pk=job.pk).person_id == a.pk
    task.refresh_from_db()
    assert task.person_id == b.pk


def test_a_rep_cannot_merge_a_colleagues_record(bob, alice, twins):
    with pytest.raises(PermissionDenied):
        services.merge(
            actor=bob, object_type="person", survivor_id=twins["a"].pk, merged_id=twins["b"].pk
        )
    assert Person.objects.filter(deleted_at__isnull=True).count() == 3


def test_the_merge_page_shows_both_records_and_merges_on_submit(alice, twins, client_for):
    client = client_for(alice)
    a, b = twins["a"], twins["b"]
    url = reverse("duplicate-merge", args=["person", a.pk, b.pk])
    page = client.get(url).content.decode()
    assert "Иванов" in page
    assert "Ivanov" in page
    assert 'name="keep_first_name"' in page
    response = client.post(
        url, {"survivor": str(b.pk), "keep_first_name": "a", "keep_last_name": "a"}
    )
    assert response.status_code == 302
    b.refresh_from_db()
    assert (b.last_name, b.first_name) == ("Иванов", "Иван")
    assert Person.objects.get(pk=a.pk).deleted_at is not None


def test_the_list_page_shows_clusters_and_not_duplicates_hides_a_pair(alice, twins, client_for):
    finder.scan("person")
    client = client_for(alice)
    page = client.get(reverse("duplicate-list") + "?type=person").content.decode()
    assert 'class="cluster"' in page
    a, b = twins["a"], twins["b"]
    client.post(reverse("duplicate-dismiss", args=["person", a.pk, b.pk]))
    assert 'class="cluster"' not in client.get(reverse("duplicate-list")).content.decode()
    finder.scan("person")  # a later scan keeps the verdict
    assert DuplicatePair.objects.get().status == PairStatus.DISMISSED


def test_the_cli_lists_clusters_as_json(alice, admin_user, twins):
    out = StringIO()
    call_command(
        "duplicates", "--target", "people", "--scan", "--json", stdout=out, stderr=StringIO()
    )
    clusters = json.loads(out.getvalue())
    assert len(clusters) == 1
    assert {r["id"] for r in clusters[0]["records"]} == {twins["a"].pk, twins["b"].pk}
    assert Company.objects.count() == 1


def test_an_undone_merge_leaves_both_records_at_their_versions_before(alice, twins):
    a, b = twins["a"], twins["b"]
    versions = (a.version, b.version)
    record = services.merge(
        actor=alice, object_type="person", survivor_id=a.pk, merged_id=b.pk,
        keep={"last_name": "merged"},
    )  # fmt: skip
    services.merge_undo(actor=alice, record=record)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.version, b.version) == versions
    assert (a.last_name, b.deleted_at) == ("Иванов", None)
    assert OutboxEvent.objects.filter(name="person.merge_undone", object_id=a.pk).exists()


def test_an_imported_record_merged_and_unmerged_is_still_removed_by_the_import_undo(
    alice, tmp_path, settings
):
    from rapport.imports import services as imports

    settings.MEDIA_ROOT = tmp_path
    mine = _person(alice, "Онисим", "Блохен", phones=[{"raw": "+7 495 123-45-67"}], city="Тула")
    path = tmp_path / "clients.csv"
    path.write_text(
        "ФИО;Телефон;E-mail\nБлохин Анисим Петрович;+7 912 418-56-19;anisim@example.ru\n",
        encoding="utf-8",
    )
    run = imports.run_create(
        actor=alice, source=path, file_name=path.name, target="people", default_region="RU"
    )
    run = imports.run_execute(run.pk, actor=alice)
    imported = Person.objects.exclude(pk=mine.pk).get()
    record = services.merge(
        actor=alice, object_type="person", survivor_id=mine.pk, merged_id=imported.pk,
        keep={"first_name": "merged", "last_name": "merged"},
    )  # fmt: skip
    mine.refresh_from_db()
    assert (mine.last_name, mine.first_name, mine.middle_name) == ("Блохин", "Анисим", "Петрович")
    services.merge_undo(actor=alice, record=record)

    result = imports.run_undo(actor=alice, run=run)
    assert (result.removed, result.restored, result.kept) == (1, 0, [])
    assert list(Person.objects.values_list("pk", "first_name", "last_name", "city")) == [
        (mine.pk, "Онисим", "Блохен", "Тула")
    ]
    assert list(mine.contact_points.values_list("value", flat=True)) == ["+74951234567"]


def test_the_merge_page_refuses_a_record_changed_since_it_was_opened(alice, twins, client_for):
    client = client_for(alice)
    a, b = twins["a"], twins["b"]
    url = reverse("duplicate-merge", args=["person", a.pk, b.pk])
    page = client.get(url).content.decode()
    assert f'name="a_version" value="{a.version}"' in page
    person_update(actor=alice, person=b, data={"city": "Тверь"})  # someone edits meanwhile
    response = client.post(
        url, {"survivor": str(a.pk), "a_version": a.version, "b_version": b.version,
              "keep_city": "b"},
    )  # fmt: skip
    assert response.status_code == 422
    assert "changed after this page was opened" in response.content.decode()
    assert Person.objects.get(pk=b.pk).deleted_at is None


def test_the_list_page_says_why_records_look_alike(alice, twins, client_for):
    finder.scan("person")
    page = client_for(alice).get(reverse("duplicate-list") + "?type=person").content.decode()
    assert 'data-reason="email"' in page
    assert "same email" in page


def test_a_scan_from_the_page_is_recorded_with_its_status(admin_user, twins, client_for):
    from rapport.dedupe import jobs
    from rapport.dedupe.models import DuplicateScan

    response = client_for(admin_user).post(reverse("duplicate-scan"), {"type": "person"})
    assert response.status_code == 302
    scan = DuplicateScan.objects.get()
    assert (scan.object_type, scan.status, scan.requested_by_id) == (
        "person", "queued", admin_user.pk
    )  # fmt: skip
    assert jobs.scan_run(scan.pk) == "done"
    assert jobs.scan_run(scan.pk) == "done"  # a second delivery does not run it again
    scan.refresh_from_db()
    assert scan.pairs_found >= 1
    assert AuditEntry.objects.filter(object_type="duplicate_scan", object_id=scan.pk).exists()


def test_a_name_held_by_many_people_with_nothing_else_in_common_makes_no_cluster(alice):
    # given more people called "Иван Иванов" than a name can tell apart, and one "Иванв"
    for _ in range(finder.NAME_CAP + 1):
        _person(alice, "Иван", "Иванов")
    _person(alice, "Иван", "Иванв")
    # and a rare name entered twice, once with a typo
    a = _person(alice, "Мария", "Кузнецова")
    b = _person(alice, "Мария", "Кузнецава")

    stored = finder.scan("person")

    # then only the rare name's pair is a likely duplicate
    assert list(DuplicatePair.objects.values_list("a_id", "b_id")) == [(a.pk, b.pk)]
    assert stored == 1


def test_a_second_scan_stores_nothing_twice_and_counts_only_new_pairs(alice, twins):
    assert finder.scan("person") == 1
    assert finder.scan("person") == 0
    assert DuplicatePair.objects.count() == 1


def test_a_typo_early_in_a_name_is_found_by_the_reversed_order_once(alice):
    # given two spellings of one name, with more names than the window sorted between them
    a = _person(alice, "Aaronson", "Smithson")
    b = _person(alice, "Baronson", "Smithson")
    firsts = ["Abbot", "Abel", "Acton", "Adair", "Adler", "Agnew", "Ainsley", "Alden",
              "Alford", "Allard", "Alton"]  # fmt: skip
    lasts = ["Wolfe", "Xiong", "Young", "Zhang", "Quinn", "Price", "Ortiz", "Nunez", "Moore",
             "Lopez", "Kelly"]  # fmt: skip
    for first, last in zip(firsts, lasts, strict=True):
        _person(alice, first, last)
    assert len(firsts) > finder.WINDOW

    stored = finder.scan("person")

    assert list(DuplicatePair.objects.values_list("a_id", "b_id")) == [(a.pk, b.pk)]
    assert stored == 1
