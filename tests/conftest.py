"""Personas and shared fixtures. Real database (SQLite or PostgreSQL by DATABASE_URL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    """Tests talk only to loopback: any other address fails loudly."""
    host = address[0] if isinstance(address, tuple) else address
    if (
        isinstance(host, str)
        and host not in ("127.0.0.1", "::1", "localhost")
        and not host.startswith("/")
        and self.family in (socket.AF_INET, socket.AF_INET6)
    ):
        raise OSError(f"tests may only connect to loopback, not {host!r}")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """On SQLite, flush (used by live-server tests) deletes rows one table at a time; the audit
    table's append-only DELETE trigger would refuse it, so the test database drops that one
    trigger. UPDATE stays refused; PostgreSQL flushes with TRUNCATE and keeps every trigger."""
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER IF EXISTS core_auditentry_no_delete")


@pytest.fixture(autouse=True)
def _quiet_worker(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The worker is not running in unit tests; tests dispatch the outbox themselves.
    Uploaded and imported files go to a temporary MEDIA_ROOT, not the project's var/."""
    settings.OUTBOX_NUDGE = False
    settings.MEDIA_ROOT = tmp_path_factory.getbasetemp() / "media"


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache (ids are reused after a rollback)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def org(db: Any) -> dict[str, Any]:
    """Organisation -> office -> team A, team B; roles manager (team scope) and rep (own)."""
    from rapport.accounts.models import default_permissions
    from rapport.accounts.services import role_save, team_create

    root = team_create(actor=None, name="Org", kind="organisation")
    office = team_create(actor=None, name="Office", kind="office", parent=root)
    team_a = team_create(actor=None, name="Team A", parent=office)
    team_a1 = team_create(actor=None, name="Team A1", parent=team_a)
    team_b = team_create(actor=None, name="Team B", parent=office)
    return {
        "root": root,
        "office": office,
        "team_a": team_a,
        "team_a1": team_a1,
        "team_b": team_b,
        "manager": role_save(
            actor=None, name="Manager", permissions=default_permissions("team", "team")
        ),
        "rep": role_save(actor=None, name="Rep", permissions=default_permissions("own", "own")),
        "head": role_save(actor=None, name="Head", permissions=default_permissions("all", "all")),
        "admin": role_save(
            actor=None, name="Admin", permissions=default_permissions("all", "all"), is_admin=True
        ),
    }


def _make_user(org: dict[str, Any], username: str, team: str, role: str) -> Any:
    from rapport.accounts.services import user_create

    return user_create(
        actor=None,
        username=username,
        password="correct-horse-battery-9",
        first_name=username.title(),
        team=org[team],
        role=org[role],
    )


@pytest.fixture
def alice(org: dict[str, Any]) -> Any:
    """Manager of team A: sees team A and its sub-teams."""
    return _make_user(org, "alice", "team_a", "manager")


@pytest.fixture
def bob(org: dict[str, Any]) -> Any:
    """Rep in team A: sees only his own records."""
    return _make_user(org, "bob", "team_a", "rep")


@pytest.fixture
def carol(org: dict[str, Any]) -> Any:
    """Rep in team B."""
    return _make_user(org, "carol", "team_b", "rep")


@pytest.fixture
def dan(org: dict[str, Any]) -> Any:
    """Rep in team A1, a sub-team of A."""
    return _make_user(org, "dan", "team_a1", "rep")


@pytest.fixture
def admin_user(org: dict[str, Any]) -> Any:
    return _make_user(org, "root", "root", "admin")


@pytest.fixture
def make_company() -> Any:
    from rapport.parties.services import company_create

    def make(actor: Any, short_name: str = "Acme", **data: Any) -> Any:
        return company_create(actor=actor, data={"short_name": short_name, **data}, force=True)

    return make


@pytest.fixture
def make_person() -> Any:
    from rapport.parties.services import person_create

    def make(actor: Any, first_name: str = "Ivan", last_name: str = "Petrov", **data: Any) -> Any:
        return person_create(
            actor=actor, data={"first_name": first_name, "last_name": last_name, **data}, force=True
        )

    return make


@pytest.fixture
def client_for() -> Any:
    """A logged-in test client for a user."""
    from django.test import Client

    def make(user: Any) -> Client:
        c = Client()
        c.force_login(user)
        return c

    return make


@pytest.fixture
def pipelines(db: Any) -> dict[str, Any]:
    """Three pipelines: strict (Lead → Qualified → Proposal (amount, company) → Contract, with a
    48-hour limit on Qualified), free (New → Talks → Offer) and stageless; loss reasons."""
    from rapport.sales.models import LossReason, Pipeline, Stage

    strict = Pipeline.objects.create(name="New clients", kind="strict", order=1)
    free = Pipeline.objects.create(name="Repeat sales", kind="free", order=2)
    stageless = Pipeline.objects.create(name="Projects", kind="stageless", order=3)
    s = [
        Stage.objects.create(pipeline=strict, name="Lead", order=10, probability=10),
        Stage.objects.create(
            pipeline=strict, name="Qualified", order=20, probability=30, time_limit_hours=48
        ),
        Stage.objects.create(
            pipeline=strict,
            name="Proposal",
            order=30,
            probability=60,
            required_fields=["amount", "company"],
        ),
        Stage.objects.create(pipeline=strict, name="Contract", order=40, probability=90),
    ]
    f = [
        Stage.objects.create(pipeline=free, name="New", order=10),
        Stage.objects.create(pipeline=free, name="Talks", order=20),
        Stage.objects.create(pipeline=free, name="Offer", order=30),
    ]
    price = LossReason.objects.get_or_create(name="Price too high", defaults={"order": 1})[0]
    rival = LossReason.objects.get_or_create(name="Chose a competitor", defaults={"order": 2})[0]
    return {
        "strict": strict,
        "free": free,
        "stageless": stageless,
        "strict_stages": s,
        "free_stages": f,
        "price": price,
        "rival": rival,
    }


@pytest.fixture
def make_deal(pipelines: dict[str, Any]) -> Any:
    from rapport.sales.services import deal_create

    def make(actor: Any, title: str = "Deal", pipeline: Any = None, **data: Any) -> Any:
        p = pipeline or pipelines["free"]
        return deal_create(actor=actor, data={"title": title, "pipeline_id": p.pk, **data})

    return make


@pytest.fixture
def make_lead() -> Any:
    from rapport.sales.services import lead_create

    def make(actor: Any, name: str = "Maria Rossi", **data: Any) -> Any:
        return lead_create(actor=actor, data={"name": name, **data})

    return make


@pytest.fixture
def rapport_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``rapport_cli(env, *args)``: run ``python -m rapport.cli *args`` as a real process
    with ``env``, its output captured (10 minutes at most)."""

    def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "rapport.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    return run


@pytest.fixture
def sqlite_cli_env(tmp_path: Any) -> Callable[..., tuple[dict[str, str], Any]]:
    """``sqlite_cli_env(**extra)``: the environment of a real ``rapport`` process on a SQLite
    file of its own under ``tmp_path`` (with an admin password, plus ``extra``), and the
    file's path."""

    def make(**extra: str) -> tuple[dict[str, str], Any]:
        data_dir = tmp_path / "data"
        db = data_dir / "rapport.sqlite3"
        env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "RAPPORT_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{db}",
            "RAPPORT_ADMIN_PASSWORD": "a-long-admin-password",
            "DJANGO_SETTINGS_MODULE": "rapport.settings",
            **extra,
        }
        return env, db

    return make
