"""Rules of the form "when … if … then …": saving, running from events, the log."""

from __future__ import annotations

import pytest

from rapport.activities.models import Notification, Task
from rapport.automations.engine import rules_check
from rapport.automations.models import ActionRun, Rule, RuleRun, RunOutcome
from rapport.automations.services import rule_save, rule_set_active, rule_test
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.sales.services import deal_update


def _big_deal_rule(admin, head, **extra):
    return rule_save(
        actor=admin,
        data={
            "name": "Big deals go to the head of sales",
            "trigger": "deal.created",
            "conditions": {
                "match": "all",
                "items": [{"field": "amount", "op": "gt", "value": "100000"}],
            },
            "actions": [
                {"type": "assign", "params": {"mode": "user", "user_id": head.pk}},
                {
                    "type": "notify",
                    "params": {
                        "who": "user",
                        "user_id": head.pk,
                        "title": "Big deal: {{ record.title }} ({{ record.amount }})",
                    },
                },
            ],
            **extra,
        },
    )


def test_a_big_deal_is_assigned_to_the_head_of_sales_who_is_notified(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    _big_deal_rule(admin_user, head_of_sales)
    deal = make_deal(alice, "Pipeline for Acme", amount="250000")
    dispatch()
    deal.refresh_from_db()
    assert deal.responsible_id == head_of_sales.pk
    note = Notification.objects.get(user=head_of_sales, kind="automation")
    assert note.title == "Big deal: Pipeline for Acme (250000.00)"
    run = RuleRun.objects.get(object_type="deal", object_id=deal.pk)
    assert run.outcome == RunOutcome.DONE
    assert run.matched
    assert [a.outcome for a in run.action_runs.all()] == ["done", "done"]


def test_a_small_deal_is_left_alone_and_the_log_says_why(
    admin_user, alice, head_of_sales, make_deal, dispatch, rule_log
):
    rule = _big_deal_rule(admin_user, head_of_sales)
    deal = make_deal(alice, "Small one", amount="900")
    dispatch()
    deal.refresh_from_db()
    assert deal.responsible_id == alice.pk
    (run,) = rule_log(rule, object_id=deal.pk)
    assert run.outcome == RunOutcome.NO_MATCH
    assert run.conditions_result[0]["ok"] is False
    assert run.conditions_result[0]["actual"] == "900.00"
    assert not Notification.objects.filter(kind="automation").exists()


def test_replaying_the_event_does_not_do_the_work_twice(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    from rapport.automations.engine import on_event
    from rapport.core.models import OutboxEvent

    rule = rule_save(
        actor=admin_user,
        data={
            "name": "Call every new deal",
            "trigger": "deal.created",
            "actions": [{"type": "create_task", "params": {"title": "Call {{ record.title }}"}}],
        },
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    event = OutboxEvent.objects.get(name="deal.created", object_id=deal.pk)
    on_event(event)  # the worker died after the rules ran, before the outbox knew
    with_key = Task.objects.filter(origin_key__startswith=f"r{rule.pk}:e{event.pk}:")
    assert Task.objects.filter(title="Call Acme").count() == 1
    assert with_key.count() == 1
    assert RuleRun.objects.filter(rule=rule).count() == 1


def test_a_field_change_to_a_value_starts_the_rule(admin_user, alice, make_deal, dispatch):
    rule_save(
        actor=admin_user,
        data={
            "name": "Closing soon",
            "trigger": "deal.field_changed",
            "trigger_config": {"field": "source", "to": "tender"},
            "actions": [{"type": "create_task", "params": {"title": "Prepare tender papers"}}],
        },
    )
    deal = make_deal(alice, "Acme")
    deal = deal_update(actor=alice, deal=deal, data={"source": "website"})
    dispatch()
    assert not Task.objects.filter(title="Prepare tender papers").exists()
    deal_update(actor=alice, deal=deal, data={"source": "tender"})
    dispatch()
    task = Task.objects.get(title="Prepare tender papers")
    assert task.responsible_id == alice.pk
    assert task.deal_id == deal.pk


def test_changed_from_to_conditions_read_the_old_and_new_values(
    admin_user, alice, make_deal, dispatch
):
    rule_save(
        actor=admin_user,
        data={
            "name": "Amount cut",
            "trigger": "deal.updated",
            "conditions": {
                "items": [
                    {"field": "amount", "op": "changed_from", "value": "5000"},
                    {"field": "amount", "op": "changed_to", "value": "1000"},
                ]
            },
            "actions": [{"type": "create_task", "params": {"title": "Ask why the amount fell"}}],
        },
    )
    deal = make_deal(alice, "Acme", amount="5000")
    deal_update(actor=alice, deal=deal, data={"amount": "1000"})
    dispatch()
    assert Task.objects.filter(title="Ask why the amount fell").count() == 1


def test_a_rule_that_triggers_itself_stops_at_the_depth_limit(
    admin_user, alice, make_deal, dispatch, settings
):
    settings.AUTOMATION_MAX_DEPTH = 3
    rule = rule_save(
        actor=admin_user,
        data={
            "name": "Ping-pong",
            "trigger": "deal.updated",
            "actions": [
                {
                    "type": "change_field",
                    "params": {"field": "source", "value": "{{ record.source }}+"},
                }
            ],
        },
    )
    deal = make_deal(alice, "Acme")
    deal_update(actor=alice, deal=deal, data={"source": "start"})
    dispatch()
    runs = list(RuleRun.objects.filter(rule=rule).order_by("id"))
    assert [r.depth for r in runs] == [0, 1, 2, 3]
    assert runs[-1].outcome == RunOutcome.LOOP_STOPPED
    assert "limit is 3" in runs[-1].message


def test_run_once_per_record(admin_user, alice, make_deal, dispatch):
    rule_save(
        actor=admin_user,
        data={
            "name": "First touch",
            "trigger": "deal.updated",
            "once_per_record": True,
            "actions": [{"type": "create_task", "params": {"title": "First change"}}],
        },
    )
    deal = make_deal(alice, "Acme")
    deal = deal_update(actor=alice, deal=deal, data={"source": "a"})
    deal_update(actor=alice, deal=deal, data={"source": "b"})
    dispatch()
    assert Task.objects.filter(title="First change").count() == 1
    assert RuleRun.objects.filter(outcome=RunOutcome.ALREADY_RAN).count() == 1


def test_comparing_text_with_a_number_is_refused_when_saving(admin_user):
    with pytest.raises(FieldErrors) as caught:
        rule_save(
            actor=admin_user,
            data={
                "name": "Bad",
                "trigger": "deal.created",
                "conditions": {"items": [{"field": "title", "op": "gt", "value": "100"}]},
                "actions": [{"type": "create_task", "params": {"title": "x"}}],
            },
        )
    assert "conditions.1.op" in caught.value.errors
    with pytest.raises(FieldErrors) as caught:
        rule_save(
            actor=admin_user,
            data={
                "name": "Bad",
                "trigger": "deal.created",
                "conditions": {"items": [{"field": "amount", "op": "gt", "value": "lots"}]},
                "actions": [{"type": "create_task", "params": {"title": "x"}}],
            },
        )
    assert "“lots”" in caught.value.errors["conditions.1.value"][0]


def test_a_template_that_does_not_parse_is_refused_when_saving(admin_user):
    with pytest.raises(FieldErrors) as caught:
        rule_save(
            actor=admin_user,
            data={
                "name": "Bad",
                "trigger": "deal.created",
                "actions": [{"type": "create_task", "params": {"title": "Call {{ record.title "}}],
            },
        )
    assert "actions.1.title" in caught.value.errors


def test_only_administrators_change_rules(alice):
    with pytest.raises(PermissionDenied):
        rule_save(
            actor=alice,
            data={"name": "x", "trigger": "deal.created", "actions": [{"type": "notify"}]},
        )


def test_a_rule_whose_user_was_deactivated_is_switched_off_with_the_reason(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    rule = _big_deal_rule(admin_user, head_of_sales)
    head_of_sales.is_active = False
    head_of_sales.save()
    deal = make_deal(alice, "Acme", amount="500000")
    dispatch()  # the worker does not crash
    rule.refresh_from_db()
    assert rule.is_active is False
    assert "no longer exists or is inactive" in rule.inactive_reason
    run = RuleRun.objects.get(object_id=deal.pk)
    assert run.outcome == RunOutcome.FAILED
    assert ActionRun.objects.filter(run=run, outcome="failed").count() >= 1
    with pytest.raises(FieldErrors):
        rule_set_active(actor=admin_user, rule=rule, active=True)


def test_a_rule_on_a_removed_custom_field_is_switched_off_by_the_check(admin_user):
    from rapport.core.models import CustomFieldDefinition

    field = CustomFieldDefinition.objects.create(
        object_type="deal", name="tender_no", label="Tender number", type="text"
    )
    rule = rule_save(
        actor=admin_user,
        data={
            "name": "Tenders",
            "trigger": "deal.created",
            "conditions": {"items": [{"field": "custom.tender_no", "op": "not_empty"}]},
            "actions": [{"type": "create_task", "params": {"title": "Tender"}}],
        },
    )
    field.delete()
    assert rules_check() == 1
    rule.refresh_from_db()
    assert not rule.is_active
    assert "tender_no" in rule.inactive_reason


def test_the_test_button_shows_what_would_happen_without_doing_it(
    admin_user, alice, head_of_sales, make_deal
):
    rule = _big_deal_rule(admin_user, head_of_sales)
    deal = make_deal(alice, "Acme", amount="300000")
    Rule.objects.filter(pk=rule.pk).update(is_active=False)
    result = rule_test(actor=admin_user, rule=rule, object_id=deal.pk)
    assert result["passed"] is True
    assert result["conditions"][0]["ok"] is True
    assert "Helga" in result["actions"][0]["text"]
    assert "Big deal: Acme" in result["actions"][1]["text"]
    deal.refresh_from_db()
    assert deal.responsible_id == alice.pk
    assert not Notification.objects.filter(kind="automation").exists()
