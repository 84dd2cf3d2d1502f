"""The counterparty directory as a user meets it through the services."""

from __future__ import annotations

import pytest

from rapport.core.errors import DuplicateFound, FieldErrors, PermissionDenied
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.parties.models import Company, ContactPoint, Person
from rapport.parties.services import company_create, company_update, person_create, person_update


def test_several_phones_typed_in_one_field_become_several_contact_points(alice):
    # when
    person = person_create(
        actor=alice,
        data={
            "first_name": "Ivan",
            "last_name": "Petrov",
            "phones": [{"raw": "+7 912 341-96-15; 8 (495) 123-45-67 доб. 12"}],
        },
    )
    # then
    phones = list(person.contact_points.filter(channel="phone").order_by("position"))
    assert [p.value for p in phones] == ["+79123419615", "+74951234567"]
    assert phones[1].extension == "12"
    assert phones[0].is_primary
    assert not phones[1].is_primary


def test_an_unparseable_phone_is_kept_as_typed_and_flagged(alice):
    person = person_create(
        actor=alice,
        data={
            "first_name": "Anna",
            "last_name": "Lee",
            "phones": [{"raw": "нет; +39 331 234 5678"}],
        },
    )
    points = {p.raw: p for p in person.contact_points.all()}
    assert points["нет"].valid is False
    assert points["нет"].value == ""
    assert points["+39 331 234 5678"].value == "+393312345678"


def test_emails_are_trimmed_lowercased_and_validated(alice):
    person = person_create(
        actor=alice,
        data={"first_name": "A", "last_name": "B", "emails": [{"raw": "  Ivan.Petrov@Mail.RU "}]},
    )
    assert person.contact_points.get(channel="email").value == "ivan.petrov@mail.ru"
    with pytest.raises(FieldErrors) as exc:
        person_create(
            actor=alice,
            data={"first_name": "C", "last_name": "D", "emails": [{"raw": "not-an-email"}]},
        )
    assert "emails" in exc.value.errors
    assert Person.objects.filter(first_name="C").count() == 0


def test_a_russian_inn_with_a_typo_is_refused_naming_the_field(alice):
    with pytest.raises(FieldErrors) as exc:
        company_create(
            actor=alice,
            data={"short_name": "Romashka", "tax_id": "7707083894", "tax_country": "RU"},
        )
    assert list(exc.value.errors) == ["tax_id"]
    assert "check digits" in exc.value.errors["tax_id"][0]
    company = company_create(
        actor=alice, data={"short_name": "Romashka", "tax_id": "7707 083 893", "tax_country": "RU"}
    )
    assert company.tax_id == "7707083893"


def test_an_italian_partita_iva_is_checked(alice):
    ok = company_create(
        actor=alice,
        data={"short_name": "Antonello", "tax_id": "IT01114601006", "tax_country": "IT"},
    )
    assert ok.tax_id == "01114601006"
    with pytest.raises(FieldErrors):
        company_create(
            actor=alice, data={"short_name": "Other", "tax_id": "01114601007", "tax_country": "IT"}
        )


def test_the_legal_form_is_recognised_from_the_name(alice):
    company = company_create(actor=alice, data={"short_name": "ООО «Ромашка»"})
    assert company.legal_form == "ООО"


def test_person_time_zone_follows_the_phone_region_unless_set_by_hand(alice):
    person = person_create(
        actor=alice,
        data={
            "first_name": "Elvin",
            "last_name": "Mammadov",
            "phones": [{"raw": "+994 50 123 45 67"}],
        },
    )
    assert person.time_zone == "Asia/Baku"
    person = person_update(actor=alice, person=person, data={"time_zone": "Europe/Rome"})
    assert person.time_zone == "Europe/Rome"
    assert person.time_zone_manual
    person = person_update(
        actor=alice, person=person, data={"phones": [{"raw": "+7 912 341 96 15"}]}
    )
    assert person.time_zone == "Europe/Rome"


def test_a_person_works_at_several_companies_with_a_position_and_role(alice, make_company):
    a, b = make_company(alice, "Alpha"), make_company(alice, "Beta")
    person = person_create(
        actor=alice,
        data={
            "first_name": "Maria",
            "last_name": "Rossi",
            "employments": [
                {"company_id": a.pk, "position": "CFO", "role": "chief_accountant"},
                {"company_id": b.pk, "position": "Advisor", "role": "other"},
            ],
        },
    )
    assert {(e.company.short_name, e.role) for e in person.employments.all()} == {
        ("Alpha", "chief_accountant"),
        ("Beta", "other"),
    }
    assert list(a.employments.values_list("person__last_name", flat=True)) == ["Rossi"]


def test_a_person_cannot_be_linked_to_a_company_outside_their_scope(alice, carol, make_company):
    hidden = make_company(carol, "Hidden Ltd")
    with pytest.raises(FieldErrors) as exc:
        person_create(
            actor=alice,
            data={"first_name": "X", "last_name": "Y", "employments": [{"company_id": hidden.pk}]},
        )
    assert exc.value.errors["employments"] == ["No such company."]


def test_every_write_is_audited_with_old_and_new_values(alice):
    company = company_create(actor=alice, data={"short_name": "Acme", "city": "Milano"})
    company_update(actor=alice, company=company, data={"city": "Roma"})
    entries = list(
        AuditEntry.objects.filter(object_type="company", object_id=company.pk).order_by("id")
    )
    assert [e.action for e in entries] == ["create", "update"]
    assert entries[1].actor == alice
    assert entries[1].changes["city"] == ["Milano", "Roma"]
    assert entries[1].changes["version"] == [1, 2]


def test_the_audit_log_cannot_be_rewritten(alice):
    from django.db import DatabaseError, transaction

    company_create(actor=alice, data={"short_name": "Acme"})
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.update(action="delete")


def test_writes_record_domain_events_in_the_outbox(alice):
    company = company_create(actor=alice, data={"short_name": "Acme"})
    company_update(actor=alice, company=company, data={"city": "Roma"})
    names = list(OutboxEvent.objects.filter(object_id=company.pk).values_list("name", flat=True))
    assert names == ["company.created", "company.updated"]


def test_an_error_after_the_change_rolls_back_the_event_too(alice, monkeypatch):
    import rapport.parties.services as services

    real_event_record = services.event_record

    def record_then_fail(**kwargs):
        real_event_record(**kwargs)  # the event row is written...
        raise RuntimeError("crash right after the event")  # ...then the service dies

    monkeypatch.setattr(services, "event_record", record_then_fail)
    with pytest.raises(RuntimeError):
        company_create(actor=alice, data={"short_name": "Acme"})
    assert Company.objects.count() == 0
    assert OutboxEvent.objects.count() == 0
    assert AuditEntry.objects.filter(object_type="company").count() == 0


def test_a_rep_cannot_edit_a_colleagues_record(alice, bob, make_company):
    company = make_company(alice, "Alice's client")
    with pytest.raises(PermissionDenied):
        company_update(actor=bob, company=company, data={"city": "X"})


def test_nothing_the_user_typed_is_lost_when_one_field_is_wrong(alice):
    with pytest.raises(FieldErrors) as exc:
        person_create(
            actor=alice,
            data={
                "first_name": "Ivan",
                "last_name": "Petrov",
                "birthday": "31.02.1990",
                "phones": [{"raw": "+7 912 341 96 15"}],
            },
        )
    assert list(exc.value.errors) == ["birthday"]
    assert ContactPoint.objects.count() == 0


def test_duplicate_guard_blocks_until_forced(alice):
    company_create(
        actor=alice,
        data={"short_name": "ООО «Ромашка»", "tax_id": "7707083893", "tax_country": "RU"},
    )
    with pytest.raises(DuplicateFound):
        company_create(actor=alice, data={"short_name": "Ромашка ООО"})
    forced = company_create(actor=alice, data={"short_name": "Ромашка ООО"}, force=True)
    assert forced.pk


def test_adding_an_email_from_another_region_keeps_the_saved_phones_as_they_were(alice):
    person = person_create(
        actor=alice,
        data={
            "first_name": "Karp",
            "last_name": "Lobanov",
            "phones": [{"raw": "8(912)321-03-25"}],
            "default_region": "RU",
        },
    )
    person_update(
        actor=alice,
        person=person,
        data={"emails": [{"raw": "karp@example.com"}], "default_region": "US"},
    )
    phones = list(person.contact_points.filter(channel="phone").values_list("value", "valid"))
    assert phones == [("+79123210325", True)]


def test_a_company_keeps_its_phones_when_its_emails_change_under_another_region(alice):
    company = company_create(
        actor=alice,
        data={
            "short_name": "Romashka",
            "phones": [{"raw": "8 (495) 123-45-67"}],
            "default_region": "RU",
        },
    )
    company_update(
        actor=alice,
        company=company,
        data={"emails": [{"raw": "info@romashka.example"}], "default_region": "IT"},
    )
    phones = list(company.contact_points.filter(channel="phone").values_list("value", flat=True))
    assert phones == ["+74951234567"]
