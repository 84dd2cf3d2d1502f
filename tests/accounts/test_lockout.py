"""R5: 200 wrong passwords on one account, from one and from twenty loopback addresses.

The login page is driven for real (django.test.Client with REMOTE_ADDR 127.0.0.x). How many
attempts actually evaluated a password is counted by the password hasher itself: the test
settings install a hasher that counts its own verify/encode calls. The passage of time is
simulated by moving the recorded attempts back in the database, as a clock would.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.db import connection
from django.db.models import F
from django.test import Client

from rapport.accounts.models import LoginAttempt

PASSWORD = "correct-horse-battery-9"
ATTEMPTS = 200
HOUR = 3600
WINDOW = 15 * 60


class CountingHasher(MD5PasswordHasher):
    """A real hasher that counts the passwords it hashes or checks (fast, for tests only)."""

    verified: ClassVar[int] = 0
    encoded: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def verify(self, password: str, encoded: str) -> bool:
        with CountingHasher.lock:
            CountingHasher.verified += 1
        return super().verify(password, encoded)

    def encode(self, password: str, salt: str) -> str:
        with CountingHasher.lock:
            CountingHasher.encoded += 1
        return super().encode(password, salt)

    @classmethod
    def evaluations(cls) -> int:
        return cls.verified + cls.encoded

    @classmethod
    def reset(cls) -> None:
        cls.verified = cls.encoded = 0


@pytest.fixture
def counting_hasher(settings: Any) -> type[CountingHasher]:
    settings.PASSWORD_HASHERS = [f"{CountingHasher.__module__}.CountingHasher"]
    CountingHasher.reset()
    return CountingHasher


@pytest.fixture
def victim(org: dict[str, Any], counting_hasher: type[CountingHasher]) -> Any:
    """Alice, her password hashed by the counting hasher."""
    from rapport.accounts.services import user_create

    user = user_create(
        actor=None, username="alice", password=PASSWORD, team=org["team_a"], role=org["rep"]
    )
    counting_hasher.reset()
    return user


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The security logger does not propagate to the root logger; listen to it directly."""
    logger = logging.getLogger("rapport.security")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="rapport.security")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def clients(n_ips: int) -> list[Client]:
    return [Client(REMOTE_ADDR=f"127.0.0.{i + 1}") for i in range(n_ips)]


def login(client: Client, username: str, password: str) -> tuple[int, str]:
    r = client.post("/login/", {"username": username, "password": password})
    return r.status_code, reply_text(r.content.decode())


def reply_text(html: str) -> str:
    """What the person sees, without the per-request CSRF tokens and the typed login."""
    html = re.sub(r"[A-Za-z0-9]{40,}", "CSRF", html)
    return re.sub(r'id="id_username"[^>]*>', "", html)


def error_of(text: str) -> str:
    found = re.search(r'<p class="errorlist">(.*?)</p>', text, re.S)
    return found.group(1) if found else ""


def advance_clock(seconds: float) -> None:
    """Time passes: every recorded attempt becomes ``seconds`` older."""
    if seconds:
        LoginAttempt.objects.update(at=F("at") - timedelta(seconds=seconds))


def attack(
    *, username: str, n_ips: int, every_seconds: float, hasher: type[CountingHasher]
) -> list[tuple[float, bool, int, str]]:
    """ATTEMPTS wrong passwords, one each ``every_seconds``, rotating over ``n_ips`` addresses:
    (time, evaluated, status, reply) for each."""
    pool = clients(n_ips)
    out = []
    for i in range(ATTEMPTS):
        if i:
            advance_clock(every_seconds)
        before = hasher.evaluations()
        status, text = login(pool[i % n_ips], username, f"wrong-{i}")
        out.append((i * every_seconds, hasher.evaluations() > before, status, text))
    return out


def most_in_any(window: float, times: list[float]) -> int:
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


@pytest.mark.parametrize("n_ips", [1, 20])
def test_a_burst_of_200_wrong_passwords_locks_the_account_after_10(
    victim, counting_hasher, security_log, settings, n_ips
):
    # when 200 wrong passwords arrive at once, from one address or from twenty
    results = attack(username="alice", n_ips=n_ips, every_seconds=0, hasher=counting_hasher)

    # then only the first 10 are checked; every reply is the same refusal
    evaluated = [i for i, (_t, ev, _s, _r) in enumerate(results) if ev]
    assert evaluated == list(range(settings.LOGIN_MAX_FAILURES))
    assert {status for _t, _e, status, _r in results} == {200}
    assert len({reply for *_x, reply in results}) == 1
    assert error_of(results[0][3])

    # and the right password is refused too while locked, with the same message, unchecked
    before = counting_hasher.evaluations()
    status, reply = login(Client(REMOTE_ADDR="127.0.0.99"), "alice", PASSWORD)
    assert (status, reply) == (200, results[0][3])
    assert counting_hasher.evaluations() == before

    # and every attempt left a trace in the security log, with the account and the address
    records = [r for r in security_log.records if r.name == "rapport.security"]
    assert len(records) == ATTEMPTS + 1
    for i, record in enumerate(records[:ATTEMPTS]):
        message = record.getMessage()
        assert "'alice'" in message
        assert message.endswith(f" 127.0.0.{i % n_ips + 1}"), message
    assert records[-1].getMessage().endswith(" 127.0.0.99")


@pytest.mark.parametrize(
    "every_seconds",
    [
        pytest.param(18, id="200-in-one-hour"),
        pytest.param(89, id="just-faster-than-the-lock-allows"),
        pytest.param(91, id="just-slower-than-the-lock-allows"),
        pytest.param(WINDOW / 2, id="two-per-window"),
    ],
)
def test_at_most_100_passwords_are_checked_per_hour_whatever_the_pace(
    victim, counting_hasher, settings, every_seconds
):
    # when an attacker paces 200 attempts from 20 addresses
    results = attack(
        username="alice", n_ips=20, every_seconds=every_seconds, hasher=counting_hasher
    )

    # then no hour, and no lockout window, sees more checks than allowed
    checked = [t for t, evaluated, _s, _r in results if evaluated]
    assert most_in_any(HOUR, checked) <= 100
    assert most_in_any(WINDOW, checked) <= settings.LOGIN_MAX_FAILURES
    assert counting_hasher.verified == len(checked)


def test_after_the_lockout_window_the_owner_logs_in_again(victim, counting_hasher, settings):
    attack(username="alice", n_ips=1, every_seconds=0, hasher=counting_hasher)
    assert login(Client(), "alice", PASSWORD)[0] == 200  # still locked

    advance_clock(settings.LOGIN_LOCKOUT_MINUTES * 60 + 1)

    status, _ = login(Client(), "alice", PASSWORD)
    assert status == 302
    assert not LoginAttempt.objects.filter(username="alice").exists()


def test_an_unknown_login_is_answered_and_locked_like_a_known_one(
    victim, counting_hasher, security_log, settings
):
    # when the same 200 attempts go to an account that does not exist
    known = attack(username="alice", n_ips=20, every_seconds=0, hasher=counting_hasher)
    counting_hasher.reset()
    unknown = attack(username="nobody", n_ips=20, every_seconds=0, hasher=counting_hasher)

    # then the replies are the same, reply for reply, and as much hashing is done
    assert [(s, r.replace("nobody", "alice")) for *_x, s, r in unknown] == [
        (s, r) for *_x, s, r in known
    ]
    assert [ev for _t, ev, _s, _r in unknown] == [ev for _t, ev, _s, _r in known]
    assert counting_hasher.encoded == settings.LOGIN_MAX_FAILURES  # timing kept alike
    assert len([r for r in security_log.records if "'nobody'" in r.getMessage()]) == ATTEMPTS


def test_changing_the_case_of_the_login_does_not_reset_the_count(victim, counting_hasher, settings):
    pool = ["alice", "Alice", "ALICE", "aLiCe", " alice "]
    for i in range(ATTEMPTS):
        login(Client(REMOTE_ADDR=f"127.0.0.{i % 20 + 1}"), pool[i % len(pool)], "wrong")
    assert counting_hasher.verified <= settings.LOGIN_MAX_FAILURES


@pytest.mark.django_db(transaction=True)
def test_concurrent_attempts_from_20_addresses_check_no_more_than_the_limit(
    org, counting_hasher, settings
):
    """Twenty addresses firing together: the check-then-count must not let a wave through."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("threads cannot write one in-memory SQLite test database concurrently")
    from rapport.accounts.services import user_create

    user_create(actor=None, username="alice", password=PASSWORD, team=org["team_a"], role=None)
    counting_hasher.reset()
    start = threading.Barrier(20)
    errors: list[BaseException] = []

    def fire(i: int) -> None:
        try:
            client = Client(REMOTE_ADDR=f"127.0.0.{i + 1}")
            start.wait()
            for k in range(ATTEMPTS // 20):
                login(client, "alice", f"wrong-{i}-{k}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            from django.db import connections

            connections.close_all()

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert LoginAttempt.objects.filter(username="alice").count() == ATTEMPTS
    assert counting_hasher.verified <= settings.LOGIN_MAX_FAILURES


def test_old_failed_logins_are_forgotten_and_recent_ones_still_lock(db, settings):
    import datetime as dt

    from django.utils import timezone

    from rapport.accounts.models import LoginAttempt
    from rapport.accounts.services import login_attempts_prune

    settings.LOGIN_ATTEMPTS_KEEP_DAYS = 30
    old = LoginAttempt.objects.create(username="mallory", ip="127.0.0.1")
    LoginAttempt.objects.filter(pk=old.pk).update(at=timezone.now() - dt.timedelta(days=31))
    LoginAttempt.objects.create(username="mallory", ip="127.0.0.1")
    assert login_attempts_prune() == 1
    assert LoginAttempt.objects.count() == 1
    settings.LOGIN_ATTEMPTS_KEEP_DAYS = 0  # never shorter than the lockout window
    assert login_attempts_prune() == 0
