"""Staged updates of existing records (the importer's writes and their undo) follow the
rules of an edit of one record: the version read, employments, audit entries and events."""

from __future__ import annotations

from typing import Any

import pytest

from rapport.core.errors import StaleVersion
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.parties.models import Company, Employment, Person
from rapport.parties.services import DirectoryBatch, person_create, person_update

pytestmark = pytest.mark.django_db


def _worker(actor: Any, last_name: str, jobs: list[dict[str, Any]]) -> Person:
    return person_create(
        actor=actor,
        data={"first_name": "Анна", "last_name": last_name, "employments": jobs},
        force=True,
    )


def test_a_batch_update_with_an_old_version_refuses_a_record_changed_since(
    admin_user, make_company
):
    # given: a person and a company, both edited after they were read
    anna = _worker(admin_user, "Старкова", [])
    acme = make_company(admin_user, "ООО Акме")
    read = {"person": anna.version, "company": acme.version}
    person_update(actor=admin_user, person=anna, data={"city": "Омск"})
    batch = DirectoryBatch(actor=admin_user)
    batch.load(companies=[acme.pk], people=[anna.pk])
    person, company = batch.get("person", anna.pk), batch.get("company", acme.pk)
    assert isinstance(person, Person)
    assert isinstance(company, Company)
    # when / then: the stale version is refused, the current one goes through
    with pytest.raises(StaleVersion):
        batch.person_update(person=person, data={"city": ""}, version=read["person"])
    assert batch.company_update(company=company, data={"city": "Тула"}, version=read["company"])
    batch.flush()
    assert Person.objects.get(pk=anna.pk).city == "Омск"
    assert Company.objects.get(pk=acme.pk).city == "Тула"


def test_a_batch_update_gives_a_person_employments_as_an_edit_of_one_record_does(
    admin_user, make_company
):
    # given: twins working at Альфа and Бета
    alpha, beta, gamma = (make_company(admin_user, f"ООО {n}") for n in ("Альфа", "Бета", "Гамма"))
    jobs = [
        {"company_id": alpha.pk, "position": "бухгалтер"},
        {"company_id": beta.pk, "position": "юрист", "role": "lawyer"},
    ]
    edited, batched = _worker(admin_user, "Одна", jobs), _worker(admin_user, "Другая", jobs)
    kept_row = Employment.objects.get(person=batched, company=beta)
    wanted = [
        {"company_id": beta.pk, "position": "директор", "role": "director"},
        {"company_id": gamma.pk, "position": "консультант"},
    ]
    # when: one is edited on her own, the other through a batch
    person_update(actor=admin_user, person=edited, data={"employments": wanted})
    batch = DirectoryBatch(actor=admin_user)
    batch.load(companies=[], people=[batched.pk])
    person = batch.get("person", batched.pk)
    assert isinstance(person, Person)
    batch.person_update(person=person, data={"employments": wanted}, version=batched.version)
    batch.flush()

    # then: the same employments, audit entry and event
    def jobs_of(p: Person) -> list[tuple[int, str, str]]:
        return sorted(p.employments.values_list("company_id", "position", "role"))

    assert (
        jobs_of(batched)
        == jobs_of(edited)
        == [
            (beta.pk, "директор", "director"),
            (gamma.pk, "консультант", "other"),
        ]
    )
    assert Employment.objects.get(person=batched, company=beta).pk == kept_row.pk
    audits = {
        a.object_id: a.changes
        for a in AuditEntry.objects.filter(object_type="person", action="update")
    }
    assert audits[batched.pk] == audits[edited.pk]
    assert audits[batched.pk]["employments"] == [
        sorted([f"{alpha.pk}:бухгалтер:other", f"{beta.pk}:юрист:lawyer"]),
        sorted([f"{beta.pk}:директор:director", f"{gamma.pk}:консультант:other"]),
    ]
    events = {e.object_id: e.payload for e in OutboxEvent.objects.filter(name="person.updated")}
    assert events[batched.pk] == events[edited.pk]
