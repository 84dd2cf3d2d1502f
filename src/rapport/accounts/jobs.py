"""Worker entry points of accounts: the upkeep of recorded failed logins."""

from __future__ import annotations

from rapport.core.tasks import periodic


def login_attempts_prune() -> int:
    from rapport.accounts.services import login_attempts_prune as prune

    return prune()


periodic(
    "rapport.accounts.login_attempts_prune",
    "rapport.accounts.jobs.login_attempts_prune",
    minutes=60,
)
