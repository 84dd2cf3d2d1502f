from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _fresh_rules(settings: Any) -> Any:
    """Each test sees its own rules at once (the worker's cache re-reads them every time)."""
    from rapport.automations.engine import rules_cache_clear

    settings.AUTOMATION_RULES_TTL = 0
    rules_cache_clear()
    yield
    rules_cache_clear()


@pytest.fixture
def head_of_sales(org: dict[str, Any]) -> Any:
    from rapport.accounts.services import user_create

    return user_create(
        actor=None,
        username="helga",
        password="correct-horse-battery-9",
        first_name="Helga",
        email="helga@example.com",
        team=org["office"],
        role=org["head"],
    )


@pytest.fixture
def dispatch() -> Any:
    """Run the worker's outbox dispatch until nothing is left (rules, handlers)."""
    from rapport.core.events import outbox_dispatch

    def run() -> int:
        total = 0
        while True:
            n = outbox_dispatch()
            total += n
            if not n:
                return total

    return run


@pytest.fixture
def rule_log(admin_user: Any) -> Any:
    """A rule's lines of the execution log as an administrator sees them filtered by that
    rule (an event's grouped "conditions not met" row reads as the rule's own run)."""
    from rapport.automations.selectors import run_entries, run_list

    def lines(rule: Any, **filters: Any) -> list[Any]:
        runs = list(run_list(user=admin_user, rule_id=rule.pk, **filters).order_by("id"))
        return [entry["run"] for entry in run_entries(runs, rule_id=rule.pk)]

    return lines
