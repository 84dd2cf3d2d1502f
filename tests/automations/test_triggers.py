"""Every trigger of the rule engine fires from its real event, and only from it.

Record triggers fire from the services' own outbox events (dispatched as the worker would);
date and schedule triggers fire from the worker's clock (``rules_clock(now=...)``) at the
configured local time, exactly once per occurrence, catching up after downtime within the
catch-up window and never retroactively for a rule created after the moment.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from rapport.activities.services import (
    interaction_log,
    interaction_update,
    reminders_due,
    task_create,
    task_update,
)
from rapport.automations.engine import CATCH_UP_DAYS, rules_clock
from rapport.automations.models import Rule, RuleRun, RunOutcome
from rapport.automations.services import rule_save, rule_set_active
from rapport.automations.triggers import TRIGGERS
from rapport.core.errors import FieldErrors
from rapport.core.events import event_record
from rapport.parties.services import company_update, person_update
from rapport.sales.services import (
    deal_lose,
    deal_move,
    deal_update,
    deal_win,
    deals_mark_stalled,
    lead_convert,
    lead_update,
)

DAY = dt.timedelta(days=1)


def _rule(admin: Any, trigger: str, config: dict[str, Any] | None = None, **extra: Any) -> Rule:
    """A rule that notifies the administrator, so it works with and without a record."""
    return rule_save(
        actor=admin,
        data={
            "name": f"On {trigger} {config or ''}",
            "trigger": trigger,
            "trigger_config": config or {},
            "actions": [
                {
                    "type": "notify",
                    "params": {"who": "user", "user_id": admin.pk, "title": f"{trigger} fired"},
                }
            ],
            **extra,
        },
    )


def _fired(rule: Rule) -> list[Any]:
    """The records (ids, None for no record) the rule acted on, oldest run first."""
    runs = RuleRun.objects.filter(rule=rule).order_by("id")
    assert all(r.outcome == RunOutcome.DONE for r in runs), [r.outcome for r in runs]
    return [r.object_id for r in runs]


def _occurrences(rule: Rule) -> list[str]:
    return list(
        RuleRun.objects.filter(rule=rule).order_by("id").values_list("occurrence", flat=True)
    )


def _local(day: dt.date, hh: int = 0, mm: int = 0) -> dt.datetime:
    """A wall-clock moment in the organisation's time zone."""
    return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))


def _moment_key(day: dt.date, hh: int, mm: int = 0) -> str:
    """The occurrence key of a schedule's moment (kept in UTC)."""
    return f"s{_local(day, hh, mm).astimezone(dt.UTC):%Y%m%d%H%M}"


def _looked_until(rule: Rule, moment: dt.datetime) -> None:
    """The scheduler last looked at ``moment`` (a rule saved long ago, or a worker that was
    down since then)."""
    Rule.objects.filter(pk=rule.pk).update(checked_until=moment)


# --- the registry -----------------------------------------------------------------------------


def test_the_trigger_registry_holds_every_trigger_the_issue_lists():
    record = {
        f"{ot}.{what}"
        for ot in ("company", "person", "lead", "deal", "task", "interaction")
        for what in ("created", "updated", "field_changed")
    }
    special = {
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "deal.stalled",
        "lead.converted",
        "email.received",
        "email.sent",
        "call.incoming",
        "call.missed",
        "task.overdue",
        "date",
        "schedule",
        "kpi.crossed",
    }
    assert set(TRIGGERS) == record | special


# --- created / updated / a field changed, for each record type --------------------------------


def _company(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = ctx["make_company"](ctx["alice"], "Acme")
    return (
        obj,
        lambda o: company_update(actor=ctx["alice"], company=o, data={"city": "Kazan"}),
        lambda o: company_update(actor=ctx["alice"], company=o, data={"industry": "Retail"}),
    )


def _person(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = ctx["make_person"](ctx["alice"], "Ivan", "Petrov")
    return (
        obj,
        lambda o: person_update(actor=ctx["alice"], person=o, data={"notes": "met at a fair"}),
        lambda o: person_update(actor=ctx["alice"], person=o, data={"city": "Kazan"}),
    )


def _lead(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = ctx["make_lead"](ctx["alice"], "Maria Rossi")
    return (
        obj,
        lambda o: lead_update(actor=ctx["alice"], lead=o, data={"text": "call back"}),
        lambda o: lead_update(actor=ctx["alice"], lead=o, data={"interest": "Boilers"}),
    )


def _deal(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = ctx["make_deal"](ctx["alice"], "Acme order")
    return (
        obj,
        lambda o: deal_update(actor=ctx["alice"], deal=o, data={"amount": "500"}),
        lambda o: deal_update(actor=ctx["alice"], deal=o, data={"source": "tender"}),
    )


def _task(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = task_create(actor=ctx["alice"], data={"title": "Call Ivan"})
    return (
        obj,
        lambda o: task_update(actor=ctx["alice"], task=o, data={"description": "about boilers"}),
        lambda o: task_update(actor=ctx["alice"], task=o, data={"status": "in_progress"}),
    )


def _interaction(ctx: dict[str, Any]) -> tuple[Any, Any, Any]:
    obj = interaction_log(actor=ctx["alice"], data={"kind": "note", "body": "Met Ivan"})
    return (
        obj,
        lambda o: interaction_update(actor=ctx["alice"], interaction=o, data={"body": "Met him"}),
        lambda o: interaction_update(actor=ctx["alice"], interaction=o, data={"result": "Agreed"}),
    )


RECORDS = {
    # object type: (how to make and change one, the watched field, the value it changes to)
    "company": (_company, "industry", "retail"),  # compared ignoring case
    "person": (_person, "city", "Kazan"),
    "lead": (_lead, "interest", "Boilers"),
    "deal": (_deal, "source", "tender"),
    "task": (_task, "status", "in_progress"),
    "interaction": (_interaction, "result", "Agreed"),
}


@pytest.mark.parametrize("object_type", list(RECORDS))
def test_created_updated_and_field_changed_fire_from_the_record_services_events(
    object_type, admin_user, alice, make_company, make_person, make_lead, make_deal, dispatch
):
    make, field, to = RECORDS[object_type]
    created = _rule(admin_user, f"{object_type}.created")
    updated = _rule(admin_user, f"{object_type}.updated")
    any_change = _rule(admin_user, f"{object_type}.field_changed", {"field": field})
    to_value = _rule(admin_user, f"{object_type}.field_changed", {"field": field, "to": to})
    ctx = {
        "alice": alice,
        "make_company": make_company,
        "make_person": make_person,
        "make_lead": make_lead,
        "make_deal": make_deal,
    }
    obj, change_other, change_watched = make(ctx)
    dispatch()
    assert _fired(created) == [obj.pk]
    assert _fired(updated) == []
    obj = change_other(obj)
    dispatch()
    assert _fired(created) == [obj.pk]
    assert _fired(updated) == [obj.pk]
    assert _fired(any_change) == []  # another field changed
    change_watched(obj)
    dispatch()
    assert _fired(created) == [obj.pk]
    assert _fired(updated) == [obj.pk, obj.pk]
    assert _fired(any_change) == [obj.pk]
    assert _fired(to_value) == [obj.pk]
    run = RuleRun.objects.get(rule=to_value)
    assert run.event_name == f"{object_type}.updated"
    assert run.object_type == object_type


def test_a_field_change_to_another_value_does_not_fire_the_to_value_rule(
    admin_user, alice, make_deal, dispatch
):
    rule = _rule(admin_user, "deal.field_changed", {"field": "source", "to": "tender"})
    deal = make_deal(alice, "Acme order", source="website")
    deal = deal_update(actor=alice, deal=deal, data={"source": "fair"})
    dispatch()
    assert _fired(rule) == []
    deal = deal_update(actor=alice, deal=deal, data={"source": "Tender"})
    dispatch()
    assert _fired(rule) == [deal.pk]


def test_a_custom_field_change_fires_the_field_changed_rule(admin_user, alice, make_deal, dispatch):
    from rapport.core.models import CustomFieldDefinition

    CustomFieldDefinition.objects.create(
        object_type="deal", name="segment", label="Segment", type="choice", choices=["smb", "key"]
    )
    rule = _rule(admin_user, "deal.field_changed", {"field": "custom.segment", "to": "key"})
    deal = make_deal(alice, "Acme order", custom_fields={"segment": "smb"})
    deal = deal_update(actor=alice, deal=deal, data={"custom_fields": {"segment": "key"}})
    dispatch()
    assert _fired(rule) == [deal.pk]


# --- deals: stage changes, won, lost, stalled -------------------------------------------------


def test_stage_changed_fires_on_every_move_and_on_the_target_stage_only_when_one_is_set(
    admin_user, alice, make_deal, pipelines, dispatch
):
    _new, talks, offer = pipelines["free_stages"]
    any_stage = _rule(admin_user, "deal.stage_changed")
    to_offer = _rule(admin_user, "deal.stage_changed", {"to_stage": offer.pk})
    deal = make_deal(alice, "Acme order")
    dispatch()
    assert _fired(any_stage) == []  # creation is not a stage change
    deal = deal_move(actor=alice, deal=deal, stage=talks)
    dispatch()
    assert _fired(any_stage) == [deal.pk]
    assert _fired(to_offer) == []
    deal_move(actor=alice, deal=deal, stage=offer)
    dispatch()
    assert _fired(any_stage) == [deal.pk, deal.pk]
    assert _fired(to_offer) == [deal.pk]


def test_a_stage_changed_rule_refuses_a_stage_that_does_not_exist(admin_user):
    with pytest.raises(FieldErrors) as caught:
        _rule(admin_user, "deal.stage_changed", {"to_stage": 987654})
    assert "trigger_config.to_stage" in caught.value.errors


def test_won_and_lost_fire_for_their_own_outcome(admin_user, alice, make_deal, pipelines, dispatch):
    won = _rule(admin_user, "deal.won")
    lost = _rule(admin_user, "deal.lost")
    winner = make_deal(alice, "Winner", amount="1000")
    loser = make_deal(alice, "Loser", amount="1000")
    deal_win(actor=alice, deal=winner)
    deal_lose(actor=alice, deal=loser, reason_id=pipelines["price"].pk)
    dispatch()
    assert _fired(won) == [winner.pk]
    assert _fired(lost) == [loser.pk]


def test_stalled_fires_once_when_the_stage_time_limit_runs_out(
    admin_user, alice, make_deal, pipelines, dispatch
):
    _lead_stage, qualified, *_rest = pipelines["strict_stages"]  # Qualified: 48 hours
    rule = _rule(admin_user, "deal.stalled")
    deal = make_deal(alice, "Slow one", pipeline=pipelines["strict"])
    deal = deal_move(actor=alice, deal=deal, stage=qualified)
    dispatch()
    assert deals_mark_stalled(now=timezone.now() + dt.timedelta(hours=47)) == 0
    dispatch()
    assert _fired(rule) == []
    assert deals_mark_stalled(now=timezone.now() + dt.timedelta(hours=49)) == 1
    dispatch()
    assert _fired(rule) == [deal.pk]
    assert deals_mark_stalled(now=timezone.now() + dt.timedelta(hours=72)) == 0  # once per stay
    dispatch()
    assert _fired(rule) == [deal.pk]


def test_lead_converted_fires_when_the_lead_becomes_a_deal(admin_user, alice, make_lead, dispatch):
    converted = _rule(admin_user, "lead.converted")
    lead = make_lead(alice, "Maria Rossi", interest="Boilers")
    dispatch()
    assert _fired(converted) == []
    deal = lead_convert(actor=alice, lead=lead)
    dispatch()
    assert _fired(converted) == [lead.pk]
    assert deal.lead_id == lead.pk


# --- emails and calls -------------------------------------------------------------------------


def test_emails_and_calls_fire_their_own_triggers_from_logged_interactions(
    admin_user, alice, make_person, dispatch
):
    ivan = make_person(alice, "Ivan", "Petrov")
    received = _rule(admin_user, "email.received")
    sent = _rule(admin_user, "email.sent")
    incoming = _rule(admin_user, "call.incoming")
    missed = _rule(admin_user, "call.missed")

    def log(**data: Any) -> Any:
        return interaction_log(actor=alice, data={"person_id": ivan.pk, **data})

    email_in = log(kind="email", direction="in", subject="Question")
    email_out = log(kind="email", direction="out", subject="Answer")
    answered = log(kind="call", direction="in", duration_seconds=300)
    missed_call = log(kind="call", direction="in", duration_seconds=0)
    unanswered = log(kind="call", direction="in")  # no duration recorded: missed too
    log(kind="call", direction="out", duration_seconds=60)
    log(kind="meeting", subject="Visit")
    dispatch()
    assert _fired(received) == [email_in.pk]
    assert _fired(sent) == [email_out.pk]
    assert _fired(incoming) == [answered.pk, missed_call.pk, unanswered.pk]
    assert _fired(missed) == [missed_call.pk, unanswered.pk]


# --- tasks overdue ----------------------------------------------------------------------------


def test_task_overdue_fires_once_when_the_reminder_job_finds_it_past_due(
    admin_user, alice, dispatch
):
    rule = _rule(admin_user, "task.overdue")
    due = timezone.now() + dt.timedelta(hours=2)
    late = task_create(actor=alice, data={"title": "Send the offer", "due_at": due})
    task_create(actor=alice, data={"title": "Later", "due_at": due + 10 * DAY})
    reminders_due(now=due - dt.timedelta(minutes=1))
    dispatch()
    assert _fired(rule) == []
    reminders_due(now=due + dt.timedelta(minutes=1))
    reminders_due(now=due + dt.timedelta(minutes=2))
    dispatch()
    assert _fired(rule) == [late.pk]


# --- dates ------------------------------------------------------------------------------------


def _date_rule(admin: Any, object_type: str, field: str, offset: int, at: str) -> Rule:
    return _rule(
        admin,
        "date",
        {"object_type": object_type, "field": field, "offset_days": offset, "at": at},
    )


def test_n_days_before_the_expected_close_date_fires_at_the_configured_local_time_once(
    admin_user, alice, make_deal, settings
):
    settings.TIME_ZONE = "Europe/Moscow"  # UTC+3: 10:00 there is 07:00 UTC
    close = dt.date(2031, 6, 20)
    deal = make_deal(alice, "Closing soon", expected_close=close.isoformat())
    make_deal(alice, "Closing later", expected_close=(close + DAY).isoformat())
    rule = _date_rule(admin_user, "deal", "expected_close", -3, "10:00")
    _looked_until(rule, _local(close - 5 * DAY, 12))
    assert rules_clock(now=_local(close - 3 * DAY, 9, 59)) == 0
    assert _fired(rule) == []
    moment = _local(close - 3 * DAY, 10, 0)
    assert moment.astimezone(dt.UTC).hour == 7
    assert rules_clock(now=moment) == 1
    assert rules_clock(now=moment + dt.timedelta(minutes=1)) == 0  # the clock runs again
    assert rules_clock(now=moment) == 0
    assert _fired(rule) == [deal.pk]
    assert _occurrences(rule) == [f"d{deal.pk}:20310617"]
    run = RuleRun.objects.get(rule=rule)
    assert run.event_name == "date"
    assert run.object_type == "deal"


def test_a_birthday_fires_every_year(admin_user, alice, make_person):
    ivan = make_person(alice, "Ivan", "Petrov", birthday="1990-03-15")
    make_person(alice, "Olga", "Sidorova", birthday="1990-03-16")
    rule = _date_rule(admin_user, "person", "birthday", 0, "09:00")
    _looked_until(rule, _local(dt.date(2031, 3, 14), 12))
    assert rules_clock(now=_local(dt.date(2031, 3, 15), 9, 30)) == 1
    assert rules_clock(now=_local(dt.date(2032, 3, 15), 9, 30)) == 1
    assert rules_clock(now=_local(dt.date(2032, 3, 15), 9, 45)) == 0
    assert _fired(rule) == [ivan.pk, ivan.pk]
    assert _occurrences(rule) == [f"d{ivan.pk}:20310315", f"d{ivan.pk}:20320315"]


def test_a_birthday_on_the_29th_of_february_fires_in_a_year_without_one(
    admin_user, alice, make_person
):
    leap = make_person(alice, "Leap", "Day", birthday="2000-02-29")
    rule = _date_rule(admin_user, "person", "birthday", 0, "09:00")
    _looked_until(rule, _local(dt.date(2031, 2, 26), 12))
    rules_clock(now=_local(dt.date(2031, 3, 2), 12))  # 2031 has no 29 February
    assert _fired(rule) == [leap.pk]


def test_a_custom_date_field_fires_n_days_after_it(admin_user, alice, make_deal):
    from rapport.core.models import CustomFieldDefinition

    CustomFieldDefinition.objects.create(
        object_type="deal", name="contract_end", label="Contract ends", type="date"
    )
    ending = make_deal(alice, "Service", custom_fields={"contract_end": "2031-07-01"})
    make_deal(alice, "Other", custom_fields={"contract_end": "2031-07-02"})
    make_deal(alice, "No date")
    rule = _date_rule(admin_user, "deal", "custom.contract_end", 1, "08:00")
    _looked_until(rule, _local(dt.date(2031, 6, 30), 12))
    assert rules_clock(now=_local(dt.date(2031, 7, 2), 7, 59)) == 0
    assert rules_clock(now=_local(dt.date(2031, 7, 2), 8, 0)) == 1
    assert rules_clock(now=_local(dt.date(2031, 7, 2), 8, 1)) == 0
    assert _fired(rule) == [ending.pk]


def test_a_date_and_time_field_fires_on_its_local_day(admin_user, alice):
    due = _local(dt.date(2031, 9, 10), 15)
    task = task_create(actor=alice, data={"title": "Sign", "due_at": due})
    rule = _date_rule(admin_user, "task", "due_at", 0, "09:00")
    _looked_until(rule, _local(dt.date(2031, 9, 9), 12))
    assert rules_clock(now=_local(dt.date(2031, 9, 10), 9)) == 1
    assert _fired(rule) == [task.pk]


def test_after_downtime_each_missed_date_fires_once_and_nothing_older_than_the_window(
    admin_user, alice, make_deal
):
    start = dt.date(2031, 5, 1)
    deals = {
        n: make_deal(alice, f"Close +{n}", expected_close=(start + n * DAY).isoformat())
        for n in (1, 4, 9, 10, 11)
    }
    rule = _date_rule(admin_user, "deal", "expected_close", 0, "09:00")
    _looked_until(rule, _local(start, 12))  # the worker stopped here
    now = _local(start + 10 * DAY, 12)  # and came back ten days later
    assert CATCH_UP_DAYS == 7
    assert rules_clock(now=now) == 3
    assert rules_clock(now=now + dt.timedelta(minutes=1)) == 0
    assert sorted(_fired(rule)) == sorted(deals[n].pk for n in (4, 9, 10))
    assert rules_clock(now=_local(start + 11 * DAY, 9)) == 1
    assert _fired(rule)[-1] == deals[11].pk


def test_a_date_rule_created_after_the_moment_does_not_fire_retroactively(
    admin_user, alice, make_deal
):
    today = timezone.localdate()
    make_deal(alice, "Closes today", expected_close=today.isoformat())
    make_deal(alice, "Closed yesterday", expected_close=(today - DAY).isoformat())
    rule = _date_rule(admin_user, "deal", "expected_close", 0, "00:00")
    assert rules_clock(now=timezone.now() + dt.timedelta(seconds=1)) == 0
    assert _fired(rule) == []


def test_a_date_rule_switched_off_and_on_does_not_fire_for_the_time_it_was_off(
    admin_user, alice, make_deal
):
    today = timezone.localdate()
    make_deal(alice, "Closes today", expected_close=today.isoformat())
    rule = _date_rule(admin_user, "deal", "expected_close", 0, "00:00")
    _looked_until(rule, _local(today - 2 * DAY))
    rule = rule_set_active(actor=admin_user, rule=rule, active=False)
    rule_set_active(actor=admin_user, rule=rule, active=True)
    assert rules_clock(now=timezone.now() + dt.timedelta(seconds=1)) == 0


def test_a_date_rule_on_a_related_records_date_does_not_stop_the_clock(
    admin_user, alice, make_company, make_deal
):
    acme = make_company(alice, "Acme", client_since="2020-08-01")
    make_deal(alice, "Acme order", company_id=acme.pk)
    try:
        bad = _date_rule(admin_user, "deal", "company.client_since", 0, "09:00")
    except FieldErrors:  # refusing it when saving is a fine answer too
        bad = None
    daily = _rule(admin_user, "schedule", {"every": "day", "at": "09:00"})
    for rule in (bad, daily):
        if rule is not None:
            _looked_until(rule, _local(dt.date(2031, 7, 31), 12))
    rules_clock(now=_local(dt.date(2031, 8, 1), 10))
    assert _fired(daily) == [None]


# --- schedules --------------------------------------------------------------------------------


def test_every_day_at_nine_fires_once_a_day(admin_user):
    rule = _rule(admin_user, "schedule", {"every": "day", "at": "09:00"})
    monday = dt.date(2031, 6, 2)
    _looked_until(rule, _local(monday, 8))
    assert rules_clock(now=_local(monday, 8, 59)) == 0
    assert rules_clock(now=_local(monday, 9)) == 1
    assert rules_clock(now=_local(monday, 9, 1)) == 0
    assert rules_clock(now=_local(monday, 18)) == 0
    assert rules_clock(now=_local(monday + DAY, 9, 5)) == 1
    assert _fired(rule) == [None, None]
    assert _occurrences(rule) == [_moment_key(monday, 9), _moment_key(monday + DAY, 9)]
    run = RuleRun.objects.filter(rule=rule).first()
    assert run.event_name == "schedule"
    assert run.object_type == ""


def test_every_monday_fires_on_mondays_only(admin_user):
    rule = _rule(admin_user, "schedule", {"every": "week", "weekday": 0, "at": "09:00"})
    sunday = dt.date(2031, 6, 1)
    _looked_until(rule, _local(sunday, 0))
    for n in range(15):  # the clock ticks every day for two weeks
        rules_clock(now=_local(sunday + n * DAY, 12))
    monday = sunday + DAY
    assert monday.weekday() == 0
    assert _occurrences(rule) == [_moment_key(monday, 9), _moment_key(monday + 7 * DAY, 9)]


def test_the_first_day_of_the_month_fires_once_a_month(admin_user):
    rule = _rule(admin_user, "schedule", {"every": "month", "day": 1, "at": "07:30"})
    _looked_until(rule, _local(dt.date(2031, 5, 30), 12))
    rules_clock(now=_local(dt.date(2031, 5, 31), 12))
    rules_clock(now=_local(dt.date(2031, 6, 1), 7, 30))
    rules_clock(now=_local(dt.date(2031, 6, 1), 8))
    rules_clock(now=_local(dt.date(2031, 6, 6), 8))
    assert _occurrences(rule) == [_moment_key(dt.date(2031, 6, 1), 7, 30)]


def test_a_schedule_catches_up_each_missed_moment_once_within_the_window(admin_user):
    daily = _rule(admin_user, "schedule", {"every": "day", "at": "09:00"})
    monday = dt.date(2031, 6, 2)
    _looked_until(daily, _local(monday, 12))
    assert rules_clock(now=_local(monday + 3 * DAY, 12)) == 3  # down Tuesday to Thursday
    assert rules_clock(now=_local(monday + 3 * DAY, 12, 1)) == 0
    _looked_until(daily, _local(monday + 3 * DAY, 12))
    assert rules_clock(now=_local(monday + 20 * DAY, 12)) == CATCH_UP_DAYS  # down 17 days
    keys = _occurrences(daily)
    assert len(keys) == len(set(keys)) == 3 + CATCH_UP_DAYS
    assert keys[:3] == [_moment_key(monday + n * DAY, 9) for n in (1, 2, 3)]
    assert keys[3:] == [_moment_key(monday + n * DAY, 9) for n in range(14, 21)]  # a week back


def test_a_schedule_created_after_todays_moment_does_not_fire_retroactively(admin_user):
    now = timezone.now()
    local = timezone.localtime(now)
    earlier = local - dt.timedelta(minutes=30)
    if earlier.date() != local.date():  # just after midnight: take the midnight moment
        earlier = local.replace(hour=0, minute=0)
    rule = _rule(admin_user, "schedule", {"every": "day", "at": f"{earlier:%H:%M}"})
    assert rules_clock(now=timezone.now() + dt.timedelta(seconds=1)) == 0
    assert _fired(rule) == []


def _each_deal_rule(admin: Any, **config: Any) -> Rule:
    return rule_save(
        actor=admin,
        data={
            "name": "Daily check of big open deals",
            "trigger": "schedule",
            "trigger_config": {"every": "day", "at": "09:00", "object_type": "deal", **config},
            "conditions": {
                "items": [
                    {"field": "amount", "op": "gt", "value": "1000"},
                    {"field": "status", "op": "eq", "value": "open"},
                ]
            },
            "actions": [{"type": "create_task", "params": {"title": "Check {{ record }}"}}],
        },
    )


def test_a_schedule_for_each_deal_acts_once_on_every_deal_that_meets_the_conditions(
    admin_user, alice, make_deal
):
    from rapport.activities.models import Task

    rule = _each_deal_rule(admin_user)
    big, other_big = (
        make_deal(alice, "Boilers", amount="5000"),
        make_deal(alice, "Pumps", amount="9000"),
    )
    make_deal(alice, "Washers", amount="10")
    monday = dt.date(2031, 6, 2)
    _looked_until(rule, _local(monday, 8))
    assert rules_clock(now=_local(monday, 9)) == 2
    assert rules_clock(now=_local(monday, 9, 1)) == 0
    assert sorted(Task.objects.values_list("title", flat=True)) == ["Check Boilers", "Check Pumps"]
    assert sorted(_fired(rule)) == sorted([big.pk, other_big.pk])
    deal_win(actor=alice, deal=other_big.__class__.objects.get(pk=other_big.pk))
    assert rules_clock(now=_local(monday + DAY, 9, 5)) == 1  # the won deal is no longer open
    assert Task.objects.filter(title="Check Boilers").count() == 2
    assert rule.__class__.objects.get(pk=rule.pk).object_type == "deal"


def test_a_schedule_for_each_record_runs_only_the_latest_missed_moment_after_downtime(
    admin_user, alice, make_deal
):
    rule = _each_deal_rule(admin_user)
    deal = make_deal(alice, "Boilers", amount="5000")
    monday = dt.date(2031, 6, 2)
    _looked_until(rule, _local(monday, 12))
    assert rules_clock(now=_local(monday + 3 * DAY, 12)) == 1  # down Tuesday to Thursday
    assert _occurrences(rule) == [f"{_moment_key(monday + 3 * DAY, 9)}:{deal.pk}"]


def test_a_schedule_for_each_record_needs_a_known_kind_of_record(admin_user):
    with pytest.raises(FieldErrors) as caught:
        _rule(admin_user, "schedule", {"every": "day", "at": "09:00", "object_type": "spaceship"})
    assert caught.value.errors["trigger_config.object_type"] == ["Choose the kind of record."]


def test_a_schedule_for_each_record_reads_as_a_sentence(admin_user):
    from rapport.automations.describe import rule_sentence

    rule = _each_deal_rule(admin_user, every="week", weekday=0)
    assert rule_sentence(rule)["when"] == "every Monday at 09:00, for each deal"


# --- KPI thresholds ---------------------------------------------------------------------------


def _kpi_crossed(kpi: str) -> Any:
    return event_record(
        name="kpi.crossed",
        object_type="kpi",
        object_id=1,
        payload={"kpi": kpi, "value": 120, "threshold": 100, "direction": "up"},
    )


def test_a_kpi_threshold_crossing_fires_the_kpi_rule(admin_user, dispatch):
    rule = _rule(admin_user, "kpi.crossed", {"kpi": "revenue"})
    event = _kpi_crossed("revenue")
    dispatch()
    assert _fired(rule) == [None]
    run = RuleRun.objects.get(rule=rule)
    assert run.event_id == event.pk
    assert run.event_name == "kpi.crossed"


def test_a_kpi_rule_must_name_its_kpi(admin_user):
    with pytest.raises(FieldErrors) as caught:
        _rule(admin_user, "kpi.crossed", {"kpi": "  "})
    assert "trigger_config.kpi" in caught.value.errors


def test_a_kpi_rule_fires_only_for_its_own_kpi(admin_user, dispatch):
    revenue = _rule(admin_user, "kpi.crossed", {"kpi": "revenue"})
    _kpi_crossed("churn")
    dispatch()
    assert _fired(revenue) == []
