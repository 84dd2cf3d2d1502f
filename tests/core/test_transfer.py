"""`rapport transfer`: an SQLite install moves to PostgreSQL without loss (scale-out step 2).

Real databases, real processes: a source SQLite file migrated and filled through the services by
`rapport` subprocesses, a PostgreSQL database created for each test (from a migrated template)
and dropped after it. The suite's own test database is not touched, so this runs the same on the
SQLite and the PostgreSQL pass. Skipped only when PostgreSQL is not reachable on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

PG = "postgres://postgres@127.0.0.1:5432"
SECRET = "transfer-test-secret-key-not-for-production-0123456789"

FILL_SOURCE = """
from django.contrib.sessions.backends.db import SessionStore
from rapport.accounts.models import LoginAttempt, User
from rapport.accounts.services import api_token_create
from rapport.core.management.commands.worker import ensure_schedules
from rapport.parties.models import Company
from rapport.parties.services import company_create, company_update, party_delete

alice = User.objects.get(username="alice")
api_token_create(user=alice, name="script")
c = company_create(
    actor=alice,
    data={
        "short_name": "Ёлка «Север»",
        "tags": ["vip", "north"],
        "notes": "две строки\\nи ✓",
        "phones": [{"raw": "+7 495 123-45-67", "kind": "work"}],
        "bank_accounts": [{"bank_name": "Банк", "account_number": "40702810900000000001"}],
    },
    force=True,
)
company_update(actor=alice, company=c, data={"city": "Казань"}, version=c.version)
party_delete(actor=alice, obj=Company.objects.exclude(pk=c.pk).order_by("pk").first())
ensure_schedules()
session = SessionStore()
session["_auth_user_id"] = str(alice.pk)
session.create()
LoginAttempt.objects.create(username="bob", ip="127.0.0.5")
"""


def rapport(
    *args: str, database_url: str, data_dir: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RAPPORT_DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET,
        "RAPPORT_ADMIN_PASSWORD": "transfer-admin-pass-1",
        "DJANGO_SETTINGS_MODULE": "rapport.settings",
    }
    done = subprocess.run(  # noqa: S603 - our own entry point, fixed arguments
        [sys.executable, "-m", "rapport.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"rapport {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc})")
    with conn:
        yield conn


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transfer")


@pytest.fixture(scope="module")
def source(workdir: Path) -> Path:
    """A used SQLite install: admin, demo directory, a token, edits, a deletion, a session."""
    path = workdir / "rapport.sqlite3"
    url = f"sqlite:///{path}"
    rapport("migrate", "-v0", database_url=url, data_dir=workdir)
    rapport("createadmin", database_url=url, data_dir=workdir)
    rapport("demo", database_url=url, data_dir=workdir)
    rapport("shell", "-c", FILL_SOURCE, database_url=url, data_dir=workdir)
    return path


@pytest.fixture(scope="module")
def source_dump(source: Path, workdir: Path) -> list[dict[str, Any]]:
    return dump(f"sqlite:///{source}", workdir)


@pytest.fixture(scope="module")
def migrated_template(pg_admin: psycopg.Connection[Any], workdir: Path) -> Iterator[str]:
    name = f"rapport_transfer_tmpl_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        rapport("migrate", "-v0", database_url=f"{PG}/{name}", data_dir=workdir)
        yield name
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def target(pg_admin: psycopg.Connection[Any], migrated_template: str) -> Iterator[str]:
    """A fresh, migrated, empty PostgreSQL database of its own; its URL."""
    name = f"rapport_transfer_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    try:
        yield f"{PG}/{name}"
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dump(url: str, workdir: Path) -> list[dict[str, Any]]:
    """Every row of every installed app, as Django serialises it, in a stable order."""
    out = workdir / f"dump-{uuid.uuid4().hex[:8]}.json"
    rapport("dumpdata", "-o", str(out), database_url=url, data_dir=workdir)
    rows: list[dict[str, Any]] = json.loads(out.read_text())
    return sorted(rows, key=lambda r: (r["model"], str(r["pk"])))


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_an_sqlite_install_moves_to_postgresql_without_loss(
    source: Path, source_dump: list[dict[str, Any]], target: str, workdir: Path
):
    # given a used SQLite install and a fresh migrated PostgreSQL database
    before = source_dump

    # when
    done = rapport(
        "transfer", "--from", f"sqlite:///{source}", database_url=target, data_dir=workdir
    )

    # then every row of every table is there, with the same ids and values
    assert "counts verified" in done.stdout
    after = dump(target, workdir)
    assert len(after) == len(before)
    assert after == before
    models = {row["model"] for row in after}
    assert {
        "accounts.user",
        "accounts.team",
        "accounts.role",
        "accounts.apitoken",
        "accounts.loginattempt",
        "parties.company",
        "parties.person",
        "parties.contactpoint",
        "parties.bankaccount",
        "parties.tag",
        "core.auditentry",
        "core.outboxevent",
        "core.customfielddefinition",
        "core.searchdocument",
        "django_q.schedule",
        "sessions.session",
    } <= models
    query = "SELECT id, object_type, object_id, action FROM core_auditentry ORDER BY id"
    assert pg_rows(target, query) == sqlite_rows(source, query)
    deleted = "SELECT id FROM parties_company WHERE deleted_at IS NOT NULL"
    assert pg_rows(target, deleted) == sqlite_rows(source, deleted) != []

    # and a record made afterwards gets a fresh id, audited (append-only guard still in force)
    made = rapport(
        "shell",
        "-c",
        "from rapport.accounts.models import User\n"
        "from rapport.parties.services import company_create\n"
        "c = company_create(actor=User.objects.get(username='alice'),"
        " data={'short_name': 'After the move'}, force=True)\n"
        "print(c.pk)",
        database_url=target,
        data_dir=workdir,
    )
    new_id = int(made.stdout.split()[-1])
    assert new_id == sqlite_rows(source, "SELECT max(id) FROM parties_company")[0][0] + 1
    last_audit = pg_rows(target, "SELECT object_id, action FROM core_auditentry ORDER BY id DESC")
    assert last_audit[0] == (new_id, "create")
    assert len(last_audit) == len(sqlite_rows(source, "SELECT id FROM core_auditentry")) + 1
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        pg_rows(target, "UPDATE core_auditentry SET action = 'update' WHERE id = 1")


def test_a_target_in_use_is_refused_unless_forced(
    source: Path, source_dump: list[dict[str, Any]], target: str, workdir: Path
):
    # given a target that has been used after a first transfer
    rapport("transfer", "--from", f"sqlite:///{source}", database_url=target, data_dir=workdir)
    rapport(
        "shell",
        "-c",
        "from rapport.parties.services import company_create\n"
        "company_create(actor=None, data={'short_name': 'Made in PostgreSQL'}, force=True)",
        database_url=target,
        data_dir=workdir,
    )
    count = "SELECT count(*) FROM parties_company"
    in_use = pg_rows(target, count)

    # when the transfer runs again, it refuses and changes nothing
    again = rapport(
        "transfer",
        "--from",
        f"sqlite:///{source}",
        database_url=target,
        data_dir=workdir,
        check=False,
    )
    assert again.returncode != 0
    assert "already holds data" in again.stderr
    assert "accounts_user" in again.stderr
    assert pg_rows(target, count) == in_use

    # when forced, the target becomes the source again (the audit guard does not stop it)
    forced = rapport(
        "transfer",
        "--from",
        f"sqlite:///{source}",
        "--force",
        database_url=target,
        data_dir=workdir,
    )
    assert "counts verified" in forced.stdout
    assert dump(target, workdir) == source_dump


def test_a_source_with_other_migrations_is_refused(source: Path, target: str, workdir: Path):
    # given a source one migration behind the target
    older = workdir / "older.sqlite3"
    shutil.copy(source, older)
    conn = sqlite3.connect(older)
    conn.execute("DELETE FROM django_migrations WHERE app = 'core' AND name LIKE '0002%'")
    conn.commit()
    conn.close()

    # when / then
    done = rapport(
        "transfer",
        "--from",
        f"sqlite:///{older}",
        database_url=target,
        data_dir=workdir,
        check=False,
    )
    assert done.returncode != 0
    assert "migrations differ" in done.stderr
    assert "core.0002_search_index_and_audit_guard" in done.stderr
    assert pg_rows(target, "SELECT count(*) FROM accounts_user") == [(0,)]


def test_a_missing_source_or_an_unmigrated_target_is_refused(
    pg_admin: psycopg.Connection[Any], source: Path, workdir: Path
):
    missing = rapport(
        "transfer",
        "--from",
        f"sqlite:///{workdir / 'nope.sqlite3'}",
        database_url=f"sqlite:///{workdir / 'other.sqlite3'}",
        data_dir=workdir,
        check=False,
    )
    assert missing.returncode != 0
    assert "No SQLite database" in missing.stderr
    assert not (workdir / "nope.sqlite3").exists()

    name = f"rapport_transfer_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        bare = rapport(
            "transfer",
            "--from",
            f"sqlite:///{source}",
            database_url=f"{PG}/{name}",
            data_dir=workdir,
            check=False,
        )
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert bare.returncode != 0
    assert "not migrated" in bare.stderr
