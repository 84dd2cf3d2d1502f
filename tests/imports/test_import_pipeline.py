"""The import pipeline as a user meets it: files, mapping, duplicates, refusals, undo."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from rapport.core.errors import FieldErrors
from rapport.imports import services
from rapport.imports.mapping import auto_map
from rapport.imports.models import ImportRun, MappingPreset, Outcome, RunStatus
from rapport.parties.models import Company, ContactPoint, Person
from rapport.parties.services import person_create, person_update

HEADER = ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "ИНН", "Город", "Комментарий"]


def _csv(
    path: Path, rows: list[list[str]], *, encoding: str = "utf-8", delimiter: str = ";"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def _xlsx(path: Path, rows: list[list[Any]]) -> Path:
    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def _import(actor: Any, path: Path, **config: Any) -> ImportRun:
    run = services.run_create(
        actor=actor,
        source=path,
        file_name=path.name,
        target=config.pop("target", "people"),
        default_region=config.pop("region", "RU"),
    )
    if config:
        run = services.run_configure(actor=actor, run=run, **config)
    return services.run_execute(run.pk, actor=actor)


def _outcomes(run: ImportRun) -> list[str]:
    return list(run.rows.order_by("row_number").values_list("outcome", flat=True))


# --- files --------------------------------------------------------------------------------------


def test_a_sheet_with_title_rows_finds_its_header_and_maps_russian_columns(admin_user, tmp_path):
    path = _xlsx(
        tmp_path / "clients.xlsx",
        [
            ["Выгрузка клиентов"],
            [],
            HEADER,
            [
                "Иванов Иван Иванович",
                "ООО «Ромашка»",
                "Директор",
                "8 (912) 345-67-89",
                "ivan@romashka.ru",
                "",
                "Москва",
                "",
            ],
        ],
    )
    run = services.run_create(
        actor=admin_user, source=path, file_name=path.name, target="people", default_region="RU"
    )
    assert run.header_row == 3
    assert run.mapping == [
        "full_name", "company", "position", "phones", "emails", "company_tax_id", "city", "notes"
    ]  # fmt: skip
    run = services.run_execute(run.pk, actor=admin_user)
    person = Person.objects.get()
    assert (person.last_name, person.first_name, person.middle_name) == (
        "Иванов",
        "Иван",
        "Иванович",
    )
    assert person.employments.get().company.short_name == "ООО «Ромашка»"
    assert person.employments.get().position == "Директор"
    assert list(person.contact_points.values_list("value", flat=True)) == [
        "+79123456789", "ivan@romashka.ru"
    ]  # fmt: skip


def test_headers_in_five_languages_map_to_the_same_fields(db):
    assert auto_map(["Ad Soyad", "Şirkət", "Telefon", "E-poçt", "VÖEN"], "people") == [
        "full_name", "company", "phones", "emails", "company_tax_id"
    ]  # fmt: skip
    italian = ["Nome e cognome", "Azienda", "Telefono", "Email", "Partita IVA"]
    assert auto_map(italian, "people") == [
        "full_name", "company", "phones", "emails", "company_tax_id"
    ]  # fmt: skip
    assert auto_map(["الاسم الكامل", "الشركة", "الهاتف", "البريد الإلكتروني"], "people") == [
        "full_name", "company", "phones", "emails"
    ]  # fmt: skip
    assert auto_map(["Full name", "Mobile phone", "Work phone", "Whatever"], "people") == [
        "full_name", "phones", "phones", ""
    ]  # fmt: skip


def test_a_windows_1251_csv_with_semicolons_is_read_as_russian(admin_user, tmp_path):
    path = _csv(
        tmp_path / "clients.csv",
        [HEADER, ["Петров Пётр", "", "", "+7 912 000-11-22", "", "", "Тула", "Звонить утром"]],
        encoding="cp1251",
    )
    run = _import(admin_user, path)
    assert (run.encoding, run.delimiter) != ("utf-8", ",")
    assert run.status == RunStatus.DONE
    assert Person.objects.get().last_name == "Петров"
    assert Person.objects.get().notes == "Звонить утром"


def test_a_file_whose_name_lies_about_its_format_is_refused(admin_user, tmp_path):
    path = tmp_path / "clients.xlsx"
    path.write_text("name;phone\nIvan;123\n", encoding="utf-8")
    with pytest.raises(FieldErrors) as exc:
        services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    assert "not a spreadsheet" in str(exc.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary\x00", "binary"),
    ],
)
def test_an_empty_or_binary_file_gets_a_clear_message(admin_user, tmp_path, content, message):
    path = tmp_path / "clients.csv"
    path.write_bytes(content)
    with pytest.raises(FieldErrors) as exc:
        services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    assert message in str(exc.value)


def test_a_header_only_file_imports_nothing_and_says_so(admin_user, tmp_path):
    path = _csv(tmp_path / "clients.csv", [HEADER])
    run = _import(admin_user, path)
    assert run.status == RunStatus.DONE
    assert run.rows.count() == 0
    assert Person.objects.count() == 0


def test_broken_quoting_stops_with_the_line_and_writes_nothing(admin_user, tmp_path):
    path = tmp_path / "clients.csv"
    good = "".join(f"Иванов Иван{i};+7 912 000{i:04d}\n" for i in range(100))
    path.write_text(f'ФИО;Телефон\n{good}Петров;"x"y\n', encoding="utf-8")
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    with pytest.raises(Exception, match="quoting"):
        services.run_execute(run.pk, actor=admin_user)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "line 102" in run.error
    assert Person.objects.count() == 0


def test_broken_quoting_at_the_top_is_refused_when_the_file_is_chosen(admin_user, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text('ФИО;Телефон\nИванов Иван;"+7 912 1\nПетров;"x"y\n', encoding="utf-8")
    with pytest.raises(FieldErrors, match="quoting"):
        services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")


def test_a_file_that_switches_encoding_half_way_is_refused(admin_user, tmp_path):
    path = tmp_path / "clients.csv"
    head = "ФИО;Телефон\n".encode() + "Иванов Иван;+79120001122\n".encode() * 10000
    path.write_bytes(head + "Петров Пётр;+79120001133\n".encode("cp1251"))
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    with pytest.raises(Exception, match="encoding"):
        services.run_execute(run.pk, actor=admin_user)
    assert ImportRun.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_a_row_with_values_beyond_the_header_is_reported_not_cut(admin_user, tmp_path):
    path = _csv(
        tmp_path / "wide.csv", [["ФИО", "Телефон"], ["Иванов Иван", "+79120001122"] + ["x"] * 498]
    )
    run = _import(admin_user, path)
    assert run.status == RunStatus.INVALID
    assert Person.objects.count() == 0
    lines = services.invalid_lines(run)
    assert lines[0].outcome == Outcome.ERROR
    assert "Column 3 holds a value" in lines[0].messages[0]


def test_vcards_import_through_the_same_pipeline(admin_user, tmp_path):
    path = tmp_path / "contacts.vcf"
    path.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Maria Rossi\r\nN:Rossi;Maria;;;\r\n"
        "ORG:Bianchi S.r.l.\r\nTITLE:Buyer\r\nTEL;TYPE=CELL:+39 347 123 4567\r\n"
        "EMAIL:maria@bianchi.it\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ali Məmmədov\r\nTEL:+994 50 123 45 67\r\nEND:VCARD\r\n",
        encoding="utf-8",
    )
    run = _import(admin_user, path, region="IT")
    assert run.status == RunStatus.DONE
    maria = Person.objects.get(last_name="Rossi")
    assert maria.first_name == "Maria"
    assert maria.employments.get().company.short_name == "Bianchi S.r.l."
    assert set(maria.contact_points.values_list("value", flat=True)) == {
        "+393471234567", "maria@bianchi.it"
    }  # fmt: skip
    assert Person.objects.filter(contact_points__value="+994501234567").exists()


# --- rows ---------------------------------------------------------------------------------------


def test_junk_phones_are_kept_as_typed_and_flagged_with_a_warning(admin_user, tmp_path):
    path = _csv(tmp_path / "c.csv", [["ФИО", "Телефон"], ["Иванов Иван", "нет; +7 912 000-11-22"]])
    run = _import(admin_user, path)
    line = run.rows.get()
    assert line.phones == ["+79120001122"]
    assert any("нет" in m for m in line.messages)
    points = ContactPoint.objects.filter(channel="phone").order_by("position")
    assert [(p.raw, p.valid) for p in points] == [("нет", False), ("+7 912 000-11-22", True)]


def test_rows_with_errors_refuse_the_whole_import_and_nothing_is_written(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER, ["Иванов Иван", "ООО Ромашка", "", "", "not-an-email", "", "", ""],
         ["Петров Пётр", "", "", "+79120001122", "", "", "", ""]],
    )  # fmt: skip
    run = _import(admin_user, path)
    assert run.status == RunStatus.INVALID
    assert "1 rows have errors" in run.error
    assert Person.objects.count() == Company.objects.count() == 0
    lines = services.invalid_lines(run)
    assert [line.outcome for line in lines] == [Outcome.ERROR, Outcome.SKIPPED]
    assert "not-an-email" in lines[0].messages[0]
    assert "E-mail" in lines[0].messages[0] or "emails" in lines[0].messages[0]


def test_valid_rows_only_imports_the_good_rows_and_reports_the_bad(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER, ["Иванов Иван", "", "", "", "not-an-email", "", "", ""],
         ["Петров Пётр", "", "", "+79120001122", "", "", "", ""]],
    )  # fmt: skip
    run = _import(admin_user, path, valid_rows_only=True)
    assert run.status == RunStatus.DONE
    assert _outcomes(run) == [Outcome.ERROR, Outcome.CREATED]
    assert list(Person.objects.values_list("last_name", flat=True)) == ["Петров"]


def test_rows_repeating_a_person_inside_the_file_end_in_one_record(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER,
         ["Иванов Иван Иванович", "ООО Ромашка", "", "+7 912 000-11-22", "ivan@example.com",
          "", "", ""],
         ["ИВАНОВ  ИВАН", "Ромашка ООО", "", "8 (495) 111-22-33", "ivan@example.com", "", "", ""]],
    )  # fmt: skip
    run = _import(admin_user, path)
    lines = list(run.rows.order_by("row_number"))
    assert [line.outcome for line in lines] == [Outcome.CREATED, Outcome.MERGED]
    assert lines[1].merged_with_row == lines[0].row_number
    person = Person.objects.get()
    assert Company.objects.count() == 1
    assert set(person.contact_points.filter(channel="phone").values_list("value", flat=True)) == {
        "+79120001122", "+74951112233"
    }  # fmt: skip


def test_a_shared_switchboard_number_alone_does_not_merge_two_colleagues(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER,
         ["Иванов Иван", "ООО Ромашка", "", "8 (495) 111-22-33", "", "", "", ""],
         ["Сидорова Анна", "ООО Ромашка", "", "8 (495) 111-22-33", "", "", "", ""]],
    )  # fmt: skip
    run = _import(admin_user, path)
    assert _outcomes(run) == [Outcome.CREATED, Outcome.CREATED]
    assert Person.objects.count() == 2
    assert Company.objects.count() == 1


@pytest.mark.parametrize(
    ("policy", "outcome", "city", "phones"),
    [
        ("skip", Outcome.MATCHED, "", {"+79120001122"}),
        ("update", Outcome.UPDATED, "Тула", {"+79120001122", "+79120003344"}),
        ("overwrite", Outcome.UPDATED, "Тула", {"+79120001122", "+79120003344"}),
    ],
)
def test_the_duplicate_policy_decides_what_happens_to_an_existing_record(
    admin_user, tmp_path, policy, outcome, city, phones
):
    existing = person_create(
        actor=admin_user,
        data={"first_name": "Иван", "last_name": "Иванов", "emails": [{"raw": "ivan@example.com"}],
              "phones": [{"raw": "+79120001122"}]},
    )  # fmt: skip
    path = _csv(
        tmp_path / "c.csv",
        [HEADER, ["Иванов Иван", "", "", "+79120003344", "ivan@example.com", "", "Тула", ""]],
    )
    run = _import(admin_user, path, on_duplicate=policy)
    assert _outcomes(run) == [outcome]
    existing.refresh_from_db()
    assert existing.city == city
    values = set(existing.contact_points.filter(channel="phone").values_list("value", flat=True))
    assert values == phones
    assert Person.objects.count() == 1


def test_create_anyway_makes_a_second_record(admin_user, tmp_path):
    person_create(
        actor=admin_user,
        data={"first_name": "Иван", "last_name": "Иванов", "emails": [{"raw": "ivan@example.com"}]},
    )
    path = _csv(tmp_path / "c.csv", [HEADER, ["Иванов Иван", "", "", "", "ivan@example.com", "",
                                              "", ""]])  # fmt: skip
    run = _import(admin_user, path, on_duplicate="create")
    assert _outcomes(run) == [Outcome.CREATED]
    assert Person.objects.count() == 2


def test_a_saved_mapping_is_offered_again_for_the_same_headers(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [["Клиент", "Примечание 2", "Мобильник"], ["Иванов Иван", "x", "+79120001122"]],
    )
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    services.run_configure(
        actor=admin_user, run=run, mapping=["full_name", "", "phones"], save_preset="CRM export"
    )
    assert MappingPreset.objects.get().name == "CRM export"
    again = services.run_create(actor=admin_user, source=path, file_name="c2.csv", target="people")
    assert again.mapping == ["full_name", "", "phones"]


def test_a_mapping_without_a_name_column_is_refused_with_the_reason(admin_user, tmp_path):
    path = _csv(tmp_path / "c.csv", [["Телефон"], ["+79120001122"]])
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    with pytest.raises(FieldErrors) as exc:
        services.run_configure(actor=admin_user, run=run, mapping=["phones"])
    assert "name" in str(exc.value)


def test_the_preview_shows_outcomes_and_writes_nothing(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER, ["Иванов Иван", "ООО Ромашка", "", "+79120001122", "", "", "", ""],
         ["Иванов Иван", "ООО Ромашка", "", "+79120001122", "", "", "", ""]],
    )  # fmt: skip
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    preview = services.run_preview(actor=admin_user, run=run)
    assert preview.total == 2
    assert preview.counts == {Outcome.CREATED: 1, Outcome.MERGED: 1}
    assert Person.objects.count() == Company.objects.count() == 0


# --- undo ---------------------------------------------------------------------------------------


def test_undo_removes_what_the_import_created_and_restores_what_it_updated(admin_user, tmp_path):
    existing = person_create(
        actor=admin_user,
        data={"first_name": "Иван", "last_name": "Иванов", "emails": [{"raw": "ivan@example.com"}]},
    )
    before = (existing.version, existing.city)
    path = _csv(
        tmp_path / "c.csv",
        [HEADER,
         ["Иванов Иван", "ООО Ромашка", "", "+79120003344", "ivan@example.com", "", "Тула", ""],
         ["Петров Пётр", "ООО Ромашка", "", "+79120001122", "", "", "", ""]],
    )  # fmt: skip
    run = _import(admin_user, path)
    assert _outcomes(run) == [Outcome.UPDATED, Outcome.CREATED]
    result = services.run_undo(actor=admin_user, run=run)
    assert result.kept == []
    assert Person.objects.count() == 1
    assert Company.objects.count() == 0
    existing.refresh_from_db()
    assert existing.city == before[1]
    assert list(existing.contact_points.values_list("value", flat=True)) == ["ivan@example.com"]
    assert existing.employments.count() == 0
    assert ImportRun.objects.get(pk=run.pk).status == RunStatus.UNDONE


def test_undo_keeps_records_changed_after_the_import_and_says_which(admin_user, tmp_path):
    path = _csv(
        tmp_path / "c.csv",
        [
            HEADER,
            ["Петров Пётр", "", "", "+79120001122", "", "", "", ""],
            ["Сидоров Олег", "", "", "", "", "", "", ""],
        ],
    )
    run = _import(admin_user, path)
    petrov = Person.objects.get(last_name="Петров")
    person_update(actor=admin_user, person=petrov, data={"city": "Омск"})
    result = services.run_undo(actor=admin_user, run=run)
    assert result.removed == 1
    assert len(result.kept) == 1
    assert "Петров" in result.kept[0]
    assert list(Person.objects.values_list("last_name", flat=True)) == ["Петров"]


def test_undo_keeps_a_person_a_deal_was_opened_for_after_the_import(
    admin_user, tmp_path, pipelines
):
    from rapport.sales.services import deal_create

    path = _csv(tmp_path / "c.csv", [HEADER, ["Петров Пётр", "", "", "+79120001122", "", "", "",
                                              ""]])  # fmt: skip
    run = _import(admin_user, path)
    petrov = Person.objects.get()
    deal_create(
        actor=admin_user,
        data={"title": "Supply", "pipeline_id": pipelines["free"].pk, "person_id": petrov.pk},
    )
    result = services.run_undo(actor=admin_user, run=run)
    assert result.removed == 0
    assert len(result.kept) == 1
    assert "deals: 1" in result.kept[0]
    assert Person.objects.filter(pk=petrov.pk).exists()


def test_an_undo_that_can_take_nothing_back_leaves_the_import_as_it_was(admin_user, tmp_path):
    path = _csv(tmp_path / "c.csv", [HEADER, ["Петров Пётр", "", "", "+79120001122", "", "", "",
                                              ""]])  # fmt: skip
    run = _import(admin_user, path)
    person_update(actor=admin_user, person=Person.objects.get(), data={"city": "Омск"})
    result = services.run_undo(actor=admin_user, run=run)
    assert (result.removed, result.restored, len(result.kept)) == (0, 0, 1)
    assert ImportRun.objects.get(pk=run.pk).status == RunStatus.DONE  # can be undone later
    assert Person.objects.count() == 1


def test_a_preview_of_a_big_file_tries_the_first_rows_and_checks_the_rest_for_errors(
    admin_user, tmp_path
):
    path = _csv(
        tmp_path / "c.csv",
        [HEADER, ["Иванов Иван", "", "", "+79120001122", "", "", "", ""],
         ["Петров Пётр", "", "", "", "bad@", "", "", ""],
         ["Сидоров Олег", "", "", "", "", "", "", ""]],
    )  # fmt: skip
    run = services.run_create(actor=admin_user, source=path, file_name=path.name, target="people")
    preview = services.run_preview(actor=admin_user, run=run, sample=1)
    assert (preview.total, preview.tried, preview.invalid) == (3, 1, 1)
    assert preview.counts == {Outcome.CREATED: 1}
    assert Person.objects.count() == 0
