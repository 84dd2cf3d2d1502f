"""Undoing a big import: every record it made is taken back a chunk at a time, with the same
rules as one record at a time (changed since, another team's, referred to: kept and listed)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.db import connection, router
from django.db.models import ProtectedError, QuerySet, RestrictedError
from django.db.models.deletion import Collector
from django.test.utils import CaptureQueriesContext

from rapport.core.errors import FieldErrors
from rapport.core.events import changes_payload
from rapport.core.models import AuditEntry, OutboxEvent, SearchDocument
from rapport.imports import services
from rapport.imports.models import ImportRun, Outcome, RunStatus
from rapport.parties.models import (
    Company,
    CompanyNameKey,
    ContactPoint,
    Employment,
    Person,
    PersonNameKey,
)
from rapport.parties.services import party_delete, party_purge, person_create, person_update

pytestmark = pytest.mark.django_db

LAST = [
    "Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов",
    "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов",
    "Егоров", "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров",
]  # fmt: skip
FIRST = ["Иван", "Пётр", "Олег", "Глеб", "Сергей", "Андрей", "Алексей", "Дмитрий", "Михаил",
         "Николай", "Павел", "Роман"]  # fmt: skip
MIDDLE = ["Иванович", "Петрович", "Олегович", "Сергеевич", "Андреевич", "Алексеевич",
          "Дмитриевич", "Михайлович", "Николаевич", "Павлович"]  # fmt: skip
WORDS = ["Альфа", "Бета", "Гамма", "Дельта", "Омега", "Вектор", "Гранит", "Зенит", "Орбита",
         "Радуга"]  # fmt: skip


def _people(n: int, *, companies: int = 0) -> list[list[str]]:
    """``n`` rows of different people (own phone and email); with ``companies``, each works
    at one of that many companies."""
    names = [" ".join(p) for p in itertools.product(LAST, FIRST, MIDDLE)][:n]
    assert len(names) == n
    return [
        [
            name,
            f"ООО {WORDS[i % companies % 10]} {WORDS[i % companies // 10]}" if companies else "",
            "менеджер" if companies else "",
            f"+7912{i:07d}",
            f"p{i}@example.com",
            "",
            "Тула",
            "",
        ]
        for i, name in enumerate(names)
    ]


def _created(run: ImportRun, kind: str) -> dict[int, int]:
    """The records of ``kind`` the run created -> their row."""
    return {
        int(ch["id"]): row
        for row, changes in run.rows.values_list("row_number", "changes")
        for ch in changes
        if ch["action"] == "create" and ch["type"] == kind
    }


def _blockers_as_django_finds_them(obj: Company | Person) -> list[str]:
    """The rule undo always had: what Django's deletion collector would set to NULL or refuse
    to delete with the record."""
    collector = Collector(using=router.db_for_write(type(obj)))
    try:
        collector.collect([obj])
    except (ProtectedError, RestrictedError):
        return ["protected"]
    found = []
    for (fld, _value), batches in collector.field_updates.items():
        count = sum(b.count() if isinstance(b, QuerySet) else 1 for b in batches)
        if count:
            found.append(f"{fld.model._meta.verbose_name_plural}: {count}")
    return found


def test_undo_of_a_big_import_removes_every_record_it_made_with_all_that_is_theirs(
    import_csv, admin_user, tmp_path
):
    # given: an import of 2,200 people working at 40 new companies
    bystander = person_create(
        actor=admin_user,
        data={"first_name": "Анна", "last_name": "Старая", "emails": [{"raw": "old@example.com"}]},
    )
    run = import_csv(admin_user, tmp_path, _people(2200, companies=40))
    people, companies = _created(run, "person"), _created(run, "company")
    assert len(people) == 2200
    assert 20 < len(companies) <= 40  # names alike enough are one company
    assert ContactPoint.objects.filter(person_id__in=people).count() == 4400
    assert Employment.objects.filter(person_id__in=people).count() == 2200
    assert PersonNameKey.objects.filter(person_id__in=people).exists()
    # when
    result = services.run_undo(actor=admin_user, run=run)
    # then
    removed = 2200 + len(companies)
    assert (result.removed, result.restored, result.kept) == (removed, 0, [])
    run.refresh_from_db()
    assert run.status == RunStatus.UNDONE
    assert (run.counts["undo_removed"], run.counts["undo_kept"]) == (removed, 0)
    assert list(Person.objects.values_list("pk", flat=True)) == [bystander.pk]
    assert not Company.objects.exists()
    assert not ContactPoint.objects.filter(person_id__in=people).exists()
    assert not ContactPoint.objects.filter(company_id__in=companies).exists()
    assert not Employment.objects.exists()
    assert not PersonNameKey.objects.filter(person_id__in=people).exists()
    assert not CompanyNameKey.objects.filter(company_id__in=companies).exists()
    assert not SearchDocument.objects.filter(object_type="person", object_id__in=people).exists()
    assert not SearchDocument.objects.filter(object_type="company").exists()
    assert SearchDocument.objects.filter(object_type="person", object_id=bystander.pk).exists()
    for kind, ids in (("person", people), ("company", companies)):
        entries = AuditEntry.objects.filter(object_type=kind, action="delete")
        assert sorted(entries.values_list("object_id", flat=True)) == sorted(ids)
        assert {tuple(e.changes["purged"]) for e in entries} == {(None, f"import {run.pk} undone")}
        assert {e.actor_id for e in entries} == {admin_user.pk}
        events = OutboxEvent.objects.filter(name=f"{kind}.purged")
        assert sorted(events.values_list("object_id", flat=True)) == sorted(ids)
    assert OutboxEvent.objects.filter(name="import.undone", object_id=run.pk).count() == 1


def test_undo_keeps_records_changed_or_deleted_after_the_import_and_lists_them(
    import_csv, admin_user, tmp_path
):
    run = import_csv(admin_user, tmp_path, _people(1200))
    people = _created(run, "person")
    changed = Person.objects.get(pk=sorted(people)[1100])  # in the second chunk
    person_update(actor=admin_user, person=changed, data={"city": "Омск"})
    binned = Person.objects.get(pk=sorted(people)[5])
    party_delete(actor=admin_user, obj=binned)
    result = services.run_undo(actor=admin_user, run=run)
    assert result.removed == 1198
    assert result.kept == [
        f"row {people[binned.pk]}: {binned} was changed after the import and is kept.",
        f"row {people[changed.pk]}: {changed} was changed after the import and is kept.",
    ]
    assert sorted(Person.objects.values_list("pk", flat=True)) == sorted([binned.pk, changed.pk])
    assert ContactPoint.objects.filter(person=changed).count() == 2  # the kept keep theirs
    assert not AuditEntry.objects.filter(object_id=changed.pk, action="delete").exists()
    assert not OutboxEvent.objects.filter(name="person.purged", object_id=changed.pk).exists()


def test_undo_keeps_people_a_deal_task_or_interaction_now_refers_to_and_says_what(
    import_csv, admin_user, tmp_path, pipelines
):
    from rapport.activities.services import interaction_log, task_create
    from rapport.sales.services import deal_create

    # given: four people imported; three of them got a deal, a task, a call since
    run = import_csv(admin_user, tmp_path, _people(4))
    people = _created(run, "person")
    with_deal, with_task, with_call, alone = (Person.objects.get(pk=pk) for pk in sorted(people))
    deal_create(
        actor=admin_user,
        data={"title": "Supply", "pipeline_id": pipelines["free"].pk, "person_id": with_deal.pk},
    )
    task_create(actor=admin_user, data={"title": "Call back", "person_id": with_task.pk})
    interaction_log(
        actor=admin_user,
        data={"kind": "call", "status": "done", "body": "ok", "person_id": with_call.pk},
    )
    expected = []
    for person in (with_deal, with_task, with_call):
        assert _blockers_as_django_finds_them(person)  # the rule as Django's collector has it
        with pytest.raises(FieldErrors) as refused:
            party_purge(actor=admin_user, obj=person, reason="one at a time")
        what = "; ".join(_blockers_as_django_finds_them(person))
        assert f"({what})" in str(refused.value)
        expected.append(f"row {people[person.pk]}: {refused.value}")
    # when
    result = services.run_undo(actor=admin_user, run=run)
    # then: the same refusal as one record at a time, in the order of the rows
    assert result.removed == 1
    assert result.kept == expected
    assert "deals: 1" in result.kept[0]
    assert "tasks: 1" in result.kept[1]
    assert "interactions: 1" in result.kept[2]
    assert not Person.objects.filter(pk=alone.pk).exists()
    assert Person.objects.count() == 3


def test_undo_keeps_records_outside_the_actors_delete_scope(
    import_csv, admin_user, alice, carol, tmp_path
):
    # given: an import whose new people belong to Carol (team B)
    run = import_csv(admin_user, tmp_path, _people(30), responsible_id=carol.pk)
    assert set(Person.objects.values_list("responsible_id", flat=True)) == {carol.pk}
    # when: Alice, who manages team A, undoes it
    result = services.run_undo(actor=alice, run=run)
    # then: nothing of team B is hers to delete; the import stays as it was
    assert (result.removed, len(result.kept)) == (0, 30)
    assert result.kept[0] == f"row {min(_created(run, 'person').values())}: " + (
        "You may not delete this record."
    )
    assert Person.objects.count() == 30
    assert ImportRun.objects.get(pk=run.pk).status == RunStatus.DONE
    # and someone who may delete them takes the import back
    assert services.run_undo(actor=admin_user, run=run).removed == 30


def test_undo_gives_records_the_run_updated_their_values_back(import_csv, admin_user, tmp_path):
    earlier = [("Анна", "Старкова"), ("Борис", "Белкин"), ("Вера", "Жукова"),
               ("Гордей", "Ершов"), ("Дарья", "Цветкова")]  # fmt: skip
    existing = [
        person_create(
            actor=admin_user,
            data={"first_name": first, "last_name": last, "emails": [{"raw": f"p{i}@example.com"}]},
        )
        for i, (first, last) in enumerate(earlier)
    ]
    rows = _people(300)
    for i, (first, last) in enumerate(earlier):  # five rows are about the five known people
        rows[i][0] = f"{last} {first}"
    run = import_csv(admin_user, tmp_path, rows)
    outcomes = list(run.rows.order_by("row_number").values_list("outcome", flat=True))
    assert outcomes[:5] == [Outcome.UPDATED] * 5
    assert Person.objects.get(pk=existing[0].pk).city == "Тула"
    result = services.run_undo(actor=admin_user, run=run)
    assert (result.removed, result.restored, result.kept) == (295, 5, [])
    assert sorted(Person.objects.values_list("pk", flat=True)) == [p.pk for p in existing]
    for i, person in enumerate(existing):
        person.refresh_from_db()
        assert (person.city, person.last_name) == ("", earlier[i][1])
        assert list(person.contact_points.values_list("value", flat=True)) == [f"p{i}@example.com"]


def test_the_statements_of_an_undo_do_not_grow_with_the_records_it_removes(
    import_csv, admin_user, tmp_path
):
    def statements(n: int) -> int:
        folder = tmp_path / str(n)
        folder.mkdir()
        run = import_csv(admin_user, folder, _people(n, companies=20))
        with CaptureQueriesContext(connection) as queries:
            result = services.run_undo(actor=admin_user, run=run)
        assert result.removed == n + len(_created(run, "company"))
        return len(queries)

    few, many = statements(200), statements(2000)
    # ~1,000 records a chunk: 2,000 people take two chunks where 200 take one (the database
    # deletes the records themselves 100 at a time); one record at a time took ~30 a record
    assert many <= 3 * few
    assert many < 200


def _after(model: Any, mark: int) -> QuerySet[Any]:
    return model.objects.filter(pk__gt=mark).order_by("pk")


def test_undo_gives_a_person_and_a_company_the_import_updated_exactly_their_old_details(
    import_csv, admin_user, tmp_path, make_company
):
    # given: Anna works at Альфа; Бета has no tax id
    alpha, beta = make_company(admin_user, "ООО Альфа"), make_company(admin_user, "ООО Бета")
    anna = person_create(
        actor=admin_user,
        data={
            "first_name": "Анна",
            "last_name": "Старкова",
            "phones": [{"raw": "+79120000001"}],
            "emails": [{"raw": "anna@example.com"}],
            "employments": [{"company_id": alpha.pk, "position": "Бухгалтер", "role": "lawyer"}],
        },
    )
    old_points = list(anna.contact_points.values_list("channel", "value", "position"))
    # and an import gives her a new phone and a new employer, and Бета a tax id
    row = ["Старкова Анна", "ООО Бета", "директор", "+79130000002", "anna@example.com",
           "7707083893", "", ""]  # fmt: skip
    run = import_csv(admin_user, tmp_path, [row])
    assert run.rows.get().outcome == Outcome.UPDATED
    assert anna.contact_points.filter(channel="phone").count() == 2
    assert set(anna.employments.values_list("company_id", flat=True)) == {alpha.pk, beta.pk}
    assert Company.objects.get(pk=beta.pk).tax_id == "7707083893"
    audit_mark = AuditEntry.objects.order_by("pk").last().pk  # type: ignore[union-attr]
    event_mark = OutboxEvent.objects.order_by("pk").last().pk  # type: ignore[union-attr]
    # when
    result = services.run_undo(actor=admin_user, run=run)
    # then: exactly the old details back
    assert (result.removed, result.restored, result.kept) == (0, 2, [])
    anna.refresh_from_db()
    assert list(anna.contact_points.values_list("channel", "value", "position")) == old_points
    assert list(anna.employments.values_list("company_id", "position", "role")) == [
        (alpha.pk, "Бухгалтер", "lawyer")
    ]
    assert Company.objects.get(pk=beta.pk).tax_id == ""
    doc = SearchDocument.objects.get(object_type="person", object_id=anna.pk)
    assert doc.subtitle == "ООО Альфа"
    assert "79130000002" not in doc.body
    # and one audit entry and one event a record, as an edit of each would give
    audits = list(_after(AuditEntry, audit_mark).exclude(object_type="import"))
    assert [(a.object_type, a.object_id, a.action) for a in audits] == [
        ("company", beta.pk, "update"),  # in the order the row changed them
        ("person", anna.pk, "update"),
    ]
    company_changes, person_changes = audits[0].changes, audits[1].changes
    assert person_changes["employments"] == [
        sorted([f"{alpha.pk}:Бухгалтер:lawyer", f"{beta.pk}:директор:other"]),
        [f"{alpha.pk}:Бухгалтер:lawyer"],
    ]
    assert person_changes["contact_points"][1] == [
        "phone:+79120000001",
        "email:anna@example.com",
    ]
    assert company_changes["tax_id"] == ["7707083893", ""]
    events = list(_after(OutboxEvent, event_mark).exclude(name="import.undone"))
    assert [(e.name, e.object_id) for e in events] == [
        ("company.updated", beta.pk),
        ("person.updated", anna.pk),
    ]
    assert events[1].payload == changes_payload(person_changes)


def test_undo_keeps_the_values_of_a_record_changed_after_the_import_and_lists_it(
    import_csv, admin_user, tmp_path
):
    # given: two known people the import gives a city
    known = [
        person_create(
            actor=admin_user,
            data={"first_name": first, "last_name": last, "emails": [{"raw": f"p{i}@example.com"}]},
        )
        for i, (first, last) in enumerate([("Анна", "Старкова"), ("Борис", "Белкин")])
    ]
    rows = _people(2)
    rows[0][0], rows[1][0] = "Старкова Анна", "Белкин Борис"
    run = import_csv(admin_user, tmp_path, rows)
    # and Boris is edited after it
    boris = Person.objects.get(pk=known[1].pk)
    person_update(actor=admin_user, person=boris, data={"notes": "called"})
    audit_mark = AuditEntry.objects.order_by("pk").last().pk  # type: ignore[union-attr]
    # when
    result = services.run_undo(actor=admin_user, run=run)
    # then: Anna gets her values back; Boris keeps his and is listed
    assert (result.removed, result.restored) == (0, 1)
    assert result.kept == [f"row 3: {boris} was changed after the import; its values are kept."]
    anna, boris = (Person.objects.get(pk=p.pk) for p in known)
    assert (anna.city, boris.city, boris.notes) == ("", "Тула", "called")
    assert anna.contact_points.count() == 1
    assert boris.contact_points.count() == 2
    restored = _after(AuditEntry, audit_mark).filter(object_type="person", action="update")
    assert list(restored.values_list("object_id", flat=True)) == [anna.pk]


def test_the_statements_of_an_undo_do_not_grow_with_the_records_it_restores(
    import_csv, admin_user, tmp_path
):
    def statements(n: int) -> int:
        folder = tmp_path / str(n)
        (folder / "known").mkdir(parents=True)
        rows = _people(n)
        import_csv(admin_user, folder / "known", rows)
        for i, cells in enumerate(rows):  # the same people: a new phone and an employer
            cells[1], cells[2] = f"ООО {WORDS[i % 10]} {n}", "менеджер"
            cells[3] = f"+7913{n:03d}{i:04d}"
        run = import_csv(admin_user, folder, rows)
        assert run.counts.get("updated") == n
        with CaptureQueriesContext(connection) as queries:
            result = services.run_undo(actor=admin_user, run=run)
        assert (result.restored, result.kept) == (n, [])
        return len(queries)

    few, many = statements(200), statements(1000)
    # one chunk either way, read and written with bulk statements (the inserts go a few
    # hundred rows at a time); one record at a time took ~25 statements a record
    assert many <= few + 20
    assert many < 100
