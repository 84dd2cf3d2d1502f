"""Every condition operator on the field types it accepts, all/any, and type mismatches
refused when the rule is saved (``conditions_clean`` and ``rule_save``), naming the condition
and the field.

Conditions are cleaned as the rule builder saves them, then checked against real records
loaded the way the engine loads them (``schema.load``).
"""

from __future__ import annotations

from typing import Any

import pytest

from rapport.automations.conditions import OPERATORS, conditions_check, conditions_clean
from rapport.automations.models import RunOutcome
from rapport.automations.schema import fields_for, load
from rapport.automations.services import rule_save
from rapport.core.errors import FieldErrors
from rapport.sales.services import deal_update


@pytest.fixture
def custom(db: Any) -> None:
    """Custom fields of deals, one of each type."""
    from rapport.core.models import CustomFieldDefinition

    for name, kind, choices in (
        ("region", "text", []),
        ("score", "number", []),
        ("budget", "money", []),
        ("tender_date", "date", []),
        ("segment", "choice", ["smb", "key"]),
        ("channels", "multi_choice", ["web", "phone", "fair"]),
        ("is_key", "bool", []),
        ("curator", "user", []),
    ):
        CustomFieldDefinition.objects.create(
            object_type="deal",
            name=name,
            label=name.replace("_", " ").title(),
            type=kind,
            choices=choices,
        )


@pytest.fixture
def deal(alice, bob, custom, make_company, make_person, make_deal) -> Any:
    """A deal of Acme (Retail, tagged VIP and Wholesale) with Ivan as the contact person."""
    acme = make_company(
        alice,
        "Acme",
        industry="Retail",
        phones=[{"raw": "+7 495 123-45-67"}],
        emails=[{"raw": "info@acme.example"}],
        tags=["VIP", "Wholesale"],
    )
    ivan = make_person(
        alice,
        "Ivan",
        "Petrov",
        birthday="1990-03-15",
        phones=[{"raw": "+7 912 341-96-15"}],
        emails=[{"raw": "Ivan@Acme.example"}],
        tags=["Decision maker"],
    )
    made = make_deal(
        alice,
        "Boilers for the Kazan Warehouse",
        amount="150000",
        company_id=acme.pk,
        contact_id=ivan.pk,
        expected_close="2031-06-30",
        source="Website",
        custom_fields={
            "region": "Volga",
            "score": 42,
            "budget": {"amount": 2500, "currency": "EUR"},
            "tender_date": "2031-05-01",
            "segment": "key",
            "channels": ["web", "fair"],
            "is_key": True,
            "curator": bob.pk,
        },
    )
    return load("deal", made.pk)


def _clean(object_type: str, items: list[dict[str, Any]], match: str = "all", **kw: Any) -> Any:
    cleaned, errors = conditions_clean(
        {"match": match, "items": items},
        fields_for(object_type),
        has_changes=kw.get("has_changes", False),
    )
    return cleaned, errors


def holds(obj: Any, field: str, op: str, value: Any = None, *, changes: Any = None) -> bool:
    """Whether one condition, cleaned as when saved, holds for ``obj``."""
    object_type = obj._meta.model_name
    cleaned, errors = _clean(
        object_type,
        [{"field": field, "op": op, "value": value}],
        has_changes=changes is not None,
    )
    assert not errors, errors
    ok, results = conditions_check(cleaned, fields_for(object_type), obj, changes)
    assert results[0]["ok"] is ok
    return ok


def refused(object_type: str, field: str, op: str, value: Any = None, **kw: Any) -> list[str]:
    """The messages refusing one condition (empty when it is accepted)."""
    _cleaned, errors = _clean(object_type, [{"field": field, "op": op, "value": value}], **kw)
    return [m for messages in errors.values() for m in messages]


def test_the_operator_registry_holds_the_usual_operators():
    assert set(OPERATORS) == {
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "not_contains",
        "in",
        "not_in",
        "empty",
        "not_empty",
        "changed",
        "changed_from",
        "changed_to",
    }


# --- text ------------------------------------------------------------------------------------


def test_text_equals_ignoring_case_and_surrounding_spaces(deal):
    assert holds(deal, "source", "eq", "website")
    assert holds(deal, "source", "eq", "  WEBSITE ")
    assert not holds(deal, "source", "eq", "web")
    assert holds(deal, "source", "ne", "fair")
    assert not holds(deal, "source", "ne", "Website")


def test_text_contains_ignoring_case(deal):
    assert holds(deal, "title", "contains", "kazan")
    assert holds(deal, "title", "contains", "WAREHOUSE")
    assert not holds(deal, "title", "contains", "Moscow")
    assert holds(deal, "title", "not_contains", "moscow")
    assert not holds(deal, "title", "not_contains", "boilers")


def test_text_is_one_of_a_list_or_a_comma_separated_value(deal):
    assert holds(deal, "source", "in", ["fair", "website"])
    assert holds(deal, "source", "in", "fair, Website")
    assert not holds(deal, "source", "in", "fair, tender")
    assert holds(deal, "source", "not_in", ["fair", "tender"])
    assert not holds(deal, "source", "not_in", ["WEBSITE"])


def test_text_is_empty_or_not(deal):
    assert holds(deal, "loss_comment", "empty")
    assert not holds(deal, "loss_comment", "not_empty")
    assert holds(deal, "title", "not_empty")
    assert not holds(deal, "title", "empty")


def test_text_equals_nothing_when_compared_with_an_empty_value(deal):
    assert holds(deal, "loss_comment", "eq", "")
    assert not holds(deal, "title", "eq", "")


# --- numbers ---------------------------------------------------------------------------------


def test_numbers_compare_by_value_not_as_text(deal):
    assert holds(deal, "amount", "gt", "100000")
    assert holds(deal, "amount", "gt", "99999.99")
    assert not holds(deal, "amount", "gt", "150000")
    assert holds(deal, "amount", "gte", "150000")
    assert holds(deal, "amount", "lt", "1000000")  # as text "150000" > "1000000"
    assert not holds(deal, "amount", "lt", "150000")
    assert holds(deal, "amount", "lte", "150 000,00")  # spaces and a decimal comma
    assert holds(deal, "amount", "eq", "150000.0")
    assert holds(deal, "amount", "ne", "150001")
    assert holds(deal, "amount", "in", "100, 150000")
    assert holds(deal, "amount", "not_in", ["100", "200"])
    assert holds(deal, "won_amount", "empty")
    assert holds(deal, "amount", "not_empty")


def test_an_empty_number_is_neither_greater_nor_less(deal):
    assert not holds(deal, "won_amount", "gt", "0")
    assert not holds(deal, "won_amount", "lt", "0")


# --- dates and times -------------------------------------------------------------------------


def test_dates_compare_as_dates(deal):
    assert holds(deal, "expected_close", "eq", "2031-06-30")
    assert holds(deal, "expected_close", "gt", "2031-06-29")
    assert holds(deal, "expected_close", "gte", "2031-06-30")
    assert holds(deal, "expected_close", "lt", "2031-07-01")
    assert holds(deal, "expected_close", "lte", "2031-06-30")
    assert not holds(deal, "expected_close", "lt", "2031-06-30")
    assert holds(deal, "expected_close", "ne", "2031-07-01")
    assert holds(deal, "expected_close", "in", ["2031-06-30", "2031-12-31"])
    assert holds(deal, "closed_at", "empty")


def test_date_and_time_compare_with_a_value_given_with_its_offset(deal):
    assert holds(deal, "created_at", "gt", "2000-01-01T00:00:00+00:00")
    assert holds(deal, "created_at", "lt", "2999-01-01T00:00:00+00:00")
    assert not holds(deal, "created_at", "lt", "2000-01-01T00:00:00+00:00")
    assert holds(deal, "created_at", "not_empty")


def test_date_and_time_compare_with_a_value_typed_without_an_offset(deal):
    assert holds(deal, "created_at", "gt", "2000-01-01T00:00")
    assert holds(deal, "created_at", "gt", "2000-01-01")


# --- yes / no, choices, references -----------------------------------------------------------


def test_yes_no_fields_accept_the_usual_spellings(deal):
    ivan = load("person", deal.contact_id)
    assert ivan.time_zone_manual is False
    assert holds(ivan, "time_zone_manual", "eq", "false")
    assert holds(ivan, "time_zone_manual", "eq", "no")
    assert holds(ivan, "time_zone_manual", "ne", True)
    assert not holds(ivan, "time_zone_manual", "eq", "yes")
    assert holds(deal, "custom.is_key", "eq", "1")
    assert holds(deal, "custom.is_key", "eq", True)


def test_choice_fields_compare_their_codes(deal):
    assert holds(deal, "status", "eq", "open")
    assert holds(deal, "status", "ne", "won")
    assert holds(deal, "status", "in", ["open", "won"])
    assert holds(deal, "status", "not_in", "won, lost")
    assert not holds(deal, "status", "in", ["lost"])


def test_a_choice_value_that_is_not_a_choice_is_refused(db):
    messages = refused("deal", "status", "eq", "pending")
    assert messages == ["Condition 1: “pending” is not a choice of “status”."]


def test_integer_choices_compare_whatever_the_value_type(alice):
    from rapport.activities.services import task_create

    task = load("task", task_create(actor=alice, data={"title": "Call", "priority": 3}).pk)
    assert holds(task, "priority", "eq", "3")
    assert holds(task, "priority", "eq", 3)
    assert holds(task, "priority", "in", ["3", "4"])


def test_references_compare_by_id(deal, alice, bob):
    assert holds(deal, "responsible", "eq", alice.pk)
    assert holds(deal, "responsible", "eq", str(alice.pk))
    assert holds(deal, "responsible", "ne", bob.pk)
    assert holds(deal, "responsible", "in", [bob.pk, alice.pk])
    assert holds(deal, "lead", "empty")
    assert holds(deal, "company", "not_empty")


# --- lists: phones, emails, tags, co-workers -------------------------------------------------


def test_lists_contain_an_item_ignoring_case(deal):
    acme = load("company", deal.company_id)
    assert holds(acme, "tags", "contains", "vip")
    assert holds(acme, "tags", "eq", "Wholesale")
    assert not holds(acme, "tags", "contains", "Partner")
    assert holds(acme, "tags", "not_contains", "Partner")
    assert not holds(acme, "tags", "not_contains", "VIP")
    assert holds(acme, "tags", "in", "Partner, VIP")
    assert holds(acme, "tags", "not_in", ["Partner", "Supplier"])
    assert holds(acme, "tags", "ne", "Partner")


def test_phones_and_emails_are_compared_in_their_normalised_form(deal):
    acme = load("company", deal.company_id)
    assert holds(acme, "phones", "contains", "+74951234567")
    assert holds(acme, "emails", "contains", "INFO@acme.example")
    ivan = load("person", deal.contact_id)
    assert holds(ivan, "emails", "contains", "ivan@acme.example")
    assert holds(ivan, "region", "eq", "RU")


def test_empty_lists(deal, make_company, alice):
    bare = load("company", make_company(alice, "Bare").pk)
    assert holds(bare, "tags", "empty")
    assert holds(bare, "phones", "empty")
    assert holds(deal, "coworkers", "empty")
    acme = load("company", deal.company_id)
    assert holds(acme, "tags", "not_empty")


def test_lists_refuse_ordering_operators(db):
    messages = refused("company", "tags", "gt", "3")
    assert messages == ["Condition 1: “tags” is a list; “>” cannot compare it."]


# --- custom fields ---------------------------------------------------------------------------


def test_custom_fields_compare_by_their_type(deal, bob):
    assert holds(deal, "custom.region", "eq", "volga")
    assert holds(deal, "custom.region", "contains", "OLG")
    assert holds(deal, "custom.score", "gt", "41")
    assert holds(deal, "custom.score", "lte", "42")
    assert holds(deal, "custom.tender_date", "lt", "2031-05-02")
    assert holds(deal, "custom.segment", "eq", "key")
    assert holds(deal, "custom.segment", "in", ["smb", "key"])
    assert holds(deal, "custom.channels", "contains", "fair")
    assert not holds(deal, "custom.channels", "contains", "phone")
    assert holds(deal, "custom.curator", "eq", bob.pk)


def test_an_unset_custom_field_is_empty(alice, custom, make_deal):
    bare = load("deal", make_deal(alice, "Bare").pk)
    assert holds(bare, "custom.region", "empty")
    assert holds(bare, "custom.score", "empty")
    assert not holds(bare, "custom.score", "gt", "0")


def test_a_money_custom_field_compares_its_amount(deal):
    assert holds(deal, "custom.budget", "gt", "2000")


# --- related records -------------------------------------------------------------------------


def test_related_records_fields_are_read_through_the_relation(deal):
    assert holds(deal, "company.industry", "eq", "retail")
    assert holds(deal, "company.tags", "contains", "VIP")
    assert holds(deal, "company.phones", "contains", "+74951234567")
    assert holds(deal, "contact.first_name", "eq", "Ivan")
    assert holds(deal, "contact.birthday", "lt", "2000-01-01")
    assert holds(deal, "contact.emails", "contains", "ivan@acme.example")
    assert holds(deal, "person.last_name", "empty")  # no person, only a contact


def test_a_missing_related_record_makes_its_fields_empty(alice, make_deal):
    bare = load("deal", make_deal(alice, "Bare").pk)
    assert holds(bare, "company.industry", "empty")
    assert not holds(bare, "company.industry", "eq", "Retail")
    assert holds(bare, "company.industry", "ne", "Retail")


# --- changed, changed from, changed to -------------------------------------------------------


def test_changed_operators_read_the_events_old_and_new_values(deal, alice, bob):
    changes = {
        "amount": ["5000.00", "150000.00"],
        "responsible": [bob.pk, alice.pk],
        "custom_fields": [{"segment": "smb"}, {"segment": "key"}],
    }
    assert holds(deal, "amount", "changed", changes=changes)
    assert holds(deal, "amount", "changed_from", "5000", changes=changes)
    assert holds(deal, "amount", "changed_to", "150000", changes=changes)
    assert not holds(deal, "amount", "changed_to", "5000", changes=changes)
    assert holds(deal, "responsible", "changed_from", bob.pk, changes=changes)
    assert holds(deal, "custom.segment", "changed_to", "key", changes=changes)
    assert holds(deal, "custom.segment", "changed_from", "smb", changes=changes)
    assert not holds(deal, "source", "changed", changes=changes)
    assert not holds(deal, "custom.region", "changed", changes=changes)


def test_changed_operators_are_refused_for_a_trigger_without_a_change(db):
    messages = refused("deal", "amount", "changed")
    assert messages == [
        "Condition 1: “changed” works only with triggers on a change (record updated, "
        "field changed)."
    ]


def test_changed_to_runs_the_rule_only_on_that_change(
    admin_user, alice, make_deal, dispatch, rule_log
):
    rule = rule_save(
        actor=admin_user,
        data={
            "name": "Tender deals",
            "trigger": "deal.updated",
            "conditions": {"items": [{"field": "source", "op": "changed_to", "value": "tender"}]},
            "actions": [{"type": "create_task", "params": {"title": "Tender papers"}}],
        },
    )
    deal = make_deal(alice, "Acme")
    deal = deal_update(actor=alice, deal=deal, data={"source": "Tender"})
    deal_update(actor=alice, deal=deal, data={"amount": "10"})
    dispatch()
    runs = sorted(rule_log(rule), key=lambda r: r.event_id)
    assert [r.outcome for r in runs] == [RunOutcome.DONE, RunOutcome.NO_MATCH]


# --- all / any -------------------------------------------------------------------------------


def test_all_needs_every_condition_and_any_needs_one(deal):
    items = [
        {"field": "amount", "op": "gt", "value": "100000"},
        {"field": "company.industry", "op": "eq", "value": "Banking"},
    ]
    fields = fields_for("deal")
    for match, expected in (("all", False), ("any", True)):
        cleaned, errors = _clean("deal", items, match=match)
        assert not errors
        ok, results = conditions_check(cleaned, fields, deal)
        assert ok is expected
        assert [r["ok"] for r in results] == [True, False]
        assert results[0]["actual"] == "150000.00"
    both = [items[0], {"field": "company.industry", "op": "eq", "value": "Retail"}]
    cleaned, _errors = _clean("deal", both, match="all")
    assert conditions_check(cleaned, fields, deal)[0] is True


def test_no_conditions_always_hold(deal):
    cleaned, errors = conditions_clean(None, fields_for("deal"), has_changes=False)
    assert errors == {}
    assert cleaned == {"match": "all", "items": []}
    assert conditions_check(cleaned, fields_for("deal"), deal)[0] is True


def test_a_match_other_than_all_or_any_is_refused(db):
    _cleaned, errors = _clean("deal", [], match="most")
    assert errors == {"conditions.match": ['Choose "all" or "any".']}


# --- mismatches refused when saving ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "key", "message"),
    [
        (
            "title",
            "gt",
            "100",
            "conditions.1.op",
            "Condition 1: “title” is text; “>” cannot compare it.",
        ),
        (
            "amount",
            "gt",
            "lots",
            "conditions.1.value",
            "Condition 1: “amount” is a number; “lots” is not.",
        ),
        (
            "amount",
            "contains",
            "1",
            "conditions.1.op",
            "Condition 1: “amount” is a number; “contains” cannot compare it.",
        ),
        (
            "expected_close",
            "lt",
            "next week",
            "conditions.1.value",
            "Condition 1: “expected close date” is a date; “next week” is not.",
        ),
        (
            "created_at",
            "gt",
            "yesterday",
            "conditions.1.value",
            "Condition 1: “created” is a date and time; “yesterday” is not.",
        ),
        (
            "status",
            "gt",
            "open",
            "conditions.1.op",
            "Condition 1: “status” is a choice; “>” cannot compare it.",
        ),
        (
            "responsible",
            "eq",
            "Alice",
            "conditions.1.value",
            "Condition 1: “responsible manager” is a reference; “Alice” is not.",
        ),
        (
            "company.industry",
            "lt",
            "5",
            "conditions.1.op",
            "Condition 1: “Company → industry” is text; “<” cannot compare it.",
        ),
        (
            "custom.score",
            "eq",
            "many",
            "conditions.1.value",
            "Condition 1: “Score” is a number; “many” is not.",
        ),
        (
            "custom.is_key",
            "eq",
            "maybe",
            "conditions.1.value",
            "Condition 1: “Is Key” is yes / no; “maybe” is not.",
        ),
        (
            "amount",
            "in",
            "10, lots",
            "conditions.1.value",
            "Condition 1: “amount” is a number; “['10', 'lots']” is not.",
        ),
        ("amount", "in", "", "conditions.1.value", "Condition 1: list at least one value."),
        ("amount", "gt", "", "conditions.1.value", "Condition 1: “amount” is a number; “” is not."),
        ("nonsense", "eq", "1", "conditions.1.field", "Condition 1: there is no field “nonsense”."),
        ("amount", "like", "1", "conditions.1.op", "Condition 1: unknown operator “like”."),
    ],
)
def test_a_type_mismatch_is_refused_naming_the_condition_and_the_field(
    custom, field, op, value, key, message
):
    _cleaned, errors = _clean("deal", [{"field": field, "op": op, "value": value}])
    assert errors == {key: [message]}


def test_saving_a_rule_with_a_mismatch_is_refused_naming_the_condition(admin_user, custom):
    with pytest.raises(FieldErrors) as caught:
        rule_save(
            actor=admin_user,
            data={
                "name": "Mixed up",
                "trigger": "deal.created",
                "conditions": {
                    "match": "any",
                    "items": [
                        {"field": "amount", "op": "gt", "value": "100000"},
                        {"field": "custom.score", "op": "gte", "value": "high"},
                        {"field": "title", "op": "lt", "value": "5"},
                    ],
                },
                "actions": [{"type": "create_task", "params": {"title": "x"}}],
            },
        )
    errors = caught.value.errors
    assert set(errors) == {"conditions.2.value", "conditions.3.op"}
    assert errors["conditions.2.value"] == ["Condition 2: “Score” is a number; “high” is not."]
    assert errors["conditions.3.op"] == ["Condition 3: “title” is text; “<” cannot compare it."]
