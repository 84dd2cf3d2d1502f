"""Absences: validation, the start hands work over (audited, with handovers, the deputy
notified), the end offers it back, take-back all or per item, and the worker's job runs each
start and end exactly once, catching up after downtime."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from rapport.activities.models import Notification, Task
from rapport.activities.services import task_complete, task_create, task_update
from rapport.core.errors import FieldErrors
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.routing.models import Absence, Handover
from rapport.routing.services import (
    absence_cancel,
    absence_create,
    absence_take_back,
    absence_update,
    absences_due,
)
from rapport.sales.models import Deal, Lead

NOW = timezone.now().replace(microsecond=0)
DAY = dt.timedelta(days=1)


@pytest.fixture
def anna_work(sales, make_deal, make_lead) -> dict[str, Any]:
    """Anna's open work: two tasks (one done), a lead, a deal due next week, one due later."""
    anna = sales["anna"]
    open_task = task_create(actor=anna, data={"title": "Call Olga"})
    done = task_create(actor=anna, data={"title": "Old call"})
    task_complete(actor=anna, task=done)
    lead = make_lead(anna, "Roma Fiori")
    soon = make_deal(anna, "Due soon", expected_close=(NOW + 5 * DAY).date().isoformat())
    later = make_deal(anna, "Due later", expected_close=(NOW + 60 * DAY).date().isoformat())
    return {"task": open_task, "done": done, "lead": lead, "soon": soon, "later": later}


def _vacation(user: Any, deputy: Any = None, *, start: dt.datetime, days: int = 14) -> Absence:
    return absence_create(
        actor=user,
        data={
            "starts_at": start,
            "ends_at": start + days * DAY,
            "deputy_id": deputy.pk if deputy else None,
        },
        now=start - DAY if start > NOW else NOW,
    )


def test_an_absence_refuses_bad_dates_and_deputies_naming_the_field(sales, away):
    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    start = NOW + DAY
    cases = [
        ({"starts_at": start, "ends_at": start - DAY}, "ends_at", "The end must be after"),
        ({"starts_at": start, "ends_at": start + DAY, "deputy_id": anna.pk}, "deputy_id",
         "someone else"),
        ({"starts_at": NOW - 2 * DAY, "ends_at": start}, "starts_at", "unplanned"),
        ({"ends_at": start}, "starts_at", "Give the start"),
        ({"starts_at": "next tuesday", "ends_at": start}, "starts_at", "YYYY-MM-DD"),
    ]  # fmt: skip
    for data, field, words in cases:
        with pytest.raises(FieldErrors) as exc:
            absence_create(actor=anna, data=data)
        assert field in exc.value.errors, data
        assert words in exc.value.errors[field][0], exc.value.errors
    away(boris, hours=24 * 30)  # Boris is away for a month: he cannot stand in
    with pytest.raises(FieldErrors) as exc:
        absence_create(
            actor=anna, data={"starts_at": start, "ends_at": start + DAY, "deputy_id": boris.pk}
        )
    assert "The deputy is away too then" in exc.value.errors["deputy_id"][0]
    absence_create(actor=anna, data={"starts_at": start, "ends_at": start + DAY})
    with pytest.raises(FieldErrors) as exc:
        absence_create(actor=anna, data={"starts_at": start + dt.timedelta(hours=2),
                                         "ends_at": start + 3 * DAY})  # fmt: skip
    assert "overlaps another absence" in exc.value.errors["starts_at"][0]
    assert Absence.objects.filter(user=vera).count() == 0


def test_a_rep_cannot_record_an_absence_for_someone_else_but_a_manager_can_for_the_team(
    sales, alice, bob, carol
):
    start = NOW + DAY
    with pytest.raises(FieldErrors) as exc:
        absence_create(
            actor=bob, data={"user_id": alice.pk, "starts_at": start, "ends_at": start + DAY}
        )
    assert "user_id" in exc.value.errors
    absence = absence_create(
        actor=alice, data={"user_id": bob.pk, "starts_at": start, "ends_at": start + DAY}
    )
    assert absence.user == bob
    with pytest.raises(FieldErrors):
        absence_create(
            actor=alice, data={"user_id": carol.pk, "starts_at": start, "ends_at": start + DAY}
        )


def test_the_start_hands_open_work_to_the_deputy_audited_with_handovers(sales, anna_work):
    anna, vera = sales["anna"], sales["vera"]
    start = NOW + DAY
    absence = _vacation(anna, vera, start=start)
    assert absence.status == "scheduled"
    assert absences_due(now=start - dt.timedelta(minutes=1)) == 0  # not yet
    assert absences_due(now=start) == 1
    absence.refresh_from_db()
    assert absence.status == "active"
    moved = {(h.object_type, h.object_id) for h in absence.handovers.all()}
    assert moved == {
        ("task", anna_work["task"].pk),
        ("lead", anna_work["lead"].pk),
        ("deal", anna_work["soon"].pk),
    }
    assert Task.objects.get(pk=anna_work["task"].pk).responsible == vera
    assert Lead.objects.get(pk=anna_work["lead"].pk).responsible == vera
    assert Deal.objects.get(pk=anna_work["soon"].pk).responsible == vera
    assert Deal.objects.get(pk=anna_work["later"].pk).responsible == anna  # due after the return
    assert Task.objects.get(pk=anna_work["done"].pk).responsible == anna  # closed stays
    for object_type, key in (("task", "task"), ("lead", "lead"), ("deal", "soon")):
        entry = AuditEntry.objects.filter(
            object_type=object_type, object_id=anna_work[key].pk, action="update"
        ).latest("id")
        assert entry.changes["responsible"] == [anna.pk, vera.pk]
    note = Notification.objects.get(key=f"absence_handover:{absence.pk}:{vera.pk}")
    assert "3 items handed over to you" in note.title
    assert OutboxEvent.objects.filter(name="absence.started", object_id=absence.pk).count() == 1


def test_without_a_deputy_the_work_goes_to_the_least_busy_present_colleague(sales, anna_work):
    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    task_create(actor=vera, data={"title": "Vera is busy"})
    absence = _vacation(anna, start=NOW + DAY)
    absences_due(now=NOW + DAY)
    receivers = [h.to_user for h in absence.handovers.order_by("id")]
    # boris 0, vera 1 → boris; then 1-1 → boris (lower id); then boris 2, vera 1 → vera
    assert receivers == [boris, boris, vera]


def test_the_end_notifies_the_user_with_a_link_to_take_back(sales, anna_work):
    anna, vera = sales["anna"], sales["vera"]
    absence = _vacation(anna, vera, start=NOW + DAY, days=7)
    absences_due(now=NOW + DAY)
    assert absences_due(now=NOW + 8 * DAY) == 1
    absence.refresh_from_db()
    assert absence.status == "ended"
    note = Notification.objects.get(user=anna, key=f"absence_return:{absence.pk}")
    assert note.title.startswith("Welcome back: 3 items were handed over")
    assert note.url == f"/absences/{absence.pk}/take-back/"


def test_take_back_all_returns_only_what_is_still_open_and_with_the_deputy(sales, anna_work, alice):
    from rapport.sales.services import deal_win

    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    absence = _vacation(anna, vera, start=NOW + DAY, days=7)
    absences_due(now=NOW + DAY)
    deal_win(
        actor=None, deal=Deal.objects.get(pk=anna_work["soon"].pk), amount="500"
    )  # closed meanwhile
    task_update(  # passed on to Boris meanwhile
        actor=None,
        task=Task.objects.get(pk=anna_work["task"].pk),
        data={"responsible_id": boris.pk},
    )
    absences_due(now=NOW + 8 * DAY)
    result = absence_take_back(actor=anna, absence=absence)
    assert [(h.object_type, h.object_id) for h in result.taken] == [("lead", anna_work["lead"].pk)]
    kept = {h.object_type: why for h, why in result.kept}
    assert kept["deal"].startswith("it is closed")
    assert kept["task"] == "it is now with Boris"
    assert Lead.objects.get(pk=anna_work["lead"].pk).responsible == anna
    assert Task.objects.get(pk=anna_work["task"].pk).responsible == boris
    entry = AuditEntry.objects.filter(object_type="lead", object_id=anna_work["lead"].pk).latest(
        "id"
    )
    assert entry.changes["responsible"] == [vera.pk, anna.pk]
    again = absence_take_back(actor=anna, absence=absence)
    assert again.taken == []
    assert {why for _h, why in again.kept} >= {"already taken back"}


def test_take_back_per_item_leaves_the_rest_with_the_deputy(sales, anna_work):
    anna, vera = sales["anna"], sales["vera"]
    absence = _vacation(anna, vera, start=NOW + DAY, days=7)
    absences_due(now=NOW + DAY)
    absences_due(now=NOW + 8 * DAY)
    task_h = absence.handovers.get(object_type="task")
    result = absence_take_back(actor=anna, absence=absence, handover_ids=[task_h.pk])
    assert [h.pk for h in result.taken] == [task_h.pk]
    assert Task.objects.get(pk=anna_work["task"].pk).responsible == anna
    assert Lead.objects.get(pk=anna_work["lead"].pk).responsible == vera
    assert Handover.objects.filter(absence=absence, returned_at__isnull=True).count() == 2


def test_someone_else_cannot_take_back_another_users_work(sales, anna_work):
    from rapport.core.errors import PermissionDenied

    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    absence = _vacation(anna, vera, start=NOW + DAY, days=7)
    absences_due(now=NOW + DAY)
    with pytest.raises(PermissionDenied):
        absence_take_back(actor=boris, absence=absence)


def test_the_job_catches_up_after_downtime_and_runs_each_start_and_end_once(sales, anna_work):
    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    # Scheduled while the worker was running; then the worker was down for three weeks.
    over = _vacation(boris, start=NOW + DAY, days=2)  # came and went while down
    under_way = _vacation(anna, vera, start=NOW + 10 * DAY, days=30)  # started while down
    later = NOW + 21 * DAY
    assert absences_due(now=later) == 2
    assert absences_due(now=later) == 0  # a second run does nothing
    over.refresh_from_db()
    under_way.refresh_from_db()
    assert over.status == "ended"
    assert over.handovers.count() == 0  # nothing to hand over for an absence already over
    assert under_way.status == "active"
    assert under_way.handovers.count() == 3
    assert (
        Notification.objects.filter(key__startswith=f"absence_handover:{under_way.pk}:").count()
        == 1
    )
    assert absences_due(now=NOW + 41 * DAY) == 1
    assert absences_due(now=NOW + 41 * DAY) == 0
    assert Notification.objects.filter(key=f"absence_return:{under_way.pk}").count() == 1
    starts = AuditEntry.objects.filter(object_type="absence", object_id=under_way.pk)
    assert [e.changes.get("status") for e in starts.order_by("id")][1:] == [
        ["scheduled", "active"],
        ["active", "ended"],
    ]


def test_an_unplanned_absence_starts_now(sales, anna_work):
    anna, vera = sales["anna"], sales["vera"]
    absence = absence_create(
        actor=anna,
        data={"kind": "unplanned", "ends_at": timezone.now() + 3 * DAY, "deputy_id": vera.pk},
    )
    assert absence.status == "active"
    assert {h.object_type for h in absence.handovers.all()} == {"task", "lead"}
    assert Lead.objects.get(pk=anna_work["lead"].pk).responsible == vera
    assert Deal.objects.get(pk=anna_work["soon"].pk).responsible == anna  # due after 3 days


def test_cancel_a_scheduled_absence_and_end_one_under_way_now(sales, anna_work):
    anna, vera = sales["anna"], sales["vera"]
    planned = _vacation(anna, vera, start=NOW + 30 * DAY)
    assert absence_cancel(actor=anna, absence=planned).status == "cancelled"
    assert absences_due(now=NOW + 31 * DAY) == 0
    sick = absence_create(
        actor=anna,
        data={"kind": "unplanned", "ends_at": timezone.now() + DAY, "deputy_id": vera.pk},
    )
    ended = absence_cancel(actor=anna, absence=sick)
    assert ended.status == "ended"
    assert Notification.objects.filter(key=f"absence_return:{sick.pk}").count() == 1
    with pytest.raises(FieldErrors):
        absence_cancel(actor=anna, absence=sick)


def test_a_started_absence_may_change_its_end_but_not_its_deputy(sales, anna_work):
    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    sick = absence_create(
        actor=anna,
        data={"kind": "unplanned", "ends_at": timezone.now() + DAY, "deputy_id": vera.pk},
    )
    longer = absence_update(actor=anna, absence=sick, data={"ends_at": timezone.now() + 5 * DAY})
    assert longer.ends_at > sick.ends_at
    with pytest.raises(FieldErrors) as exc:
        absence_update(actor=anna, absence=sick, data={"deputy_id": boris.pk})
    assert "deputy_id" in exc.value.errors
