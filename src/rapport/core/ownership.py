"""Who owns a record: the responsible manager, their team, and the checks on assigning."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from rapport.accounts.models import Team, User
from rapport.core.scopes import scope_allows


def resolve_responsible(
    actor: User | None, object_type: str, responsible_id: Any, errors: dict[str, list[str]]
) -> User | None:
    if responsible_id in (None, ""):
        return actor if actor and actor.is_authenticated else None
    try:
        user = User.objects.select_related("team").get(pk=int(responsible_id), is_active=True)
    except (User.DoesNotExist, ValueError, TypeError):
        errors["responsible_id"] = [_("No active user with this id.")]
        return None
    if (
        actor is not None
        and user.pk != actor.pk
        and not scope_allows(actor, object_type, "assign", team_id=user.team_id, owner_id=None)
    ):
        errors["responsible_id"] = [_("You may not assign records to this user.")]
    return user


def parse_date(value: Any, field: str, errors: dict[str, list[str]]) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        errors[field] = [_("Enter a date as YYYY-MM-DD.")]
        return None


def parse_when(value: Any, field: str, errors: dict[str, list[str]]) -> dt.datetime | None:
    """A date and time as typed (ISO), aware in the current time zone; None when empty."""
    if value in (None, ""):
        return None
    parsed: dt.datetime | None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = parse_datetime(str(value))
        except ValueError:
            parsed = None
    if parsed is None:
        errors[field] = [_("Enter a date and time as YYYY-MM-DD HH:MM.")]
        return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def team_for(responsible: User | None, actor: User | None) -> Team | None:
    if responsible is not None and responsible.team_id:
        return responsible.team
    if actor is not None and getattr(actor, "team_id", None):
        return actor.team
    return None
