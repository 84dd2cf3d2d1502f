"""What the bulk import path must keep doing while it reads and writes a chunk at a time."""

from __future__ import annotations

import pytest

from rapport.core.models import AuditEntry, OutboxEvent
from rapport.imports import services
from rapport.imports.models import Outcome, RunStatus
from rapport.imports.normalize import PhoneMemo
from rapport.parties.duplicates import find_duplicates
from rapport.parties.models import Company, ContactPoint, Person, PersonNameKey
from rapport.parties.services import person_create


def test_a_phone_typed_the_same_way_in_many_rows_is_parsed_once_and_saved_on_each():
    memo = PhoneMemo()
    first = memo("8 (495) 111-22-33, junk", default_region="RU")
    again = memo("8 (495) 111-22-33, junk", default_region="RU")
    assert [p.e164 for p in first] == ["+74951112233", None]
    assert again == first
    assert memo.parsed == 1
    # the same digits read in another country are another number
    assert memo("8 (495) 111-22-33", default_region="DE")[0].e164 == "+84951112233"
    assert memo.parsed == 2


def test_the_phone_memo_forgets_past_its_size_so_a_long_file_keeps_memory_flat():
    memo = PhoneMemo(size=3)
    for n in range(10):
        memo(f"+7 912 000-00-{n:02d}", default_region="RU")
    assert len(memo.cells) <= 3
    assert memo("+7 912 000-00-01", default_region="RU")[0].e164 == "+79120000001"


def test_colleagues_typing_one_switchboard_number_each_get_it_saved(
    import_csv, admin_user, tmp_path
):
    names = ["Иванов Иван", "Петрова Анна", "Сидоров Олег", "Кузнецова Мария", "Орлов Глеб"]
    rows = [[name, "ООО Ромашка", "", "8 (495) 111-22-33", "", "", "", ""] for name in names]
    run = import_csv(admin_user, tmp_path, rows)
    assert set(run.rows.values_list("outcome", flat=True)) == {Outcome.CREATED}
    assert Person.objects.count() == 5
    assert ContactPoint.objects.filter(person__isnull=False, value="+74951112233").count() == 5


def test_a_new_company_named_on_many_rows_of_a_chunk_is_created_once(
    import_csv, admin_user, tmp_path
):
    # The first row creates it; the rows after must find it although the chunk looked the
    # name up (and found nothing) before the first row was decided.
    rows = [
        [name, company, "", "", "", "", "", ""]
        for name, company in (
            ("Иванов Иван", "ООО Новый Горизонт"),
            ("Петров Пётр", "Новый Горизонт ООО"),
            ("Сидорова Анна", "ООО «Новый горизонт»"),
        )
    ]
    run = import_csv(admin_user, tmp_path, rows)
    assert (
        list(run.rows.order_by("row_number").values_list("outcome", flat=True))
        == [Outcome.CREATED] * 3
    )
    company = Company.objects.get()
    assert sorted(company.employments.values_list("person__last_name", flat=True)) == [
        "Иванов",
        "Петров",
        "Сидорова",
    ]


def test_a_person_added_by_an_import_is_found_by_the_duplicate_guard(
    import_csv, admin_user, tmp_path
):
    import_csv(admin_user, tmp_path, [["Кузнецова Мария Петровна", "", "", "", "", "", "", ""]])
    person = Person.objects.get()
    assert PersonNameKey.objects.filter(person=person).exists()
    found = find_duplicates(object_type="person", name="Кузнецова Мария", user=admin_user)
    assert [c.object_id for c in found] == [person.pk]


def test_an_import_update_saves_the_fields_bumps_the_version_and_records_it(
    import_csv, admin_user, tmp_path
):
    existing = person_create(
        actor=admin_user,
        data={"first_name": "Иван", "last_name": "Иванов", "emails": [{"raw": "ivan@example.com"}]},
    )
    before = Person.objects.get(pk=existing.pk)
    run = import_csv(
        admin_user,
        tmp_path,
        [["Иванов Иван", "", "", "+79120003344", "ivan@example.com", "", "Тула", "Звонить"]],
    )
    assert list(run.rows.values_list("outcome", flat=True)) == [Outcome.UPDATED]
    after = Person.objects.get(pk=existing.pk)
    assert (after.city, after.version) == ("Тула", before.version + 1)
    assert after.updated_at > before.updated_at
    assert after.first_name == "Иван"
    assert after.responsible_id == before.responsible_id
    assert after.custom_fields == before.custom_fields
    entry = AuditEntry.objects.filter(object_type="person", object_id=existing.pk).latest("id")
    assert entry.action == "update"
    assert entry.changes["city"] == ["", "Тула"]
    assert OutboxEvent.objects.filter(name="person.updated", object_id=existing.pk).exists()
    # and undo takes it back
    services.run_undo(actor=admin_user, run=run)
    assert Person.objects.get(pk=existing.pk).city == ""


def test_valid_rows_only_counts_every_row_for_the_progress_and_reports_each_bad_one(
    import_csv, admin_user, tmp_path
):
    run = import_csv(
        admin_user,
        tmp_path,
        [
            ["Иванов Иван", "", "", "", "not-an-email", "", "", ""],
            ["", "", "", "", "", "", "", ""],
            ["Петров Пётр", "", "", "+79120001122", "", "", "", ""],
        ],
        valid_rows_only=True,
    )
    assert (run.status, run.total_rows, run.rows_done) == (RunStatus.DONE, 3, 3)
    lines = list(run.rows.order_by("row_number"))
    assert [line.outcome for line in lines] == [Outcome.ERROR, Outcome.SKIPPED, Outcome.CREATED]
    assert "not-an-email" in " ".join(lines[0].messages)


def test_a_broken_file_with_valid_rows_only_stops_before_anything_is_written(admin_user, tmp_path):
    path = tmp_path / "clients.csv"
    good = "".join(f"Иванов Иван{i};+7 912 000{i:04d}\n" for i in range(100))
    path.write_text(f'ФИО;Телефон\n{good}Петров;"x"y\n', encoding="utf-8")
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    services.run_configure(actor=admin_user, run=run, valid_rows_only=True)
    with pytest.raises(Exception, match="quoting"):
        services.run_execute(run.pk, actor=admin_user)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert Person.objects.count() == 0


def test_each_report_line_points_at_the_person_and_company_of_its_row(
    import_csv, admin_user, tmp_path
):
    pairs = [
        ("Иванов Иван", "Ромашка"), ("Петрова Анна", "Василёк"), ("Сидоров Олег", "Кристалл"),
        ("Кузнецова Мария", "Вектор"), ("Орлов Глеб", "Гранит"), ("Зайцева Ольга", "Меридиан"),
        ("Морозов Пётр", "Сфера"), ("Волкова Нина", "Альтаир"), ("Лебедев Юрий", "Полюс"),
    ]  # fmt: skip
    rows = [[name, f"ООО {company}", "", "", "", "", "", ""] for name, company in pairs]
    run = import_csv(admin_user, tmp_path, rows)
    for line, row in zip(run.rows.order_by("row_number"), rows, strict=True):
        assert line.outcome == Outcome.CREATED
        person = Person.objects.get(pk=line.person_id)
        assert person.full_name == row[0]
        assert Company.objects.get(pk=line.company_id).short_name in (row[1], row[1][4:] + " ООО")
        assert list(person.employments.values_list("company_id", flat=True)) == [line.company_id]
