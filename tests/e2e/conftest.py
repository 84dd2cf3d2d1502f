"""Browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

One headless browser per session, a fresh context (cookies, storage) per test. Every request
to a host other than the live server's loopback address is aborted, and recorded so the test
fails: the pages must not depend on anything outside the server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run
# beside one unless told it is safe (it is: the loop only drives the browser).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
PASSWORD = "correct-horse-battery-9"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: Any, django_db_blocker: Any) -> None:
    """Live-server tests flush the database between tests. On SQLite the audit table's
    append-only DELETE trigger refuses that flush; drop it in the test database (harmless if
    tests/conftest.py already did). PostgreSQL flushes with TRUNCATE, triggers untouched."""
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "sqlite":
            with connection.cursor() as c:
                c.execute("DROP TRIGGER IF EXISTS core_auditentry_no_delete")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Users are made and logged in per test; the production hasher's million rounds would
    spend most of the suite's time. The live server runs in this process, so it follows."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run e2e tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser context: 1280x800, English, UTC; requests leave only to loopback."""
    ctx = browser.new_context(
        viewport=VIEWPORT, locale="en-US", timezone_id="UTC", base_url=live_server.url
    )
    ctx.set_default_timeout(10_000)
    blocked: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            blocked.append(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    ctx.route("**/*", guard)
    yield ctx
    ctx.close()
    assert not blocked, f"pages tried to reach outside the test server: {blocked}"


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page that records uncaught JavaScript errors and failed assets (a stylesheet, a script,
    an htmx fragment answering 4xx/5xx); the test errors if any happened. A page itself may
    answer 404, and a board move may be refused (409/422 with a reason the page shows):
    tests check those where they expect them."""
    pg = context.new_page()
    errors: list[str] = []
    failed: list[str] = []

    def on_response(response: Any) -> None:
        kind = response.request.resource_type
        if kind == "fetch" and response.status in (409, 422):
            return  # a refused board move: the page shows the server's reason
        if response.status >= 400 and kind != "document":
            failed.append(f"{response.status} {response.request.resource_type} {response.url}")

    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("response", on_response)
    yield pg
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not failed, f"assets the pages needed failed to load: {sorted(set(failed))}"


@pytest.fixture
def e2e_org(transactional_db: Any) -> dict[str, Any]:
    """Two sibling teams under one office and a manager role with team scope."""
    from rapport.accounts.models import default_permissions
    from rapport.accounts.services import role_save, team_create

    root = team_create(actor=None, name="Rapport Ltd", kind="organisation")
    office = team_create(actor=None, name="Moscow office", kind="office", parent=root)
    return {
        "office": office,
        "sales_a": team_create(actor=None, name="Sales A", parent=office),
        "sales_b": team_create(actor=None, name="Sales B", parent=office),
        "manager": role_save(
            actor=None, name="Sales manager", permissions=default_permissions("team", "team")
        ),
    }


def _user(org: dict[str, Any], username: str, first: str, last: str, team: str) -> Any:
    from rapport.accounts.services import user_create

    return user_create(
        actor=None,
        username=username,
        password=PASSWORD,
        first_name=first,
        last_name=last,
        team=org[team],
        role=org["manager"],
    )


@pytest.fixture
def manager(e2e_org: dict[str, Any]) -> Any:
    """Maria, manager of team Sales A: sees and edits her team's records."""
    return _user(e2e_org, "maria", "Maria", "Ivanova", "sales_a")


@pytest.fixture
def outsider(e2e_org: dict[str, Any]) -> Any:
    """Oleg, manager of the sibling team Sales B: must not see team A's records."""
    return _user(e2e_org, "oleg", "Oleg", "Smirnov", "sales_b")


@pytest.fixture
def login(live_server: Any) -> Any:
    """Log a user in through the login form; returns the page on the home page."""

    def do(page: Any, user: Any) -> Any:
        page.goto("/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    return do


@pytest.fixture
def screenshot() -> Any:
    """Save a full-page screenshot to docs/screenshots/<name>.png."""

    def shoot(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        return path

    return shoot
