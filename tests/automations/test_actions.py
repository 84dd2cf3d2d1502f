"""Every action does its effect through the owning app's real service, and the run log
records it (outcome, detail, error, the action key). Rules are saved with ``rule_save`` and
run from the records' real events, dispatched as the worker would.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from rapport.activities.models import Notification, Task
from rapport.activities.services import task_create
from rapport.automations.actions import ACTIONS, Context
from rapport.automations.engine import on_event
from rapport.automations.models import ActionRun, Rule, RuleRun, RunOutcome
from rapport.automations.services import rule_save
from rapport.core.errors import FieldErrors
from rapport.core.models import OutboxEvent
from rapport.messaging.models import OutgoingMessage
from rapport.messaging.services import message_id_for
from rapport.sales.models import Deal, Lead


def _rule(admin: Any, trigger: str, *actions: dict[str, Any], **extra: Any) -> Rule:
    return rule_save(
        actor=admin,
        data={
            "name": f"Test {trigger}",
            "trigger": trigger,
            "actions": [{"type": t, "params": p} for t, p in (a.popitem() for a in actions)],
            **extra,
        },
    )


def _act(code: str, **params: Any) -> dict[str, Any]:
    return {code: params}


def _refused(admin: Any, trigger: str, code: str, **params: Any) -> dict[str, list[str]]:
    with pytest.raises(FieldErrors) as caught:
        _rule(admin, trigger, _act(code, **params))
    return caught.value.errors


def _log(rule: Rule, object_id: int | None = None) -> tuple[RuleRun, list[ActionRun]]:
    run = RuleRun.objects.get(rule=rule, **({"object_id": object_id} if object_id else {}))
    return run, list(run.action_runs.order_by("index"))


def _key(rule: Rule, event_name: str, object_id: int, index: int = 0) -> str:
    event = OutboxEvent.objects.get(name=event_name, object_id=object_id)
    return f"r{rule.pk}:e{event.pk}:a{index}"


@pytest.fixture
def client_deal(alice, make_company, make_person, make_deal) -> Any:
    """A deal of Acme with Ivan as the contact (an email and a mobile phone)."""
    acme = make_company(alice, "Acme", industry="Retail")
    ivan = make_person(
        alice,
        "Ivan",
        "Petrov",
        phones=[{"raw": "+7 912 341-96-15"}],
        emails=[{"raw": "ivan@acme.example"}],
    )
    return {"company": acme, "person": ivan}


@pytest.fixture
def sales_team(org) -> dict[str, Any]:
    """Team "Sales" with reps Anna, Boris and Vera, in id order."""
    from rapport.accounts.services import team_create, user_create

    team = team_create(actor=None, name="Sales", parent=org["office"])
    people = [
        user_create(
            actor=None,
            username=name,
            password="correct-horse-battery-9",
            first_name=name.title(),
            team=team,
            role=org["rep"],
        )
        for name in ("anna", "boris", "vera")
    ]
    return {"team": team, "anna": people[0], "boris": people[1], "vera": people[2]}


def _away(user: Any) -> None:
    from rapport.routing.services import absence_create

    now = timezone.now()
    absence_create(
        actor=user,
        data={
            "kind": "unplanned",
            "starts_at": now - dt.timedelta(hours=1),
            "ends_at": now + dt.timedelta(days=5),
        },
        now=now,
    )


def test_the_action_registry_holds_the_fourteen_actions():
    assert set(ACTIONS) >= {
        "create_task",
        "create_lead",
        "create_deal",
        "change_field",
        "assign",
        "add_coexecutor",
        "remove_coexecutor",
        "email_client",
        "email_employee",
        "sms_client",
        "sms_employee",
        "notify",
        "move_stage",
        "webhook",
    }


# --- create a task ----------------------------------------------------------------------------


def test_create_task_makes_a_linked_task_for_the_manager_keyed_by_the_action(
    admin_user, alice, client_deal, make_deal, dispatch
):
    rule = _rule(
        admin_user,
        "deal.created",
        _act(
            "create_task",
            who="responsible",
            title="Call about {{ record.title }}",
            description="Amount {{ record.amount }}",
            due_in_hours=48,
        ),
    )
    before = timezone.now()
    deal = make_deal(alice, "Boilers", amount="900", company_id=client_deal["company"].pk)
    dispatch()
    task = Task.objects.get(title="Call about Boilers")
    assert task.responsible_id == alice.pk
    assert task.description == "Amount 900.00"
    assert task.deal_id == deal.pk
    assert task.company_id == client_deal["company"].pk
    assert before + dt.timedelta(hours=48) <= task.due_at <= timezone.now() + dt.timedelta(hours=48)
    key = _key(rule, "deal.created", deal.pk)
    assert task.origin_key == key
    run, actions = _log(rule)
    assert run.outcome == RunOutcome.DONE
    assert [(a.action, a.key, a.outcome) for a in actions] == [("create_task", key, "done")]
    assert f"task #{task.pk}" in actions[0].detail


def test_create_task_for_a_chosen_user_on_a_rule_without_a_record(admin_user, bob):
    from rapport.automations.engine import rules_clock

    rule = _rule(
        admin_user,
        "schedule",
        _act("create_task", who="user", user_id=bob.pk, title="Weekly report"),
        trigger_config={"every": "day", "at": "09:00"},
    )
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    nine = timezone.make_aware(dt.datetime.combine(tomorrow, dt.time(9, 0)))
    Rule.objects.filter(pk=rule.pk).update(checked_until=nine - dt.timedelta(hours=1))
    rules_clock(now=nine + dt.timedelta(minutes=30))
    task = Task.objects.get(title="Weekly report")
    assert task.responsible_id == bob.pk
    assert task.deal_id is None
    assert task.origin_key.startswith(f"r{rule.pk}:s")


def test_create_task_with_no_responsible_manager_fails_with_the_reason(
    admin_user, make_company, dispatch
):
    rule = _rule(admin_user, "company.created", _act("create_task", title="Welcome call"))
    company = make_company(None, "Orphan Ltd")
    dispatch()
    run, actions = _log(rule)
    assert run.outcome == RunOutcome.FAILED
    assert actions[0].error == "The record has no active responsible manager."
    assert not Task.objects.filter(title="Welcome call").exists()
    assert company.responsible_id is None


# --- create a lead, create a deal -------------------------------------------------------------


def test_create_lead_takes_the_clients_name_and_contacts(admin_user, alice, bob, dispatch):
    from rapport.parties.services import person_create

    rule = _rule(
        admin_user,
        "person.created",
        _act(
            "create_lead",
            who="user",
            user_id=bob.pk,
            text="Follow up {{ record.name }}",
            channel="referral",
        ),
    )
    ivan = person_create(
        actor=alice,
        data={
            "first_name": "Ivan",
            "last_name": "Petrov",
            "phones": [{"raw": "+7 912 341-96-15"}],
            "emails": [{"raw": "ivan@acme.example"}],
        },
        force=True,
    )
    dispatch()
    lead = Lead.objects.get(source=f"rule:{rule.pk}")
    assert lead.name == str(ivan) == "Petrov Ivan"
    assert lead.text == "Follow up Petrov Ivan"
    assert lead.phone_e164 == "+79123419615"
    assert lead.email == "ivan@acme.example"
    assert lead.channel == "referral"
    assert lead.responsible_id == bob.pk
    _run, actions = _log(rule, ivan.pk)
    assert actions[0].outcome == "done"
    assert actions[0].detail == f"lead #{lead.pk}"


def test_create_deal_takes_the_amount_from_the_record(
    admin_user, alice, make_lead, pipelines, dispatch
):
    rule = _rule(
        admin_user,
        "lead.created",
        _act(
            "create_deal",
            who="responsible",
            title="Deal for {{ record.name }}",
            pipeline_id=pipelines["free"].pk,
            amount_from_record=True,
        ),
    )
    lead = make_lead(alice, "Maria Rossi", amount="50000", currency="EUR")
    dispatch()
    deal = Deal.objects.get(source=f"rule:{rule.pk}")
    assert deal.title == "Deal for Maria Rossi"
    assert deal.amount == 50000
    assert deal.currency == "EUR"
    assert deal.pipeline_id == pipelines["free"].pk
    assert deal.stage == pipelines["free_stages"][0]
    assert deal.responsible_id == alice.pk
    _run, actions = _log(rule, lead.pk)
    assert actions[0].detail == f"deal #{deal.pk}"


def test_create_deal_from_a_lead_links_the_deal_to_the_lead(
    admin_user, alice, make_lead, pipelines, dispatch
):
    _rule(
        admin_user,
        "lead.created",
        _act("create_deal", title="From lead", pipeline_id=pipelines["free"].pk),
    )
    lead = make_lead(alice, "Maria Rossi")
    dispatch()
    assert Deal.objects.get(title="From lead").lead_id == lead.pk


def test_create_deal_refuses_a_missing_pipeline_when_saved(admin_user):
    errors = _refused(admin_user, "lead.created", "create_deal", title="x", pipeline_id=999)
    assert errors == {"actions.1.pipeline_id": ["Action 1: Choose an active pipeline."]}


# --- change a field ---------------------------------------------------------------------------


def test_change_field_sets_a_plain_field_through_the_service(
    admin_user, alice, make_deal, dispatch
):
    from rapport.core.models import AuditEntry

    rule = _rule(
        admin_user,
        "deal.created",
        _act("change_field", field="source", value="auto: {{ record.title }}"),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    deal.refresh_from_db()
    assert deal.source == "auto: Acme"
    assert deal.version == 2
    audit = AuditEntry.objects.filter(object_type="deal", object_id=deal.pk, action="update").get()
    assert audit.changes["source"] == ["", "auto: Acme"]
    assert audit.actor_id is None
    _run, actions = _log(rule)
    assert actions[0].outcome == "done"
    assert actions[0].detail == "Set “source” to “auto: {{ record.title }}”"


def test_change_field_sets_a_choice_field(admin_user, alice, dispatch):
    rule = _rule(
        admin_user, "task.created", _act("change_field", field="status", value="in_progress")
    )
    task = task_create(actor=alice, data={"title": "Call"})
    dispatch()
    task.refresh_from_db()
    assert task.status == "in_progress"
    assert _log(rule)[0].outcome == RunOutcome.DONE


def test_change_field_sets_a_custom_field_keeping_the_others(
    admin_user, alice, make_deal, dispatch
):
    from rapport.core.models import CustomFieldDefinition

    CustomFieldDefinition.objects.create(
        object_type="deal", name="segment", label="Segment", type="choice", choices=["smb", "key"]
    )
    CustomFieldDefinition.objects.create(
        object_type="deal", name="region", label="Region", type="text"
    )
    _rule(admin_user, "deal.created", _act("change_field", field="custom.segment", value="key"))
    deal = make_deal(alice, "Acme", custom_fields={"region": "Volga"})
    dispatch()
    deal.refresh_from_db()
    assert deal.custom_fields == {"region": "Volga", "segment": "key"}


@pytest.mark.parametrize(
    ("trigger", "field", "value", "key", "message"),
    [
        ("deal.created", "amount", "lots", "value", "“lots” does not fit the field “amount”."),
        ("task.created", "status", "finished", "value", "Choose one of the field's values."),
        ("deal.created", "custom.segment", "vip", "value", "Choose one of the field's values."),
        (
            "deal.created",
            "expected_close",
            "soon",
            "value",
            "“soon” does not fit the field “expected close date”.",
        ),
        (
            "deal.created",
            "stage",
            "1",
            "field",
            "Choose a field of the record that a rule may set.",
        ),
        (
            "deal.created",
            "created_at",
            "",
            "field",
            "Choose a field of the record that a rule may set.",
        ),
        (
            "deal.created",
            "company.industry",
            "x",
            "field",
            "Choose a field of the record that a rule may set.",
        ),
        (
            "deal.created",
            "coworkers",
            "1",
            "field",
            "Choose a field of the record that a rule may set.",
        ),
    ],
)
def test_change_field_refuses_a_bad_field_or_value_when_saved(
    admin_user, trigger, field, value, key, message
):
    from rapport.core.models import CustomFieldDefinition

    CustomFieldDefinition.objects.create(
        object_type="deal", name="segment", label="Segment", type="choice", choices=["smb", "key"]
    )
    errors = _refused(admin_user, trigger, "change_field", field=field, value=value)
    assert errors == {f"actions.1.{key}": [f"Action 1: {message}"]}


# --- assign the responsible manager -----------------------------------------------------------


def test_assign_a_given_user(admin_user, alice, head_of_sales, make_deal, dispatch):
    rule = _rule(admin_user, "deal.created", _act("assign", mode="user", user_id=head_of_sales.pk))
    deal = make_deal(alice, "Acme")
    dispatch()
    deal.refresh_from_db()
    assert deal.responsible_id == head_of_sales.pk
    _run, actions = _log(rule)
    assert actions[0].detail == f"assigned to {head_of_sales}"


def test_assign_skips_when_the_user_is_already_responsible(admin_user, alice, make_deal, dispatch):
    rule = _rule(admin_user, "deal.created", _act("assign", mode="user", user_id=alice.pk))
    deal = make_deal(alice, "Acme")
    dispatch()
    _run, actions = _log(rule)
    assert actions[0].outcome == "skipped"
    assert Deal.objects.get(pk=deal.pk).version == 1


def test_assign_round_robin_takes_turns_and_skips_the_absent(
    admin_user, alice, sales_team, make_deal, dispatch
):
    _away(sales_team["vera"])
    _rule(
        admin_user,
        "deal.created",
        _act("assign", mode="round_robin", team_id=sales_team["team"].pk),
    )
    got = []
    for n in range(4):
        deal = make_deal(alice, f"Deal {n}")
        dispatch()
        deal.refresh_from_db()
        got.append(deal.responsible_id)
    anna, boris = sales_team["anna"].pk, sales_team["boris"].pk
    assert got == [anna, boris, anna, boris]


def test_assign_least_busy_counts_open_work_and_skips_the_absent(
    admin_user, alice, sales_team, make_deal, dispatch
):
    anna, boris, vera = sales_team["anna"], sales_team["boris"], sales_team["vera"]
    for title in ("One", "Two"):
        task_create(actor=anna, data={"title": title})
    task_create(actor=vera, data={"title": "Three"})
    _away(boris)  # the least busy of all, but away
    _rule(
        admin_user,
        "deal.created",
        _act("assign", mode="least_busy", team_id=sales_team["team"].pk),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    deal.refresh_from_db()
    assert deal.responsible_id == vera.pk


def test_assign_with_nobody_present_fails_and_keeps_the_manager(
    admin_user, alice, sales_team, make_deal, dispatch
):
    for user in (sales_team["anna"], sales_team["boris"], sales_team["vera"]):
        _away(user)
    rule = _rule(
        admin_user,
        "deal.created",
        _act("assign", mode="least_busy", team_id=sales_team["team"].pk),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    deal.refresh_from_db()
    assert deal.responsible_id == alice.pk
    _run, actions = _log(rule)
    assert (actions[0].outcome, actions[0].error) == ("failed", "Nobody present to assign to.")


def test_assign_by_the_routing_table_for_leads(admin_user, alice, sales_team, make_lead, dispatch):
    from rapport.routing.services import routing_rule_save

    boris = sales_team["boris"]
    routing_rule_save(
        actor=None,
        data={"name": "Boilers", "products": ["boiler"], "target_user_id": boris.pk},
    )
    rule = _rule(admin_user, "lead.created", _act("assign", mode="routing"))
    boilers = make_lead(alice, "Maria Rossi", interest="Gas boilers")
    pumps = make_lead(alice, "Luca Bianchi", interest="Pumps")
    dispatch()
    boilers.refresh_from_db()
    pumps.refresh_from_db()
    assert boilers.responsible_id == boris.pk
    assert pumps.responsible_id == alice.pk  # no routing rule matches
    assert _log(rule, pumps.pk)[1][0].error == "Nobody present to assign to."


def test_assign_refuses_routing_for_anything_but_leads_and_a_missing_team(admin_user):
    errors = _refused(admin_user, "deal.created", "assign", mode="routing")
    assert errors == {"actions.1.mode": ["Action 1: The routing table distributes leads only."]}
    errors = _refused(admin_user, "deal.created", "assign", mode="round_robin", team_id=999)
    assert errors == {"actions.1.team_id": ["Action 1: Choose a team."]}


# --- co-executors -----------------------------------------------------------------------------


def test_add_and_remove_a_co_executor_on_a_task(admin_user, alice, bob, carol, dispatch):
    rule = _rule(
        admin_user,
        "task.created",
        _act("add_coexecutor", user_id=carol.pk),
        _act("remove_coexecutor", user_id=bob.pk),
        _act("add_coexecutor", user_id=carol.pk),  # already there: nothing to do
    )
    task = task_create(actor=alice, data={"title": "Visit", "coexecutor_ids": [bob.pk]})
    dispatch()
    assert list(task.coexecutors.values_list("pk", flat=True)) == [carol.pk]
    _run, actions = _log(rule)
    assert [a.outcome for a in actions] == ["done", "done", "skipped"]
    assert actions[1].detail == f"Remove {bob} from the co-executors"


def test_add_and_remove_a_co_worker_on_a_deal(admin_user, alice, bob, carol, make_deal, dispatch):
    _rule(
        admin_user,
        "deal.created",
        _act("add_coexecutor", user_id=bob.pk),
        _act("remove_coexecutor", user_id=carol.pk),
    )
    deal = make_deal(alice, "Acme", coworker_ids=[carol.pk])
    dispatch()
    assert list(deal.coworkers.values_list("pk", flat=True)) == [bob.pk]


def test_co_executors_apply_to_deals_and_tasks_only(admin_user, bob):
    errors = _refused(admin_user, "lead.created", "add_coexecutor", user_id=bob.pk)
    assert list(errors) == ["actions.1.type"]


# --- email and SMS ----------------------------------------------------------------------------


def test_email_client_queues_a_rendered_email_to_the_contact_keyed_by_the_action(
    admin_user, alice, client_deal, make_deal, dispatch
):
    rule = _rule(
        admin_user,
        "deal.created",
        _act(
            "email_client", subject="Offer: {{ record.title }}", body="Amount {{ record.amount }}"
        ),
    )
    deal = make_deal(alice, "Boilers", amount="900", contact_id=client_deal["person"].pk)
    dispatch()
    key = _key(rule, "deal.created", deal.pk)
    message = OutgoingMessage.objects.get(key=key)
    assert message.kind == "email"
    assert message.recipients == ["ivan@acme.example"]
    assert message.subject == "Offer: Boilers"
    assert message.body == "Amount 900.00"
    assert message.message_id == message_id_for(key)
    assert message.status == "pending"
    assert (message.object_type, message.object_id) == ("deal", deal.pk)
    assert message.source == f"rule:{rule.pk}"
    _run, actions = _log(rule)
    assert actions[0].outcome == "queued"
    assert actions[0].detail == f"message #{message.pk} to ivan@acme.example"


def test_email_client_from_a_template(admin_user, alice, client_deal, make_deal, dispatch):
    from rapport.messaging.services import template_create

    template = template_create(
        actor=admin_user,
        data={
            "name": "Offer",
            "channel": "email",
            "subject": "Your offer {{ record.title }}",
            "body": "Hello from {{ record.company }}",
        },
    )
    _rule(admin_user, "deal.created", _act("email_client", template_id=template.pk))
    make_deal(
        alice, "Boilers", company_id=client_deal["company"].pk, contact_id=client_deal["person"].pk
    )
    dispatch()
    message = OutgoingMessage.objects.get(kind="email")
    assert message.subject == "Your offer Boilers"
    assert message.body == "Hello from Acme"
    assert message.recipients == ["ivan@acme.example"]


def test_email_client_reads_a_leads_own_email(admin_user, alice, make_lead, dispatch):
    _rule(admin_user, "lead.created", _act("email_client", subject="Thanks", body="We got it"))
    make_lead(alice, "Maria Rossi", email="Maria@Rossi.example")
    dispatch()
    assert OutgoingMessage.objects.get(kind="email").recipients == ["maria@rossi.example"]


def test_email_client_without_an_email_fails_clearly_and_the_rule_stays_active(
    admin_user, alice, make_deal, dispatch
):
    rule = _rule(admin_user, "deal.created", _act("email_client", subject="Hi", body="Hello"))
    make_deal(alice, "No client")
    dispatch()
    run, actions = _log(rule)
    assert run.outcome == RunOutcome.FAILED
    assert (actions[0].outcome, actions[0].error) == ("failed", "The client has no email address.")
    assert not OutgoingMessage.objects.exists()
    rule.refresh_from_db()
    assert rule.is_active
    assert rule.inactive_reason == ""


def test_email_employee_goes_to_the_chosen_user(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    rule = _rule(
        admin_user,
        "deal.created",
        _act(
            "email_employee",
            who="user",
            user_id=head_of_sales.pk,
            subject="New deal",
            body="{{ record.title }} by {{ record.responsible }}",
        ),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    message = OutgoingMessage.objects.get(key=_key(rule, "deal.created", deal.pk))
    assert message.recipients == ["helga@example.com"]
    assert message.body == f"Acme by {alice}"


def test_email_employee_without_an_address_fails_naming_the_user(
    admin_user, alice, make_deal, dispatch
):
    rule = _rule(
        admin_user,
        "deal.created",
        _act("email_employee", who="responsible", subject="New deal", body="x"),
    )
    make_deal(alice, "Acme")
    dispatch()
    assert _log(rule)[1][0].error == f"{alice} has no email address."


def test_sms_client_goes_to_the_contacts_mobile_in_international_form(
    admin_user, alice, client_deal, make_deal, dispatch
):
    rule = _rule(
        admin_user, "deal.created", _act("sms_client", body="Offer {{ record.title }} sent")
    )
    deal = make_deal(alice, "Boilers", contact_id=client_deal["person"].pk)
    dispatch()
    message = OutgoingMessage.objects.get(key=_key(rule, "deal.created", deal.pk))
    assert message.kind == "sms"
    assert message.recipients == ["+79123419615"]
    assert message.body == "Offer Boilers sent"
    assert message.subject == ""


def test_sms_client_reads_a_leads_own_phone(admin_user, alice, make_lead, dispatch):
    rule = _rule(admin_user, "lead.created", _act("sms_client", body="Thanks {{ record.name }}"))
    lead = make_lead(alice, "Maria Rossi", phone="8 912 341-96-15")
    dispatch()
    message = OutgoingMessage.objects.get(key=_key(rule, "lead.created", lead.pk))
    assert message.recipients == ["+79123419615"]
    assert message.body == "Thanks Maria Rossi"


def test_sms_client_without_a_phone_fails_clearly(admin_user, alice, make_deal, dispatch):
    rule = _rule(admin_user, "deal.created", _act("sms_client", body="Hi"))
    make_deal(alice, "No client")
    dispatch()
    assert _log(rule)[1][0].error == "The client has no valid phone number."


def test_sms_employee_goes_to_the_users_phone_in_international_form(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    from rapport.accounts.models import User

    User.objects.filter(pk=head_of_sales.pk).update(phone="8 916 123-45-67")
    rule = _rule(
        admin_user,
        "deal.created",
        _act("sms_employee", who="user", user_id=head_of_sales.pk, body="Deal {{ record.title }}"),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    message = OutgoingMessage.objects.get(key=_key(rule, "deal.created", deal.pk))
    assert message.recipients == ["+79161234567"]
    assert message.body == "Deal Acme"


def test_a_message_is_queued_once_when_the_event_is_replayed(
    admin_user, alice, client_deal, make_deal, dispatch
):
    _rule(admin_user, "deal.created", _act("email_client", subject="Hi", body="Hello"))
    deal = make_deal(alice, "Boilers", contact_id=client_deal["person"].pk)
    dispatch()
    on_event(OutboxEvent.objects.get(name="deal.created", object_id=deal.pk))
    assert OutgoingMessage.objects.count() == 1


def test_messages_refuse_a_missing_template_or_text_when_saved(admin_user):
    errors = _refused(admin_user, "deal.created", "email_client", template_id=999)
    assert errors == {"actions.1.template_id": ["Action 1: No such template."]}
    errors = _refused(admin_user, "deal.created", "sms_client")
    assert errors == {"actions.1.body": ["Action 1: This field is required."]}


def test_a_message_to_the_client_needs_a_rule_with_a_record(admin_user):
    with pytest.raises(FieldErrors) as caught:
        rule_save(
            actor=admin_user,
            data={
                "name": "Daily",
                "trigger": "schedule",
                "trigger_config": {"every": "day"},
                "actions": [{"type": "sms_client", "params": {"body": "x"}}],
            },
        )
    assert caught.value.errors == {
        "actions.1.who": ["Action 1: This rule has no record, so there is no client to write to."]
    }


# --- notify -----------------------------------------------------------------------------------


def test_notify_creates_one_notification_exactly_once_on_replay(
    admin_user, alice, head_of_sales, make_deal, dispatch
):
    rule = _rule(
        admin_user,
        "deal.created",
        _act(
            "notify",
            who="user",
            user_id=head_of_sales.pk,
            title="New: {{ record.title }}",
            body="by {{ record.responsible }}",
        ),
    )
    deal = make_deal(alice, "Acme")
    dispatch()
    event = OutboxEvent.objects.get(name="deal.created", object_id=deal.pk)
    on_event(event)  # the worker died before the outbox knew the event was done
    note = Notification.objects.get(user=head_of_sales, kind="automation")
    assert note.title == "New: Acme"
    assert note.body == f"by {alice}"
    assert note.url == f"/deals/{deal.pk}/"
    assert note.key == f"r{rule.pk}:e{event.pk}:a0"
    assert RuleRun.objects.filter(rule=rule).count() == 1
    # The action itself, run again with its key, does not notify twice.
    ctx = Context(rule=rule, object_type="deal", obj=deal, key=note.key)
    result = ACTIONS["notify"].run(rule.actions[0]["params"], ctx)
    assert (result.outcome, result.detail) == ("skipped", "already notified")
    assert Notification.objects.filter(kind="automation").count() == 1


def test_notify_the_records_manager(admin_user, alice, make_deal, dispatch):
    _rule(admin_user, "deal.created", _act("notify", who="responsible", title="Yours"))
    make_deal(alice, "Acme")
    dispatch()
    assert Notification.objects.get(kind="automation").user_id == alice.pk


# --- move the deal to a stage -----------------------------------------------------------------


def test_move_stage_moves_the_deal(admin_user, alice, make_deal, pipelines, dispatch):
    offer = pipelines["free_stages"][2]
    rule = _rule(admin_user, "deal.created", _act("move_stage", stage_id=offer.pk))
    deal = make_deal(alice, "Acme")
    dispatch()
    deal.refresh_from_db()
    assert deal.stage_id == offer.pk
    assert deal.stage_changes.count() == 2
    assert _log(rule)[1][0].detail == "Move the deal to “Offer”"


def test_move_stage_refused_by_a_strict_pipeline_is_logged_with_the_services_message(
    admin_user, alice, make_deal, pipelines, dispatch
):
    proposal = pipelines["strict_stages"][2]
    rule = _rule(admin_user, "deal.created", _act("move_stage", stage_id=proposal.pk))
    deal = make_deal(alice, "Acme", pipeline=pipelines["strict"])
    dispatch()
    deal.refresh_from_db()
    assert deal.stage == pipelines["strict_stages"][0]
    run, actions = _log(rule)
    assert run.outcome == RunOutcome.FAILED
    assert actions[0].outcome == "failed"
    assert (
        actions[0].error == "stage_id: Stages go in order in this pipeline: pass “Qualified” first."
    )
    rule.refresh_from_db()
    assert rule.is_active


def test_move_stage_of_a_closed_deal_fails(admin_user, alice, make_deal, pipelines, dispatch):
    from rapport.sales.services import deal_win

    offer = pipelines["free_stages"][2]
    rule = _rule(admin_user, "deal.won", _act("move_stage", stage_id=offer.pk))
    deal = make_deal(alice, "Acme", amount="10")
    deal_win(actor=alice, deal=deal)
    dispatch()
    assert _log(rule)[1][0].error == "The deal is closed."


# --- webhook ----------------------------------------------------------------------------------


def test_a_text_naming_the_record_shows_its_name_and_unknown_fields_show_nothing(
    admin_user, alice, client_deal, make_deal, dispatch
):
    _rule(
        admin_user,
        "deal.created",
        _act(
            "create_task",
            who="responsible",
            title="Follow up {{ record }}",
            description="{{ record.company }}|{{ record.no_such_field }}|{{ record.custom.x }}",
        ),
    )
    make_deal(alice, "Boilers", company_id=client_deal["company"].pk)
    dispatch()
    task = Task.objects.get(title__startswith="Follow up")
    assert task.title == "Follow up Boilers"
    assert task.description == f"{client_deal['company']}||"


def test_webhook_is_queued_with_the_record_as_payload(admin_user, alice, make_deal, dispatch):
    rule = _rule(admin_user, "deal.created", _act("webhook", url="https://hooks.example.com/deals"))
    deal = make_deal(alice, "Acme", amount="900")
    dispatch()
    message = OutgoingMessage.objects.get(key=_key(rule, "deal.created", deal.pk))
    assert message.kind == "webhook"
    assert message.url == "https://hooks.example.com/deals"
    payload = message.payload
    assert payload["rule"] == {"id": rule.pk, "name": rule.name}
    assert payload["event"] == "deal.created"
    assert (payload["object_type"], payload["object_id"]) == ("deal", deal.pk)
    assert payload["record"]["title"] == "Acme"
    assert payload["record"]["amount"] == "900.00"
    assert payload["record"]["url"] == f"/deals/{deal.pk}/"
    assert _log(rule)[1][0].outcome == "queued"


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/x", "javascript:alert(1)", "hooks.example.com", "http://"]
)
def test_webhook_refuses_an_address_that_is_not_http_when_saved(admin_user, url):
    errors = _refused(admin_user, "deal.created", "webhook", url=url)
    assert errors == {
        "actions.1.url": ["Action 1: Enter a web address starting with http:// or https://."]
    }


# --- rules that go wrong ----------------------------------------------------------------------


def test_an_unknown_action_in_a_stored_rule_switches_the_rule_off_with_the_reason(
    admin_user, alice, make_deal, dispatch
):
    rule = _rule(admin_user, "deal.created", _act("notify", who="responsible", title="x"))
    Rule.objects.filter(pk=rule.pk).update(
        actions=[{"type": "launch_rocket", "params": {}}, *rule.actions]
    )
    make_deal(alice, "Acme")
    dispatch()  # the worker does not crash
    rule.refresh_from_db()
    assert rule.is_active is False
    assert rule.inactive_reason == "The action “launch_rocket” is not available."
    run, actions = _log(rule)
    assert actions[0].action == "launch_rocket"
    assert actions[0].error == "The action “launch_rocket” is not available."
    make_deal(alice, "Next")
    dispatch()
    assert RuleRun.objects.filter(rule=rule).count() == 1  # switched off: no more runs


def test_a_failed_action_does_not_stop_the_following_ones(admin_user, alice, make_deal, dispatch):
    rule = _rule(
        admin_user,
        "deal.created",
        _act("email_client", subject="Hi", body="Hello"),
        _act("create_task", title="Find the client's email"),
        _act("notify", who="responsible", title="Check {{ record.title }}"),
    )
    make_deal(alice, "Acme")
    dispatch()
    run, actions = _log(rule)
    assert run.outcome == RunOutcome.PARTIAL
    assert [(a.index, a.action, a.outcome) for a in actions] == [
        (0, "email_client", "failed"),
        (1, "create_task", "done"),
        (2, "notify", "done"),
    ]
    assert Task.objects.filter(title="Find the client's email").count() == 1
    assert Notification.objects.filter(kind="automation", title="Check Acme").count() == 1
    rule.refresh_from_db()
    assert rule.is_active
