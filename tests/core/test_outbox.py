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


def test_a_worker_killed_after_a_handler_committed_does_not_get_it_run_twice(
    alice, make_company, recorder
):
    make_company(alice, "Acme")
    (claimed,) = events.outbox_claim(claimer="worker-that-dies")
    assert claimed.first_claim  # straight from "pending": nothing can have run yet
    ((name, func),) = events.handlers_for(claimed.name)
    assert events._run_one(claimed, name, func) is None  # committed, then the worker is killed
    OutboxEvent.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    (again,) = events.outbox_claim(claimer="second-worker")
    assert not again.first_claim  # taken over from a dead worker: its runs are looked up
    events.outbox_process_batch([again])
    assert recorder == [claimed.pk]
    assert HandlerRun.objects.count() == 1


def test_a_claim_takes_expired_leases_first_then_the_oldest_waiting_events(db):
    now = timezone.now()
    later = _company_event("later")
    dead = _company_event("held by a dead worker")
    older = _company_event("older")
    OutboxEvent.objects.filter(pk=later.pk).update(available_at=now - timedelta(seconds=1))
    OutboxEvent.objects.filter(pk=older.pk).update(available_at=now - timedelta(seconds=5))
    OutboxEvent.objects.filter(pk=dead.pk).update(
        status="claimed", lease_until=now - timedelta(seconds=1), claimed_by="dead"
    )
    assert [e.pk for e in events.outbox_claim(limit=1)] == [dead.pk]
    assert [e.pk for e in events.outbox_claim(limit=1)] == [older.pk]
    assert [e.pk for e in events.outbox_claim(limit=5)] == [later.pk]


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


# --- handlers that take a claim's events together -------------------------------------------


@pytest.fixture
def batched(db, monkeypatch):
    """A batch handler on company events that hands back the companies named "Slow…" to
    be done one by one, recording which path handled what."""
    monkeypatch.setattr(events, "_HANDLERS", [])
    seen: dict[str, list[int]] = {"batch": [], "one": []}

    def one(event):
        seen["one"].append(event.pk)

    @events.batch_handler("company.*", key="test.batched", one=one)
    def many(batch):
        seen["batch"].extend(e.pk for e in batch)
        slow = set(
            OutboxEvent.objects.filter(
                pk__in=[e.pk for e in batch], payload__name__startswith="Slow"
            ).values_list("pk", flat=True)
        )
        return [e for e in batch if e.pk in slow]

    return seen


def _company_event(name: str) -> OutboxEvent:
    return OutboxEvent.objects.create(
        name="company.created",
        object_type="company",
        object_id=1,
        payload={"name": name},
        available_at=timezone.now(),
    )


def test_a_batch_handler_takes_a_claim_at_once_and_hands_back_work_to_do_one_by_one(batched):
    quick, slow, other = _company_event("Acme"), _company_event("Slow Ltd"), _company_event("Bee")
    assert events.outbox_dispatch() == 3
    assert batched["batch"] == [quick.pk, slow.pk, other.pk]
    assert batched["one"] == [slow.pk]
    assert HandlerRun.objects.filter(handler="test.batched").count() == 3
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"done"}


def test_a_replayed_claim_runs_neither_path_again(batched):
    _company_event("Acme"), _company_event("Slow Ltd")
    events.outbox_dispatch()
    OutboxEvent.objects.update(status="pending", available_at=timezone.now())
    events.outbox_dispatch()
    assert len(batched["batch"]) == 2
    assert len(batched["one"]) == 1
    assert HandlerRun.objects.count() == 2


def test_when_a_batch_fails_each_event_is_handled_alone_and_only_the_bad_one_is_retried(
    db, monkeypatch
):
    monkeypatch.setattr(events, "_HANDLERS", [])

    def one(event):  # its effect is a row in the database
        if event.payload["name"] == "Bad":
            raise ValueError("cannot handle Bad")
        HandlerRun.objects.create(event=event, handler="effect")

    @events.batch_handler("company.*", key="test.fragile", one=one)
    def many(batch):
        for event in batch:
            one(event)
        return []

    _company_event("Acme"), _company_event("Bad"), _company_event("Bee")
    events.outbox_dispatch()
    effects = HandlerRun.objects.filter(handler="effect")
    # the failed batch left nothing behind: each good event's effect is there once
    assert sorted(effects.values_list("event__payload__name", flat=True)) == ["Acme", "Bee"]
    statuses = dict(OutboxEvent.objects.values_list("payload__name", "status"))
    assert statuses == {"Acme": "done", "Bad": "pending", "Bee": "done"}
    assert "cannot handle Bad" in OutboxEvent.objects.get(payload__name="Bad").last_error


def test_every_event_sees_its_handlers_in_the_order_they_were_registered(db, monkeypatch):
    monkeypatch.setattr(events, "_HANDLERS", [])
    order: list[tuple[str, str]] = []

    @events.handler("company.*", key="test.first")
    def first(event):
        order.append(("first", event.payload["name"]))

    @events.batch_handler("company.*", key="test.second", one=lambda e: None)
    def second(batch):
        order.extend(("second", e.payload["name"]) for e in batch)
        return []

    _company_event("Acme"), _company_event("Bee")
    events.outbox_dispatch()
    for name in ("Acme", "Bee"):
        assert order.index(("first", name)) < order.index(("second", name))


def test_handled_events_leave_the_outbox_after_the_keep_period_failed_ones_stay(
    alice, make_company, recorder, settings
):
    settings.OUTBOX_KEEP_DAYS = 7
    for name in ("Old", "Recent", "Broken"):
        make_company(alice, name)
    events.outbox_dispatch()
    week_ago = timezone.now() - timedelta(days=8)
    old, recent, broken = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk__in=[old.pk, broken.pk]).update(
        available_at=week_ago, processed_at=week_ago
    )
    OutboxEvent.objects.filter(pk=broken.pk).update(status="failed")
    assert events.outbox_prune() == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {recent.pk, broken.pk}
    assert not HandlerRun.objects.filter(event_id=old.pk).exists()
    settings.OUTBOX_KEEP_DAYS = 0
    OutboxEvent.objects.update(status="done", available_at=week_ago, processed_at=week_ago)
    assert events.outbox_prune() == 0


def test_a_batch_handler_with_nothing_to_do_for_an_event_leaves_no_trace_of_it(db, monkeypatch):
    monkeypatch.setattr(events, "_HANDLERS", [])
    seen: list[str] = []

    @events.batch_handler(
        "company.*",
        key="test.picky",
        one=lambda e: None,
        wants=lambda e: e.payload["name"] != "Skip",
    )
    def many(batch):
        seen.extend(e.payload["name"] for e in batch)
        return []

    _company_event("Acme"), _company_event("Skip"), _company_event("Bee")
    events.outbox_dispatch()
    assert seen == ["Acme", "Bee"]
    names = HandlerRun.objects.order_by("id").values_list("event__payload__name", flat=True)
    assert list(names) == ["Acme", "Bee"]
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {"done"}


def test_a_claim_of_one_event_goes_straight_to_its_own_path(batched):
    event = _company_event("Acme")
    events.outbox_dispatch()
    assert batched == {"batch": [], "one": [event.pk]}  # no batch transaction for one event
