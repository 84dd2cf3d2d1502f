"""No TOCTOU on round-robin (reliability item 25): concurrent routing never takes one turn
twice; two workers running the absence job start an absence once. Threads with their own
database connections; meaningful on PostgreSQL (SQLite's in-memory test database cannot be
shared by threads, and its file databases serialise writers anyway)."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone

from rapport.routing.models import RoutingCursor

pytestmark = pytest.mark.django_db(transaction=True)


def _skip_on_memory_sqlite() -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("threads cannot share one in-memory SQLite test database")


def _run_together(workers: list[Callable[[], None]]) -> list[BaseException]:
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(work: Callable[[], None]) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_leads_never_take_the_same_round_robin_turn(sales, rule, new_lead):
    _skip_on_memory_sqlite()
    from rapport.routing.services import lead_assign_by_routing
    from rapport.sales.models import Lead

    routing = rule(name="Sales", target_team_id=sales["team"].pk, method="round_robin")
    leads = [new_lead(f"Visitor {i}") for i in range(30)]
    batches = [leads[i::6] for i in range(6)]

    def worker(batch: list[Any]) -> Callable[[], None]:
        def work() -> None:
            for lead in batch:
                lead_assign_by_routing(lead=lead)

        return work

    assert _run_together([worker(b) for b in batches]) == []
    counts = Counter(
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).values_list(
            "responsible__username", flat=True
        )
    )
    assert counts == {"anna": 10, "boris": 10, "vera": 10}
    assert RoutingCursor.objects.get(key=f"rule:{routing.pk}").turns == 30


def test_two_workers_running_the_absence_job_start_an_absence_once(sales):
    _skip_on_memory_sqlite()
    from rapport.activities.models import Notification
    from rapport.activities.services import task_create
    from rapport.routing.models import Absence, Handover
    from rapport.routing.services import absence_create, absences_due

    anna, vera = sales["anna"], sales["vera"]
    for i in range(5):
        task_create(actor=anna, data={"title": f"Task {i}"})
    now = timezone.now()
    absence = absence_create(
        actor=anna,
        data={
            "starts_at": now + dt.timedelta(hours=1),
            "ends_at": now + dt.timedelta(days=3),
            "deputy_id": vera.pk,
        },
    )
    due = now + dt.timedelta(hours=2)
    assert _run_together([lambda: absences_due(now=due) and None for _ in range(4)]) == []
    absence.refresh_from_db()
    assert absence.status == "active"
    assert Handover.objects.filter(absence=absence).count() == 5
    assert (
        Notification.objects.filter(key__startswith=f"absence_handover:{absence.pk}").count() == 1
    )
    assert Absence.objects.filter(pk=absence.pk, started_at__isnull=False).count() == 1
