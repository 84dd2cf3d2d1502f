"""The worker evaluates a claim's events together; only events a rule acts on are run one
by one. The execution log is the same either way, and its upkeep keeps the runs that acted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from rapport.activities.models import Task
from rapport.automations.engine import runs_prune
from rapport.automations.models import RuleRun, RunOutcome
from rapport.automations.services import rule_save
from rapport.core.models import OutboxEvent
from rapport.sales.services import deal_update


def _big_deal_rule(admin: Any) -> Any:
    return rule_save(
        actor=admin,
        data={
            "name": "Big deals get a call",
            "trigger": "deal.created",
            "conditions": {"items": [{"field": "amount", "op": "gt", "value": "100000"}]},
            "actions": [{"type": "create_task", "params": {"title": "Call {{ record }}"}}],
        },
    )


def test_in_one_claim_only_the_deals_that_meet_the_conditions_get_a_task(
    admin_user, alice, make_deal, dispatch, rule_log
):
    rule = _big_deal_rule(admin_user)
    small = [make_deal(alice, f"Small {i}", amount="500") for i in range(5)]
    big = make_deal(alice, "Boilers", amount="250000")
    dispatch()
    assert list(Task.objects.values_list("title", flat=True)) == ["Call Boilers"]
    runs = {r.object_id: r.outcome for r in rule_log(rule)}
    assert runs == {**{d.pk: RunOutcome.NO_MATCH for d in small}, big.pk: RunOutcome.DONE}
    (no_match,) = rule_log(rule, object_id=small[0].pk)
    assert no_match.object_repr == "Small 0"
    assert no_match.event_name == "deal.created"
    assert no_match.conditions_result == [
        {"field": "amount", "op": "gt", "value": "100000", "actual": "500.00", "ok": False}
    ]


def test_a_claim_replayed_after_a_crash_logs_each_run_once_and_acts_once(
    admin_user, alice, make_deal, dispatch, rule_log
):
    rule = _big_deal_rule(admin_user)
    make_deal(alice, "Small", amount="500")
    make_deal(alice, "Boilers", amount="250000")
    dispatch()
    OutboxEvent.objects.update(status="pending", available_at=timezone.now())  # as if re-queued
    from rapport.core.models import HandlerRun

    HandlerRun.objects.all().delete()  # ... and the worker died before recording its runs
    dispatch()
    assert len(rule_log(rule)) == 2
    assert Task.objects.filter(title="Call Boilers").count() == 1


def test_a_field_changed_rule_in_a_claim_reads_each_events_own_change(
    admin_user, alice, make_deal, dispatch, rule_log
):
    rule = rule_save(
        actor=admin_user,
        data={
            "name": "Tenders",
            "trigger": "deal.field_changed",
            "trigger_config": {"field": "source", "to": "tender"},
            "actions": [{"type": "create_task", "params": {"title": "Papers for {{ record }}"}}],
        },
    )
    a, b = make_deal(alice, "Acme"), make_deal(alice, "Bee")
    deal_update(actor=alice, deal=a, data={"source": "tender"})
    deal_update(actor=alice, deal=b, data={"amount": "10"})
    dispatch()
    assert list(Task.objects.values_list("title", flat=True)) == ["Papers for Acme"]
    assert len(rule_log(rule)) == 1  # the other change is not its trigger


def test_the_log_drops_old_runs_that_did_nothing_and_keeps_those_that_acted(
    admin_user, alice, make_deal, dispatch, settings, rule_log
):
    settings.AUTOMATION_NO_MATCH_LOG_DAYS = 30
    rule = _big_deal_rule(admin_user)
    make_deal(alice, "Small old", amount="500")
    make_deal(alice, "Big old", amount="250000")
    dispatch()
    RuleRun.objects.update(at=timezone.now() - dt.timedelta(days=31))
    make_deal(alice, "Small new", amount="500")
    dispatch()
    assert runs_prune() == 1
    kept = {r.object_repr for r in rule_log(rule)}
    assert kept == {"Big old", "Small new"}
    settings.AUTOMATION_NO_MATCH_LOG_DAYS = 0
    RuleRun.objects.update(at=timezone.now() - dt.timedelta(days=3650))
    assert runs_prune() == 0
