"""Events through the outbox: at-least-once delivery, handlers keyed so a replay changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rapport.core import events
from rapport.core.models import HandlerRun, OutboxEvent


@pytest.fixture
def recorder(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(events, "_HANDLERS", [])

    @events.handler("company.*", key="test.recorder")
    def record(event):
        calls.append(event.pk)

    return calls


def test_the_worker_delivers_each_event_to_matching_handlers(
    alice, make_company, make_person, recorder
):
    company = make_company(alice, "Acme")
    make_person(alice)
    assert events.outbox_dispatch() == 2
    assert recorder == list(
        OutboxEvent.objects.filter(object_type="company", object_id=company.pk).values_list(
            "id", flat=True
        )
    )
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"done"}


def test_a_worker_killed_mid_event_loses_nothing_after_its_lease_expires(
    alice, make_company, recorder
):
    make_company(alice, "Acme")
    claimed = events.outbox_claim(claimer="worker-that-dies")
    assert len(claimed) == 1
    # the worker is killed here: the event is claimed but never processed
    assert events.outbox_claim(claimer="second-worker") == []  # still leased
    OutboxEvent.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    assert events.outbox_dispatch() == 1
    assert recorder == [claimed[0].pk]


def test_replaying_an_event_does_not_run_a_finished_handler_twice(alice, make_company, recorder):
    make_company(alice, "Acme")
    events.outbox_dispatch()
    OutboxEvent.objects.update(status="pending", available_at=timezone.now())  # as if re-queued
    events.outbox_dispatch()
    assert len(recorder) == 1
    assert HandlerRun.objects.count() == 1


def test_a_failing_handler_is_retried_with_backoff_then_marked_failed(
    alice, make_company, monkeypatch, settings
):
    monkeypatch.setattr(events, "_HANDLERS", [])
    settings.OUTBOX_MAX_ATTEMPTS = 2

    @events.handler("company.created", key="test.flaky")
    def flaky(event):
        raise ValueError("remote down")

    make_company(alice, "Acme")
    events.outbox_dispatch()
    event = OutboxEvent.objects.get()
    assert event.status == "pending"
    assert event.attempts == 1
    assert "remote down" in event.last_error
    assert event.available_at > timezone.now()
    OutboxEvent.objects.update(available_at=timezone.now())
    events.outbox_dispatch()
    assert OutboxEvent.objects.get().status == "failed"


def test_the_worker_task_entry_point_dispatches(alice, make_company, recorder):
    from rapport.core.tasks import outbox_dispatch

    make_company(alice, "Acme")
    assert outbox_dispatch() == 1
