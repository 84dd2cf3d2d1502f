"""Routing fixtures: a sales team of three reps, a head of sales, and helpers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone


@pytest.fixture
def sales(org: dict[str, Any]) -> dict[str, Any]:
    """Team "Sales" (under the office) with reps Anna, Boris and Vera, in id order."""
    from rapport.accounts.services import team_create, user_create

    team = team_create(actor=None, name="Sales", parent=org["office"])
    people = [
        user_create(
            actor=None,
            username=name,
            password="correct-horse-battery-9",
            first_name=name.title(),
            team=team,
            role=org["rep"],
        )
        for name in ("anna", "boris", "vera")
    ]
    return {"team": team, "anna": people[0], "boris": people[1], "vera": people[2], "all": people}


@pytest.fixture
def head(org: dict[str, Any]) -> Any:
    """Head of sales: a role that may assign every lead (not an administrator)."""
    from rapport.accounts.services import user_create

    return user_create(
        actor=None,
        username="helga",
        password="correct-horse-battery-9",
        first_name="Helga",
        team=org["office"],
        role=org["head"],
    )


@pytest.fixture
def rule() -> Any:
    """Save a routing rule as the system (no actor)."""
    from rapport.routing.services import routing_rule_save

    def make(**data: Any) -> Any:
        data.setdefault("name", "Rule")
        return routing_rule_save(actor=None, data=data)

    return make


@pytest.fixture
def new_lead() -> Any:
    """A lead as a website form creates it: no actor, so no manager."""
    from rapport.sales.services import lead_create

    def make(name: str = "Website visitor", **data: Any) -> Any:
        return lead_create(actor=None, data={"name": name, "channel": "web_form", **data})

    return make


@pytest.fixture
def away() -> Any:
    """Put a user on an unplanned absence under way now (it starts at once)."""
    from rapport.routing.services import absence_create

    def make(user: Any, deputy: Any = None, hours: int = 24, **data: Any) -> Any:
        now = timezone.now()
        return absence_create(
            actor=None,
            data={
                "user_id": user.pk,
                "kind": "unplanned",
                "starts_at": now - dt.timedelta(minutes=1),
                "ends_at": now + dt.timedelta(hours=hours),
                "deputy_id": deputy.pk if deputy else None,
                **data,
            },
        )

    return make
