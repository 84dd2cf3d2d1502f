"""Logging in, lockout after repeated failures, sessions, preferences, teams and roles."""

from __future__ import annotations

import pytest
from django.test import Client

from rapport.accounts.models import LoginAttempt, Team
from rapport.accounts.services import team_create, team_update
from rapport.core.errors import FieldErrors

PASSWORD = "correct-horse-battery-9"


def login(client, username, password):
    return client.post("/login/", {"username": username, "password": password})


def test_a_user_logs_in_and_out(alice):
    client = Client()
    assert login(client, "alice", PASSWORD).status_code == 302
    assert client.get("/companies/").status_code == 200
    client.post("/logout/")
    assert client.get("/companies/").status_code == 302


def test_ten_failures_lock_the_account_even_for_the_right_password(alice, settings):
    client = Client()
    for _ in range(settings.LOGIN_MAX_FAILURES):
        assert login(client, "alice", "wrong").status_code == 200
    assert login(client, "alice", PASSWORD).status_code == 200  # refused while locked
    assert LoginAttempt.objects.filter(username="alice").count() == settings.LOGIN_MAX_FAILURES + 1


def test_an_unknown_login_gets_the_same_answer_as_a_wrong_password(alice):
    wrong = login(Client(), "alice", "wrong").content.decode()
    unknown = login(Client(), "nobody", "wrong").content.decode()
    import re

    def strip(html: str) -> str:
        return re.sub(r"[A-Za-z0-9]{40,}", "T", html.replace("alice", "X").replace("nobody", "X"))

    assert strip(wrong) == strip(unknown)


def test_an_idle_session_expires(alice, settings):
    import time

    from rapport.accounts.middleware import IDLE_KEY

    client = Client()
    login(client, "alice", PASSWORD)
    client.get("/")
    session = client.session
    session[IDLE_KEY] = int(time.time()) - settings.SESSION_IDLE_MINUTES * 60 - 5
    session.save()
    assert client.get("/companies/").status_code == 302


def test_sessions_have_a_12_hour_absolute_lifetime_by_default(settings):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert settings.SESSION_IDLE_MINUTES == 30


def test_the_profile_sets_language_and_time_zone(alice, client_for):
    client = client_for(alice)
    r = client.post(
        "/profile/",
        {
            "action": "preferences",
            "language": "ru",
            "time_zone": "Asia/Baku",
            "first_name": "Alice",
            "last_name": "",
            "email": "",
        },
    )
    assert r.status_code == 302
    alice.refresh_from_db()
    assert (alice.language, alice.time_zone) == ("ru", "Asia/Baku")
    assert 'lang="ru"' in client.get("/").content.decode()
    bad = client.post("/profile/", {"action": "preferences", "time_zone": "Mars/Olympus"})
    assert bad.status_code == 422


def test_password_change_needs_the_current_password(alice, client_for):
    client = client_for(alice)
    r = client.post(
        "/profile/",
        {
            "action": "password",
            "old_password": "nope",
            "new_password": "another-long-pass-7",
            "new_password2": "another-long-pass-7",
        },
    )
    assert r.status_code == 422
    r = client.post(
        "/profile/",
        {
            "action": "password",
            "old_password": PASSWORD,
            "new_password": "another-long-pass-7",
            "new_password2": "another-long-pass-7",
        },
    )
    assert r.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("another-long-pass-7")


def test_api_tokens_are_shown_once_and_stored_hashed(alice, client_for):
    from rapport.accounts.models import ApiToken

    r = client_for(alice).post("/profile/", {"action": "token", "token_name": "script"})
    html = r.content.decode()
    token = ApiToken.objects.get(user=alice)
    raw = html.split('id="new-token">')[1].split("<")[0]
    assert raw.startswith("rpt_")
    assert token.digest == ApiToken.hash(raw)
    assert raw not in token.digest
    assert raw not in client_for(alice).get("/profile/").content.decode()


def test_teams_form_a_tree_and_cannot_be_moved_under_themselves(org):
    a, a1 = org["team_a"], org["team_a1"]
    with pytest.raises(FieldErrors):
        team_update(actor=None, team=a, name=a.name, kind=a.kind, parent=a1)  # type: ignore[arg-type]
    deeper = team_create(actor=None, name="A1x", parent=a1)
    team_update(actor=None, team=a1, name="A1", kind=a1.kind, parent=org["team_b"])  # type: ignore[arg-type]
    deeper.refresh_from_db()
    assert deeper.path.startswith(Team.objects.get(pk=org["team_b"].pk).path)


def test_admin_pages_create_users_teams_and_roles(admin_user, client_for, org):
    client = client_for(admin_user)
    assert (
        client.post(
            "/settings/teams/",
            {"name": "Sales C", "kind": "department", "parent": org["office"].pk},
        ).status_code
        == 302
    )
    r = client.post(
        "/settings/roles/",
        {"name": "Auditor", "perm_company_view": "all", "perm_person_view": "team"},
    )
    assert r.status_code == 302
    r = client.post(
        "/settings/users/",
        {"username": "zoe", "password": "a-long-enough-pass-1", "team": org["team_b"].pk},
    )
    assert r.status_code == 302
    weak = client.post("/settings/users/", {"username": "yan", "password": "123"})
    assert weak.status_code == 422
    assert "password" in weak.content.decode()
