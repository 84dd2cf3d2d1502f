"""Which company a row names, as an import decides it (``rapport.imports.matching``):
one test a rule, each through a file imported the way a user imports it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from rapport.imports import services
from rapport.imports.models import ImportRun
from rapport.parties.models import Company, Person

pytestmark = pytest.mark.django_db

HEADER = ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "ИНН", "Город", "Комментарий"]
INN_A, INN_B = "7707083893", "7736050003"  # two valid Russian tax ids


def _import(
    actor: Any, tmp_path: Path, rows: list[list[str]], *, target: str = "people"
) -> ImportRun:
    path = tmp_path / "rows.csv"
    header = HEADER if target == "people" else ["Компания", "ИНН", "Телефон", "E-mail"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows([header, *rows])
    run = services.run_create(
        actor=actor, source=path, file_name=path.name, target=target, default_region="RU"
    )
    return services.run_execute(run.pk, actor=actor)


def _company_of_each_row(run: ImportRun) -> list[int | None]:
    return list(run.rows.order_by("row_number").values_list("company_id", flat=True))


def _row(
    name: str, company: str, *, tax_id: str = "", email: str = "", phone: str = ""
) -> list[str]:
    return [name, company, "", phone, email, tax_id, "", ""]


def test_a_company_name_one_letter_off_is_another_company(admin_user, tmp_path):
    # given two people's rows naming "Мясников" and "Мясникова", nothing else in common
    rows = [_row("Иванов Иван", "ООО Мясников"), _row("Петрова Анна", "ООО «Мясникова»")]

    # when
    run = _import(admin_user, tmp_path, rows)

    # then a surname's two genders are two companies, not a typo of one
    first, second = _company_of_each_row(run)
    assert first != second
    assert sorted(Company.objects.values_list("short_name", flat=True)) == [
        "ООО «Мясникова»",
        "ООО Мясников",
    ]


def test_a_tax_id_does_not_land_on_a_company_whose_name_is_only_similar(admin_user, tmp_path):
    rows = [_row("Иванов Иван", "ООО Лихачев"), _row("Петрова Анна", "ООО Лихачева", tax_id=INN_A)]

    run = _import(admin_user, tmp_path, rows)

    first, second = _company_of_each_row(run)
    assert first != second
    assert Company.objects.get(pk=first).tax_id == ""
    assert Company.objects.get(pk=second).tax_id == INN_A


def test_a_similar_name_with_the_same_tax_id_is_one_company(admin_user, tmp_path):
    rows = [
        _row("Иванов Иван", "ООО Козлов", tax_id=INN_A),
        _row("Петрова Анна", "Козлова ООО", tax_id=INN_A),
    ]

    run = _import(admin_user, tmp_path, rows)

    first, second = _company_of_each_row(run)
    assert first == second
    assert Company.objects.count() == 1


def test_a_similar_name_with_a_shared_switchboard_is_one_company(admin_user, tmp_path):
    rows = [
        _row("Иванов Иван", "ООО Мясников", phone="8 (495) 111-22-33"),
        _row("Петрова Анна", "ООО Мясникова", phone="8 (495) 111-22-33"),
    ]

    run = _import(admin_user, tmp_path, rows)

    first, second = _company_of_each_row(run)
    assert first == second
    assert Person.objects.count() == 2


def test_the_same_name_in_other_spellings_scripts_and_form_words_is_one_company(
    admin_user, tmp_path
):
    rows = [
        _row("Иванов Иван", "ООО «Ромашка»"),
        _row("Петрова Анна", "Ромашка ООО"),
        _row("Сидоров Петр", "Romashka LLC"),
        _row("Orlov Oleg", "OOO Romashka"),
    ]

    run = _import(admin_user, tmp_path, rows)

    assert len(set(_company_of_each_row(run))) == 1
    assert Company.objects.count() == 1


def test_two_legal_forms_of_one_name_are_two_companies(admin_user, tmp_path):
    rows = [_row("Иванов Иван", "АО Ромашка"), _row("Петрова Анна", "ООО Ромашка")]

    run = _import(admin_user, tmp_path, rows)

    first, second = _company_of_each_row(run)
    assert first != second


def test_a_name_shared_by_two_companies_does_not_pick_one_without_evidence(admin_user, tmp_path):
    # given two companies called "Ромашка" with different tax ids
    rows = [
        _row("Иванов Иван", "ООО Ромашка", tax_id=INN_A),
        _row("Петрова Анна", "ООО Ромашка", tax_id=INN_B),
        # when a third person names "Ромашка" with no tax id, phone or known employer
        _row("Сидоров Петр", "ООО Ромашка"),
    ]

    run = _import(admin_user, tmp_path, rows)

    # then they get a company of their own: a duplicate to review, not a wrong merge
    assert len(set(_company_of_each_row(run))) == 3


def test_a_person_back_without_a_tax_id_stays_at_the_company_their_tax_id_named(
    admin_user, tmp_path
):
    # given two same-named companies told apart by tax id; Clara first comes without one
    # (a company of her own, undecided), then with company A's tax id
    clara = {"email": "clara@example.com"}
    rows = [
        _row("Иванов Иван", "ООО Ромашка", tax_id=INN_A),
        _row("Петрова Анна", "ООО Ромашка", tax_id=INN_B),
        _row("Орлова Клара", "ООО Ромашка", **clara),
        _row("Орлова Клара", "ООО Ромашка", tax_id=INN_A, **clara),
        # when she comes again without a tax id
        _row("Орлова Клара", "ООО Ромашка", **clara),
    ]

    run = _import(admin_user, tmp_path, rows)

    # then the row joins company A, where her tax id put her, not a fourth "Ромашка"
    companies = _company_of_each_row(run)
    assert Person.objects.filter(last_name="Орлова").count() == 1
    assert companies[3] == companies[0]
    assert companies[4] == companies[0]
    assert Company.objects.count() == 3


def test_a_company_row_with_a_similar_name_and_the_same_email_is_that_company(admin_user, tmp_path):
    rows = [
        ["ООО «Северный ветер»", "", "", "office@sever.example"],
        ["Северный ветерок", "", "", "office@sever.example"],
    ]

    run = _import(admin_user, tmp_path, rows, target="companies")

    first, second = _company_of_each_row(run)
    assert first == second
    assert Company.objects.count() == 1


@pytest.mark.django_db
def test_numbered_company_names_each_stay_one_company_over_many_rows(admin_user, tmp_path):
    """A company named "ООО Компания21" is one letter from a dozen others ("Компания2",
    "Компания20", …): its own record must stay among the candidates looked at, or each row
    makes another."""
    lines = ["ФИО;Телефон;E-mail;Компания"] + [
        f"Клиентов{i} Клиент;+7 912 {i:03d}-{i % 100:02d}-{(i * 7) % 100:02d};c{i}@example.com;"
        f"ООО Компания{i % 25}"
        for i in range(300)
    ]
    source = tmp_path / "numbered.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = services.run_create(
        actor=admin_user, source=source, file_name=source.name, target="people",
        default_region="RU", copy=False,
    )  # fmt: skip
    run = services.run_execute(run.pk, actor=admin_user)
    names = sorted(Company.objects.values_list("short_name", flat=True))
    assert names == sorted(f"ООО Компания{i}" for i in range(25)), run.counts
