"""R14: an import whose database fails under it — the PostgreSQL connection terminated (what
a crash or restart of the server looks like to the importer), the SQLite file full — ends
failed and resumable at its last committed chunk, never "done" with rows missing; resuming
writes each of the file's rows exactly once; undo gives the base back as it was. Real
databases, no mocks: ``pg_terminate_backend`` from another session, ``max_page_count`` on the
importing connection (SQLite's "database or disk is full", as from a full disk)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BASE = 100  # people already in the base, each at one of 5 companies
ROWS = 2_200  # chunks of 1,000, 1,000 and 200: the failure lands after the first commit
EVERY = ROWS // BASE  # every 22nd row of the file names a base person: updated, not created
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_NAME = "rapport_r14_pg_test"
HEADER = ["ФИО", "Телефон", "E-mail", "Компания", "Должность"]
BASE_COMPANIES = ["Ромашка", "Василёк", "Кристалл", "Вектор", "Гранит"]
NEW_COMPANIES = [
    "Меридиан", "Сфера", "Альтаир", "Полюс", "Орион", "Бриз", "Зенит", "Лотос", "Монолит",
    "Парус", "Рубин", "Сигма", "Таврида", "Урал", "Фрегат", "Хронос", "Циклон", "Штиль",
    "Эверест", "Янтарь", "Аврора", "Байкал", "Глобус", "Дельфин", "Ельник",
]  # fmt: skip

# What "the base as it was" means: counts, and a hash of every row a user sees (ids, names,
# contact points, jobs), not of versions or timestamps, which an undo moves on.
FINGERPRINT = {
    "people": "SELECT id, last_name, first_name, middle_name, deleted_at FROM parties_person",
    "companies": (
        "SELECT id, short_name, full_name, legal_form, tax_id, deleted_at FROM parties_company"
    ),
    "contact points": (
        "SELECT person_id, company_id, channel, raw, value, is_primary FROM parties_contactpoint"
    ),
    "employments": (
        "SELECT person_id, company_id, position, role, is_current FROM parties_employment"
    ),
    "search documents": "SELECT object_type, object_id FROM core_searchdocument",
}

Query = Callable[..., list[tuple[Any, ...]]]

LAST = [
    "Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Васильев", "Соколов",
    "Михайлов", "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов",
    "Егоров", "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров",
    "Никитин", "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев",
]  # fmt: skip
FIRST = [
    "Иван", "Пётр", "Олег", "Сергей", "Андрей", "Дмитрий", "Алексей", "Максим", "Юрий",
    "Глеб", "Роман", "Павел", "Егор", "Фёдор", "Борис",
]  # fmt: skip
MIDDLE = [
    "Иванович", "Петрович", "Олегович", "Сергеевич", "Андреевич", "Дмитриевич",
    "Алексеевич", "Максимович", "Юрьевич", "Глебович", "Романович", "Павлович",
]  # fmt: skip


def _person(n: int) -> tuple[str, str]:
    """The n-th of 5,400 distinct full names, and a phone number of its own."""
    name = f"{LAST[n % 30]} {FIRST[n // 30 % 15]} {MIDDLE[n // 450 % 12]}"
    return name, f"+7 912 {n // 10_000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"


def _base_row(j: int) -> list[str]:
    name, phone = _person(ROWS + j)
    company = BASE_COMPANIES[j % len(BASE_COMPANIES)]
    return [name, phone, f"b{j}@example.com", f"ООО «{company}»", "Менеджер"]


def _new_row(i: int) -> list[str]:
    name, phone = _person(i)
    company = NEW_COMPANIES[i % len(NEW_COMPANIES)]
    return [name, phone, f"c{i}@example.com", f"ООО «{company}»", "Инженер"]


def _file_row(i: int) -> list[str]:
    if i % EVERY == 0:  # a base person again, with a second phone: an update
        j = i // EVERY
        name, phone = _person(ROWS + j)
        return [name, phone.replace("912", "913", 1), *_base_row(j)[2:4], ""]
    return _new_row(i)


def _xlsx(path: Path, rows: list[list[str]]) -> Path:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Клиенты")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _query(sql: str, *params: object) -> list[tuple[Any, ...]]:
    """A query on the test's own Django connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _fingerprint(query: Query) -> dict[str, tuple[int, str]]:
    prints = {}
    for name, sql in FINGERPRINT.items():
        rows = sorted(query(sql), key=repr)
        prints[name] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return prints


def _check_resumed(query: Query, run_id: int, base_companies: int) -> None:
    """Exactly the file's rows, each once: the people, companies, contact points, report."""
    created = ROWS - BASE
    assert query("SELECT status, rows_done FROM imports_importrun WHERE id = %s", run_id) == [
        ("done", ROWS)
    ]
    assert query(
        "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM imports_importrow WHERE run_id = %s",
        run_id,
    ) == [(ROWS, ROWS)]
    outcomes = query(
        "SELECT outcome, COUNT(*) FROM imports_importrow WHERE run_id = %s GROUP BY outcome",
        run_id,
    )
    assert sorted(outcomes) == [("created", created), ("updated", BASE)]
    people = BASE + created
    assert query("SELECT COUNT(*), COUNT(DISTINCT name_key) FROM parties_person") == [
        (people, people)
    ]
    # One email each, on one person each: no row was written twice.
    assert query(
        "SELECT COUNT(*), COUNT(DISTINCT value), COUNT(DISTINCT person_id) "
        "FROM parties_contactpoint WHERE channel = 'email'"
    ) == [(people, people, people)]
    assert query("SELECT COUNT(*) FROM parties_contactpoint WHERE channel = 'phone'") == [
        (people + BASE,)
    ]
    companies = base_companies + len(NEW_COMPANIES)
    assert query("SELECT COUNT(*), COUNT(DISTINCT short_name) FROM parties_company") == [
        (companies, companies)
    ]
    assert query("SELECT COUNT(*) FROM parties_employment") == [(people,)]


# --- PostgreSQL: the importing session is terminated ---------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database of the test's own, created empty and dropped at the end."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("PostgreSQL only: this run's DATABASE_URL is not postgres://")
    import psycopg
    from psycopg import sql

    name = sql.Identifier(PG_NAME)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as server:
        server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        server.execute(sql.SQL("CREATE DATABASE {}").format(name))
        try:
            yield f"{PG_SERVER}/{PG_NAME}"
        finally:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))


def test_an_import_whose_database_connection_dies_resumes_to_exactly_the_files_rows(
    rapport_cli, tmp_path, pg_url
):
    import psycopg

    # given a base of 100 people imported earlier, and a file that adds 2,100 and updates them
    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": pg_url,
        "RAPPORT_ADMIN_PASSWORD": "a-long-admin-password",
        "DJANGO_SETTINGS_MODULE": "rapport.settings",
    }
    for step in (["migrate", "-v0"], ["createadmin"]):
        done = rapport_cli(env, *step)
        assert done.returncode == 0, done.stderr
    base_file = _xlsx(tmp_path / "base.xlsx", [_base_row(j) for j in range(BASE)])
    done = rapport_cli(env, "import", str(base_file), "--default-region", "RU")
    assert done.returncode == 0, done.stderr
    source = _xlsx(tmp_path / "clients.xlsx", [_file_row(i) for i in range(ROWS)])
    with psycopg.connect(pg_url, autocommit=True) as db:

        def query(sql: str, *params: object) -> list[tuple[Any, ...]]:
            return db.execute(sql, params).fetchall()  # type: ignore[arg-type]

        ((base_run,),) = query("SELECT MAX(id) FROM imports_importrun")
        before = _fingerprint(query)
        base_companies = before["companies"][0]

        # when the server ends the importing session after its first chunk is committed
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "rapport.cli", "import", str(source), "--default-region", "RU"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and proc.poll() is None and committed == 0:
            rows = query("SELECT rows_done FROM imports_importrun WHERE id > %s", base_run)
            committed = int(rows[0][0]) if rows else 0
            time.sleep(0.05)
        assert proc.poll() is None, "the import finished before its session could be ended"
        ended = query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            PG_NAME,
        )
        assert ended
        assert all(ok for (ok,) in ended)
        _out, err = proc.communicate(timeout=60)

        # then the run is failed at its last checkpoint, whole up to it, never "done"
        assert proc.returncode != 0
        assert "terminating connection" in err or "closed the connection" in err, err
        assert "rapport import --resume" in err, err  # said plainly, with what to do next
        assert "Traceback" not in err, err
        ((run_id, status, rows_done, error),) = query(
            "SELECT id, status, rows_done, error FROM imports_importrun WHERE id > %s", base_run
        )
        assert status == "failed", error
        assert rows_done % 1000 == 0
        assert 0 < rows_done < ROWS
        assert error
        assert query("SELECT COUNT(*) FROM imports_importrow WHERE run_id = %s", run_id) == [
            (rows_done,)
        ]
        created = sum(1 for i in range(rows_done) if i % EVERY)  # the others updated
        assert query("SELECT COUNT(*) FROM parties_person") == [(BASE + created,)]

        # when it is resumed, then it ends with exactly the file's rows, each once
        resumed = rapport_cli(env, "import", "--resume", str(run_id))
        assert resumed.returncode == 0, resumed.stderr
        _check_resumed(query, run_id, base_companies)

        # when it is undone, then the base is as it was before the import
        undone = rapport_cli(env, "import", "--undo", str(run_id))
        assert undone.returncode == 0, undone.stderr
        assert (
            f"{ROWS - BASE + len(NEW_COMPANIES)} removed, {BASE} restored, 0 kept" in undone.stdout
        )
        assert _fingerprint(query) == before


# --- SQLite: the disk fills up --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_import_that_fills_the_disk_fails_resumably_and_resumes_to_exactly_the_files_rows(
    admin_user, tmp_path
):
    from django.db import OperationalError, connection

    from rapport.imports import services
    from rapport.imports.models import ImportRun, RunStatus

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL has no per-connection page limit")

    def imported(path: Path, **kw: Any) -> ImportRun:
        run = services.run_create(
            actor=admin_user, source=path, file_name=path.name, target="people", default_region="RU"
        )
        return services.run_execute(run.pk, actor=admin_user, **kw)

    # given a base of 100 people imported earlier, and a file that adds 2,100 and updates them
    assert imported(_xlsx(tmp_path / "base.xlsx", [_base_row(j) for j in range(BASE)])).status == (
        RunStatus.DONE
    )
    _query("VACUUM")  # no free pages: every new page grows the file
    before = _fingerprint(_query)
    source = _xlsx(tmp_path / "clients.xlsx", [_file_row(i) for i in range(ROWS)])

    def fill_the_disk(run: ImportRun) -> None:
        """After the first chunk is committed the file may not grow by a single page: from
        then on SQLite answers SQLITE_FULL ("database or disk is full"), as from a full disk."""
        ((pages,),) = _query("PRAGMA page_count")
        ((limit,),) = _query(f"PRAGMA max_page_count = {int(pages)}")
        assert limit == pages

    # when the disk fills up after the first chunk
    try:
        with pytest.raises(OperationalError, match="database or disk is full"):
            imported(source, progress=fill_the_disk)
        # then the run is failed at its checkpoint — recorded while the disk is still full —
        # and what it committed is whole: records and report lines
        run = ImportRun.objects.latest("id")
        assert (run.status, run.rows_done) == (RunStatus.FAILED, 1000), run.error
        assert run.error
        assert run.rows.count() == 1000
        created = sum(1 for i in range(1000) if i % EVERY)  # the others updated
        assert _query("SELECT COUNT(*) FROM parties_person") == [(BASE + created,)]
    finally:
        _query("PRAGMA max_page_count = 1073741823")  # the disk is freed
    assert _query("PRAGMA integrity_check") == [("ok",)]

    # when it is resumed, then it ends with exactly the file's rows, each once
    services.run_start(actor=admin_user, run=run)
    services.run_execute(run.pk, actor=admin_user)
    _check_resumed(_query, run.pk, before["companies"][0])
    assert _query("PRAGMA integrity_check") == [("ok",)]

    # when it is undone, then the base is as it was before the import
    result = services.run_undo(actor=admin_user, run=ImportRun.objects.get(pk=run.pk))
    assert (result.removed, result.restored, result.kept) == (
        ROWS - BASE + len(NEW_COMPANIES),
        BASE,
        [],
    )
    assert _fingerprint(_query) == before
    assert _query("PRAGMA integrity_check") == [("ok",)]


# --- PostgreSQL, in process: the session ends between the last commit and "done" ------


@pytest.mark.django_db(transaction=True)
def test_an_import_whose_connection_dies_after_its_last_chunk_is_failed_not_left_running(
    admin_user, tmp_path
):
    from django.db import OperationalError, connection

    from rapport.imports import services
    from rapport.imports.models import ImportRun, RunStatus

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: a server ends the session of a connection")
    import psycopg

    # given a file of exactly two chunks of new people
    rows = 2_000
    source = _xlsx(tmp_path / "clients.xlsx", [_new_row(i) for i in range(rows)])
    run = services.run_create(
        actor=admin_user, source=source, file_name=source.name, target="people", default_region="RU"
    )
    s = connection.settings_dict

    def end_the_session(run: ImportRun) -> None:
        """Once both chunks are committed, the server ends the importing session (a restart,
        an administrator): the import's next statement, marking the run done, fails."""
        if run.rows_done < rows:
            return
        ((pid,),) = _query("SELECT pg_backend_pid()")
        with psycopg.connect(
            host=s["HOST"] or None,
            port=s["PORT"] or None,
            user=s["USER"] or None,
            password=s["PASSWORD"] or None,
            dbname=s["NAME"],
            autocommit=True,
        ) as other:
            assert other.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone() == (
                True,
            )

    # when the session ends between the last commit and marking the run done
    try:
        with pytest.raises(OperationalError):
            services.run_execute(run.pk, actor=admin_user, progress=end_the_session)
    finally:
        if not connection.is_usable():
            connection.close()
    # then the run is failed with every row committed, not "running" until a sweep finds it
    run.refresh_from_db()
    assert (run.status, run.rows_done) == (RunStatus.FAILED, rows), run.error
    # and resuming finishes it without writing a row again
    services.run_start(actor=admin_user, run=run)
    run = services.run_execute(run.pk, actor=admin_user)
    assert (run.status, run.rows_done, run.rows.count()) == (RunStatus.DONE, rows, rows)
    assert _query("SELECT COUNT(*), COUNT(DISTINCT name_key) FROM parties_person") == [(rows, rows)]
