"""Leads through the services: intake, matching the directory, conversion, rejection."""

from __future__ import annotations

import decimal

import pytest
from django.db import transaction

from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.parties.models import Company, Person
from rapport.sales.models import Deal, Lead
from rapport.sales.selectors import LeadFilters, lead_list
from rapport.sales.services import (
    lead_convert,
    lead_create,
    lead_matches,
    lead_reject,
    lead_update,
)


def _then_fail(call):
    """Run a service inside the caller's transaction, which then fails."""
    with transaction.atomic():
        call()
        raise RuntimeError("the caller failed afterwards")


def _events(lead):
    return list(
        OutboxEvent.objects.filter(object_type="lead", object_id=lead.pk)
        .order_by("id")
        .values_list("name", flat=True)
    )


# --- intake ------------------------------------------------------------------------------------


def test_a_lead_phone_is_normalised_to_e164(alice, make_lead):
    lead = make_lead(alice, "Ivan", phone="8 (912) 341-96-15")
    assert lead.phone == "8 (912) 341-96-15"
    assert lead.phone_e164 == "+79123419615"
    foreign = make_lead(alice, "Maria", phone="+39 347 123 4567")
    assert foreign.phone_e164 == "+393471234567"


def test_an_unparseable_lead_phone_is_kept_as_typed(alice, make_lead):
    lead = make_lead(alice, "Ivan", phone="call after 5")
    assert lead.phone == "call after 5"
    assert lead.phone_e164 == ""


def test_a_lead_email_is_normalised_and_an_invalid_one_refused(alice, make_lead):
    lead = make_lead(alice, "Ivan", email="  Ivan.Petrov@Mail.RU ")
    assert lead.email == "ivan.petrov@mail.ru"
    with pytest.raises(FieldErrors) as exc:
        make_lead(alice, "Broken", email="ivan@@mail")
    assert list(exc.value.errors) == ["email"]
    assert "ivan@@mail" in exc.value.errors["email"][0]
    assert not Lead.objects.filter(name="Broken").exists()


@pytest.mark.parametrize(
    "data",
    [
        {"name": "Maria Rossi"},
        {"phone": "+39 347 123 4567"},
        {"email": "maria@rossi.it"},
        {"company_name": "Rossi S.r.l."},
    ],
)
def test_one_of_name_phone_email_or_company_is_enough_for_a_lead(alice, data):
    lead = lead_create(actor=alice, data=data)
    assert lead.status == "new"
    assert lead.responsible == alice


def test_a_lead_with_nothing_to_call_it_by_is_refused(alice):
    with pytest.raises(FieldErrors) as exc:
        lead_create(actor=alice, data={"text": "please call me", "interest": "windows"})
    assert "name" in exc.value.errors
    assert Lead.objects.count() == 0


def test_lead_bad_amount_currency_and_channel_are_refused_by_field(alice, make_lead):
    with pytest.raises(FieldErrors) as exc:
        make_lead(alice, "Maria", amount="-5", currency="ZZZ", channel="pigeon")
    assert set(exc.value.errors) == {"amount", "currency", "channel"}


def test_a_lead_is_created_audited_and_announced(alice, make_lead):
    lead = make_lead(
        alice,
        "Maria Rossi",
        channel="web_form",
        utm_source="google",
        utm_campaign="spring",
        amount="1500",
        currency="EUR",
    )
    assert lead.channel == "web_form"
    assert lead.amount == decimal.Decimal("1500.00")
    assert _events(lead) == ["lead.created"]
    assert OutboxEvent.objects.get(name="lead.created").payload == {"channel": "web_form"}
    audit = AuditEntry.objects.get(object_type="lead", object_id=lead.pk)
    assert audit.action == "create"
    assert audit.changes["utm_source"] == [None, "google"]


def test_a_failure_after_creating_a_lead_leaves_no_event(alice):
    with pytest.raises(RuntimeError):
        _then_fail(lambda: lead_create(actor=alice, data={"name": "Ghost"}))
    assert Lead.objects.count() == 0
    assert OutboxEvent.objects.filter(name="lead.created").count() == 0


def test_leads_are_listed_by_channel_and_status_within_scope(alice, bob, carol, make_lead):
    make_lead(alice, "By phone", channel="phone")
    make_lead(bob, "By mail", channel="email")
    make_lead(carol, "Other team", channel="phone")
    assert {x.name for x in lead_list(user=alice)} == {"By phone", "By mail"}
    assert [x.name for x in lead_list(user=alice, filters=LeadFilters(channel="phone"))] == [
        "By phone"
    ]
    assert [x.name for x in lead_list(user=bob)] == ["By mail"]
    assert [x.name for x in lead_list(user=carol)] == ["Other team"]
    with pytest.raises(FieldErrors):
        list(lead_list(user=alice, filters=LeadFilters(status="lost")))


def test_a_rep_cannot_edit_his_managers_lead(alice, bob, make_lead):
    lead = make_lead(alice, "Alice's lead")
    with pytest.raises(PermissionDenied):
        lead_update(actor=bob, lead=lead, data={"name": "Bob's now"}, version=lead.version)
    with pytest.raises(PermissionDenied):
        lead_convert(actor=bob, lead=lead, version=lead.version)
    with pytest.raises(PermissionDenied):
        lead_reject(actor=bob, lead=lead, reason="spam", version=lead.version)
    lead.refresh_from_db()
    assert (lead.name, lead.status) == ("Alice's lead", "new")


def test_a_stale_lead_edit_is_refused(alice, make_lead):
    lead = make_lead(alice, "Maria")
    seen = lead.version
    lead_update(actor=alice, lead=lead, data={"status": "in_work"}, version=seen)
    with pytest.raises(StaleVersion):
        lead_update(actor=alice, lead=lead, data={"name": "Maria R."}, version=seen)
    lead.refresh_from_db()
    assert (lead.name, lead.status) == ("Maria", "in_work")


# --- matching the directory --------------------------------------------------------------------


def test_a_lead_with_the_phone_of_a_known_person_shows_that_person(alice, make_person, make_lead):
    person = make_person(alice, "Ivan", "Petrov", phones=[{"raw": "+7 912 341-96-15"}])
    lead = make_lead(alice, "Someone", phone="8 912 341 96 15")
    matches = lead_matches(lead, alice)
    assert [c.object_id for c in matches["person"]] == [person.pk]


def test_a_lead_with_the_phone_and_name_of_a_known_person_is_linked_to_them(
    alice, make_person, make_lead
):
    person = make_person(alice, "Ivan", "Petrov", phones=[{"raw": "+7 912 341-96-15"}])
    lead = make_lead(alice, "Ivan Petrov", phone="8 912 341 96 15")
    assert lead.person == person


def test_a_lead_with_the_email_of_a_known_person_is_linked_to_them(alice, make_person, make_lead):
    person = make_person(alice, "Ivan", "Petrov", emails=[{"raw": "ivan@petrov.ru"}])
    lead = make_lead(alice, "I. P.", email="IVAN@petrov.ru")
    assert lead.person == person


def test_a_lead_is_not_linked_to_a_person_outside_the_users_scope(
    alice, carol, make_person, make_lead
):
    make_person(carol, "Ivan", "Petrov", emails=[{"raw": "ivan@petrov.ru"}])
    lead = make_lead(alice, "Ivan Petrov", email="ivan@petrov.ru")
    assert lead.person is None
    matches = lead_matches(lead, alice)
    assert [c.visible for c in matches["person"]] == [False]


def test_a_lead_with_only_the_phone_of_a_known_person_is_linked_to_them(alice, make_person):
    person = make_person(alice, "Ivan", "Petrov", phones=[{"raw": "+7 912 341-96-15"}])
    lead = lead_create(actor=alice, data={"phone": "8 912 341 96 15", "text": "call me back"})
    assert lead.person == person
    assert lead.company is None


def test_editing_a_lead_phone_links_the_person_it_belongs_to(alice, make_person, make_lead):
    person = make_person(alice, "Ivan", "Petrov", phones=[{"raw": "+7 912 341-96-15"}])
    lead = make_lead(alice, "Caller")
    assert lead.person is None
    lead = lead_update(actor=alice, lead=lead, data={"phone": "+79123419615"}, version=lead.version)
    assert lead.person == person


# --- conversion --------------------------------------------------------------------------------


@pytest.fixture
def rossi(alice, pipelines, make_lead):
    return make_lead(
        alice,
        "Maria Rossi",
        phone="+39 347 123 4567",
        email="maria@rossi.it",
        company_name="Rossi S.r.l.",
        interest="Windows for the new office",
        amount="1500",
        currency="EUR",
        channel="web_form",
    )


def test_converting_a_lead_creates_company_person_and_deal(alice, pipelines, rossi):
    # when
    deal = lead_convert(actor=alice, lead=rossi, version=rossi.version)
    # then
    company = Company.objects.get()
    person = Person.objects.get()
    assert company.short_name == "Rossi S.r.l."
    assert (person.first_name, person.last_name) == ("Maria", "Rossi")
    assert {p.value for p in person.contact_points.all()} == {"+393471234567", "maria@rossi.it"}
    assert person.employments.filter(company=company).exists()
    assert deal.title == "Windows for the new office"
    assert (deal.company, deal.person, deal.contact, deal.lead) == (company, person, person, rossi)
    assert (deal.amount, deal.currency) == (decimal.Decimal("1500.00"), "EUR")
    assert deal.responsible == alice
    assert deal.pipeline == pipelines["strict"]
    assert deal.stage == pipelines["strict_stages"][0]
    rossi.refresh_from_db()
    assert rossi.status == "converted"
    assert rossi.converted_at is not None
    assert (rossi.company, rossi.person) == (company, person)
    converted = OutboxEvent.objects.get(name="lead.converted")
    assert converted.object_id == rossi.pk
    assert converted.payload == {"deal": deal.pk, "company": company.pk, "person": person.pk}
    assert OutboxEvent.objects.filter(name="deal.created", object_id=deal.pk).count() == 1


def test_converting_into_a_chosen_pipeline_with_a_chosen_title(alice, pipelines, rossi):
    deal = lead_convert(
        actor=alice,
        lead=rossi,
        deal={"pipeline_id": pipelines["free"].pk, "title": "Rossi windows"},
        create_company=False,
    )
    assert deal.pipeline == pipelines["free"]
    assert deal.title == "Rossi windows"
    assert deal.company is None
    assert deal.contact is None
    assert Company.objects.count() == 0
    assert deal.person == Person.objects.get()


def test_converting_links_existing_records_the_guard_finds_instead_of_duplicating(
    alice, pipelines, rossi, make_company, make_person
):
    # given: the company and the person were entered in the directory after the lead came in
    company = make_company(alice, "ROSSI srl")
    person = make_person(alice, "Maria", "Rossi", emails=[{"raw": "maria@rossi.it"}])
    rossi.refresh_from_db()
    assert (rossi.company, rossi.person) == (None, None)
    # when
    deal = lead_convert(actor=alice, lead=rossi, version=rossi.version)
    # then
    assert Company.objects.count() == 1
    assert Person.objects.count() == 1
    assert (deal.company, deal.person) == (company, person)
    rossi.refresh_from_db()
    assert (rossi.company, rossi.person) == (company, person)


def test_converting_uses_the_records_the_lead_was_linked_to(
    alice, pipelines, make_person, make_lead
):
    person = make_person(alice, "Ivan", "Petrov", emails=[{"raw": "ivan@petrov.ru"}])
    lead = make_lead(alice, "Ivan Petrov", email="ivan@petrov.ru")
    deal = lead_convert(actor=alice, lead=lead)
    assert deal.person == person
    assert Person.objects.count() == 1


def test_converting_to_records_picked_by_id(alice, pipelines, rossi, make_company, make_person):
    company = make_company(alice, "Completely different name")
    person = make_person(alice, "Giulia", "Bianchi")
    deal = lead_convert(actor=alice, lead=rossi, company_id=company.pk, person_id=person.pk)
    assert (deal.company, deal.person) == (company, person)
    assert Company.objects.count() == 1
    assert Person.objects.count() == 1


def test_converting_to_a_record_outside_scope_is_refused(
    alice, carol, pipelines, rossi, make_company
):
    hidden = make_company(carol, "Carol's client")
    with pytest.raises(FieldErrors) as exc:
        lead_convert(actor=alice, lead=rossi, company_id=hidden.pk)
    assert list(exc.value.errors) == ["company_id"]
    rossi.refresh_from_db()
    assert rossi.status == "new"
    assert Deal.objects.count() == 0


def test_a_lead_is_converted_only_once(alice, pipelines, rossi):
    lead_convert(actor=alice, lead=rossi)
    rossi.refresh_from_db()
    with pytest.raises(FieldErrors) as exc:
        lead_convert(actor=alice, lead=rossi, version=rossi.version)
    assert list(exc.value.errors) == ["status"]
    assert Deal.objects.count() == 1
    assert OutboxEvent.objects.filter(name="lead.converted").count() == 1


def test_a_converted_lead_keeps_its_history_and_is_not_edited(alice, pipelines, rossi):
    rossi = lead_update(actor=alice, lead=rossi, data={"status": "in_work"}, version=rossi.version)
    deal = lead_convert(actor=alice, lead=rossi, version=rossi.version)
    rossi.refresh_from_db()
    history = list(AuditEntry.objects.filter(object_type="lead", object_id=rossi.pk).order_by("id"))
    assert [a.action for a in history] == ["create", "update", "update"]
    assert history[1].changes["status"] == ["new", "in_work"]
    assert history[2].changes["status"] == ["in_work", "converted"]
    assert history[2].changes["deal"] == [None, deal.pk]
    assert _events(rossi) == ["lead.created", "lead.updated", "lead.converted"]
    for call in (
        lambda: lead_update(actor=alice, lead=rossi, data={"name": "X"}, version=rossi.version),
        lambda: lead_reject(actor=alice, lead=rossi, reason="spam", version=rossi.version),
    ):
        with pytest.raises(FieldErrors):
            call()
    rossi.refresh_from_db()
    assert (rossi.name, rossi.status) == ("Maria Rossi", "converted")


def test_a_failure_after_converting_rolls_back_everything(alice, pipelines, rossi):
    with pytest.raises(RuntimeError):
        _then_fail(lambda: lead_convert(actor=alice, lead=rossi))
    rossi.refresh_from_db()
    assert rossi.status == "new"
    assert (Deal.objects.count(), Company.objects.count(), Person.objects.count()) == (0, 0, 0)
    assert _events(rossi) == ["lead.created"]
    assert OutboxEvent.objects.filter(name__in=["lead.converted", "deal.created"]).count() == 0


# --- rejection ---------------------------------------------------------------------------------


def test_rejecting_a_lead_needs_a_reason(alice, make_lead):
    lead = make_lead(alice, "Spammer")
    for reason in ("", "   "):
        with pytest.raises(FieldErrors) as exc:
            lead_reject(actor=alice, lead=lead, reason=reason, version=lead.version)
        assert list(exc.value.errors) == ["reject_reason"]
    lead.refresh_from_db()
    assert lead.status == "new"
    lead = lead_reject(actor=alice, lead=lead, reason=" not a real client ", version=lead.version)
    assert (lead.status, lead.reject_reason) == ("rejected", "not a real client")
    assert _events(lead) == ["lead.created", "lead.rejected"]


def test_a_rejected_lead_is_not_converted(alice, pipelines, make_lead):
    lead = make_lead(alice, "Spammer")
    lead = lead_reject(actor=alice, lead=lead, reason="spam")
    with pytest.raises(FieldErrors):
        lead_convert(actor=alice, lead=lead, version=lead.version)
    assert Deal.objects.count() == 0


def test_status_converted_or_rejected_is_not_set_by_editing(alice, make_lead):
    lead = make_lead(alice, "Maria")
    for status in ("converted", "rejected", "bogus"):
        with pytest.raises(FieldErrors) as exc:
            lead_update(actor=alice, lead=lead, data={"status": status}, version=lead.version)
        assert list(exc.value.errors) == ["status"]
