"""The review after an import (``rapport.imports.review``): a row's company decided again when
a later import brings what tells it, and undone with that import."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from rapport.dedupe.models import MergeRecord
from rapport.imports import services
from rapport.imports.models import ImportRow, ImportRun
from rapport.parties.models import Company, Employment, Person

pytestmark = pytest.mark.django_db

HEADER = ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "ИНН", "Город", "Комментарий"]
INN_A, INN_B = "7707083893", "7736050003"  # two valid Russian tax ids


def _created(actor: Any, tmp_path: Path, name: str, rows: list[list[str]]) -> ImportRun:
    """A run of a ";" CSV of ``rows`` under the people header, created, not executed."""
    path = tmp_path / name
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows([HEADER, *rows])
    return services.run_create(
        actor=actor, source=path, file_name=path.name, target="people", default_region="RU"
    )


def _import(actor: Any, tmp_path: Path, name: str, rows: list[list[str]]) -> ImportRun:
    run = _created(actor, tmp_path, name, rows)
    return services.run_execute(run.pk, actor=actor)


def _row(
    name: str, company: str, *, tax_id: str = "", email: str = "", phone: str = ""
) -> list[str]:
    return [name, company, "", phone, email, tax_id, "", ""]


HER = "anna@petrova.example"  # Петрова's email, the same in every import


def _two_of_one_name(company: str = "ООО Ромашка") -> list[list[str]]:
    """Rows of two companies of one name, told apart by their tax ids."""
    return [
        _row("Иванов Иван", company, tax_id=INN_A),
        _row("Сидоров Пётр", company, tax_id=INN_B),
    ]


def _she_comes_back(actor: Any, tmp_path: Path, company: str = "ООО Ромашка") -> ImportRun:
    """A later import: Петрова with her company's tax id (Сидоров's company)."""
    return _import(
        actor, tmp_path, "second.csv", [_row("Петрова Анна", company, tax_id=INN_B, email=HER)]
    )


def _companies_of(run: ImportRun) -> list[int | None]:
    return list(
        ImportRow.objects.filter(run=run)
        .order_by("row_number")
        .values_list("company_id", flat=True)
    )


def _employers(name: str) -> set[int]:
    person = Person.objects.get(last_name=name, deleted_at=None)
    return set(Employment.objects.filter(person=person).values_list("company_id", flat=True))


def _base() -> dict[str, Any]:
    """Everything an import and its review touch, to compare before and after an undo (a
    person the import updated gets its values back under a new version)."""
    return {
        "companies": sorted(
            Company.objects.values_list("pk", "short_name", "tax_id", "deleted_at", "version")
        ),
        "people": sorted(Person.objects.values_list("pk", "last_name", "deleted_at")),
        "jobs": sorted(Employment.objects.values_list("pk", "person_id", "company_id")),
        "lines": sorted(
            ImportRow.objects.exclude(run__status="undone").values_list("pk", "company_id")
        ),
    }


def test_a_row_linked_by_its_name_alone_moves_out_when_a_second_company_of_that_name_comes(
    admin_user, tmp_path
):
    # given a first import: one "ООО Ромашка" with its tax id, and a row naming it without one
    first = _import(
        admin_user,
        tmp_path,
        "first.csv",
        [
            _row("Иванов Иван", "ООО Ромашка", tax_id=INN_A),
            _row("Петрова Анна", "ООО «Ромашка»"),
        ],
    )
    known_a, guessed = _companies_of(first)
    assert guessed == known_a  # the only Ромашка there was: the name alone links it
    before = _base()

    # when a second import brings another "ООО Ромашка", with another tax id
    second = _import(
        admin_user, tmp_path, "second.csv", [_row("Сидоров Пётр", "Ромашка ООО", tax_id=INN_B)]
    )

    # then the guess is taken back: nothing tells which of the two Петрова's Ромашка is
    (known_b,) = _companies_of(second)
    _a, moved = _companies_of(first)
    assert len({known_a, known_b, moved}) == 3
    assert Company.objects.get(pk=moved).tax_id == ""
    assert _employers("Петрова") == {moved}
    assert _employers("Иванов") == {known_a}
    assert second.counts["company_review"] == 1

    # and undoing the second import gives the base back exactly as the first left it
    result = services.run_undo(actor=admin_user, run=second)
    assert result.kept == []
    assert _base() == before


def test_a_record_made_for_an_undecided_row_joins_the_company_its_person_comes_back_with(
    admin_user, tmp_path
):
    # given two companies named "Ромашка" told apart by their tax ids, and a row naming
    # "Ромашка" without one: it gets a record of its own (a duplicate to review)
    first = _import(
        admin_user,
        tmp_path,
        "first.csv",
        [
            *_two_of_one_name(),
            _row("Петрова Анна", "Ромашка", email=HER),
        ],
    )
    known_a, known_b, undecided = _companies_of(first)
    assert undecided not in (known_a, known_b)
    before = _base()

    # when she comes back in a later import with her company's tax id
    second = _she_comes_back(admin_user, tmp_path)

    # then the record made for her first row was that company: merged into it, undoably
    assert _companies_of(second) == [known_b]
    assert _companies_of(first) == [known_a, known_b, known_b]
    assert _employers("Петрова") == {known_b}
    assert Company.objects.get(pk=undecided).deleted_at is not None
    merge = MergeRecord.objects.get(merged_id=undecided)
    assert merge.survivor_id == known_b

    # and undoing the later import undoes the merge and gives the base back exactly
    result = services.run_undo(actor=admin_user, run=second)
    assert result.kept == []
    assert _base() == before
    assert MergeRecord.objects.get(pk=merge.pk).undone_at is not None


def test_a_shared_switchboard_tells_which_of_two_same_named_companies_a_row_was(
    admin_user, tmp_path
):
    first = _import(
        admin_user,
        tmp_path,
        "first.csv",
        [
            *_two_of_one_name(),
            _row("Петрова Анна", "ООО Ромашка", phone="+7 495 123-45-67"),
        ],
    )
    _a, known_b, _undecided = _companies_of(first)

    # a colleague of Сидоров, with the tax id, on the same office number
    _import(
        admin_user,
        tmp_path,
        "second.csv",
        [_row("Кузнецов Олег", "ООО Ромашка", tax_id=INN_B, phone="8 (495) 123-45-67")],
    )

    assert _companies_of(first)[2] == known_b
    assert _employers("Петрова") == {known_b}


def test_the_review_keeps_two_legal_forms_of_one_name_apart_across_imports(admin_user, tmp_path):
    first = _import(
        admin_user, tmp_path, "first.csv", [_row("Иванов Иван", "АО Ромашка", tax_id=INN_A)]
    )
    second = _import(admin_user, tmp_path, "second.csv", [_row("Петрова Анна", "ООО Ромашка")])

    assert _companies_of(first) != _companies_of(second)
    assert "company_review" not in second.counts


def test_a_merge_whose_company_changed_since_is_kept_by_the_undo_and_said(admin_user, tmp_path):
    from rapport.parties.services import company_update

    first = _import(
        admin_user,
        tmp_path,
        "first.csv",
        [
            *_two_of_one_name(),
            _row("Петрова Анна", "Ромашка", email=HER),
        ],
    )
    _a, known_b, undecided = _companies_of(first)
    second = _she_comes_back(admin_user, tmp_path)
    # someone edits the company the review merged the undecided record into
    company = Company.objects.get(pk=known_b)
    company_update(actor=admin_user, company=company, data={"city": "Тула"})

    result = services.run_undo(actor=admin_user, run=second)

    assert any(str(known_b) in message for message in result.kept)
    assert Company.objects.get(pk=undecided).deleted_at is not None  # the merge stays
    assert _companies_of(first)[2] == known_b  # and the row's report says where it is
    assert Company.objects.get(pk=known_b).city == "Тула"
    # her job stays at the company the merge kept, and the undo says so for her row
    assert _employers("Петрова") == {known_b}
    assert any(message.startswith("row 2:") for message in result.kept)


def test_rows_of_another_spelling_follow_a_record_the_review_merges(admin_user, tmp_path):
    # given Петрова's undecided "Ромашка Трейдинг", once more with a typo (her company by
    # her, not by the name)
    first = _import(
        admin_user,
        tmp_path,
        "first.csv",
        [
            *_two_of_one_name("ООО Ромашка Трейдинг"),
            _row("Петрова Анна", "Ромашка Трейдинг", email=HER),
            _row("Петрова Анна", "Ромашка Трейдингг", email=HER),
        ],
    )
    _a, known_b, undecided, typo = _companies_of(first)
    assert typo == undecided
    before = _base()

    # when she comes back with her company's tax id
    second = _she_comes_back(admin_user, tmp_path, "ООО Ромашка Трейдинг")

    # then both her earlier rows say the company they were, and undo puts them back
    assert _companies_of(first)[2:] == [known_b, known_b]
    assert services.run_undo(actor=admin_user, run=second).kept == []
    assert _base() == before


@pytest.mark.django_db(transaction=True)
def test_an_import_finishing_while_another_review_runs_waits_for_it_then_is_done(
    admin_user, tmp_path
):
    import threading
    import time

    import psycopg
    from django.db import connection, connections

    from rapport.imports.models import RunStatus
    from rapport.imports.review import REVIEW_LOCK

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite writers already take turns")
    # given another import's review holding the reviews' lock (a session of its own)
    s = connection.settings_dict
    other = psycopg.connect(
        host=s["HOST"], port=s["PORT"] or 5432, user=s["USER"], password=s["PASSWORD"],
        dbname=s["NAME"], autocommit=True,
    )  # fmt: skip
    other.execute("SELECT pg_advisory_lock(%s)", [REVIEW_LOCK])
    run = _created(admin_user, tmp_path, "first.csv", _two_of_one_name())
    finished: list[ImportRun] = []

    def execute() -> None:
        try:
            finished.append(services.run_execute(run.pk, actor=admin_user))
        finally:
            connections.close_all()

    # when this import's rows are written while that review runs
    worker = threading.Thread(target=execute)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while ImportRun.objects.get(pk=run.pk).rows_done < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        # then it waits for the other review: its rows are in, it is not done yet
        assert worker.is_alive()
        assert ImportRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    finally:
        other.execute("SELECT pg_advisory_unlock(%s)", [REVIEW_LOCK])
        other.close()
        worker.join(30)
    # and once that review is over, it reviews its own names and is done
    assert not worker.is_alive()
    assert finished[0].status == RunStatus.DONE
    assert ImportRun.objects.get(pk=run.pk).counts["created"] == 2
