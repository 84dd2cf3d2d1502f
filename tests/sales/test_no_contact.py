"""Deals whose client has had no contact for the pipeline's number of days: one reminder per
silence, a new contact starts a new count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from rapport.activities.models import Notification, Task
from rapport.activities.services import interaction_log
from rapport.core.errors import FieldErrors
from rapport.core.events import outbox_dispatch
from rapport.core.models import OutboxEvent
from rapport.sales.models import Deal
from rapport.sales.services import deals_mark_silent, pipeline_save


def _days(n: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(days=n)


@pytest.fixture
def quiet_deal(alice, admin_user, pipelines, make_deal, make_company):
    pipeline_save(actor=admin_user, pipeline=pipelines["free"], data={"no_contact_days": 3})
    company = make_company(alice, "Quiet Client")
    deal = make_deal(alice, "Quiet supply", pipeline=pipelines["free"], company_id=company.pk)
    Deal.objects.filter(pk=deal.pk).update(created_at=_days(-10))
    return deal


def _events(deal):
    return OutboxEvent.objects.filter(name="deal.stalled", object_id=deal.pk)


def test_a_client_silent_longer_than_the_pipeline_allows_gets_one_reminder(alice, quiet_deal):
    assert deals_mark_silent() == 1
    assert deals_mark_silent() == 0  # once per silence
    (event,) = _events(quiet_deal)
    assert event.payload["reason"] == "no_contact"
    assert event.payload["days_without_contact"] == 10
    outbox_dispatch()
    note = Notification.objects.get(user=alice, kind="deal_stalled")
    assert "no contact with the client for 10 days" in note.title
    assert Task.objects.filter(deal=quiet_deal, responsible=alice).count() == 1


def test_a_call_with_the_client_resets_the_count(alice, quiet_deal):
    interaction_log(
        actor=alice,
        data={"kind": "call", "status": "done", "at": _days(-1),
              "company_id": quiet_deal.company_id},
    )  # fmt: skip
    quiet_deal.refresh_from_db()
    assert quiet_deal.last_contact_at is not None
    assert deals_mark_silent() == 0
    assert deals_mark_silent(now=_days(3)) == 1  # silent again for 4 days


def test_a_note_is_not_contact_with_the_client(alice, quiet_deal):
    interaction_log(
        actor=alice,
        data={"kind": "note", "body": "thinking", "company_id": quiet_deal.company_id},
    )
    assert deals_mark_silent() == 1


def test_a_new_silence_after_a_contact_gets_a_new_reminder(alice, quiet_deal):
    assert deals_mark_silent() == 1
    interaction_log(
        actor=alice,
        data={"kind": "email", "status": "done", "at": timezone.now(), "deal_id": quiet_deal.pk},
    )
    assert deals_mark_silent(now=_days(2)) == 0
    assert deals_mark_silent(now=_days(4)) == 1
    assert _events(quiet_deal).count() == 2


def test_pipelines_without_the_setting_and_closed_deals_are_left_alone(
    alice, admin_user, pipelines, quiet_deal
):
    pipeline_save(actor=admin_user, pipeline=pipelines["free"], data={"no_contact_days": ""})
    assert deals_mark_silent() == 0


def test_the_number_of_days_is_checked(admin_user, pipelines):
    with pytest.raises(FieldErrors) as exc:
        pipeline_save(actor=admin_user, pipeline=pipelines["free"], data={"no_contact_days": 0})
    assert "no_contact_days" in exc.value.errors
