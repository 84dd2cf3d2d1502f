"""Record scopes: what a user may see and do, per object type and action.

A role grants, per object type, each action with a scope: none, own (records the
user is responsible for), team (records of the user's team and its sub-teams) or
all. Every selector filters with ``scope_q``; services check with ``scope_allows``.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

ACTIONS: tuple[str, ...] = ("view", "create", "edit", "delete", "export", "assign")
ACTION_LABELS = {
    "view": _("view"),
    "create": _("create"),
    "edit": _("edit"),
    "delete": _("delete"),
    "export": _("export"),
    "assign": _("assign"),
}
SCOPE_NONE, SCOPE_OWN, SCOPE_TEAM, SCOPE_ALL = "none", "own", "team", "all"
SCOPES: tuple[str, ...] = (SCOPE_NONE, SCOPE_OWN, SCOPE_TEAM, SCOPE_ALL)
SCOPE_LABELS = {
    SCOPE_NONE: _("no access"),
    SCOPE_OWN: _("own records"),
    SCOPE_TEAM: _("team and sub-teams"),
    SCOPE_ALL: _("all records"),
}
OBJECT_TYPES: dict[str, Any] = {
    "company": _("Companies"),
    "person": _("People"),
    "lead": _("Leads"),
    "deal": _("Deals"),
    "interaction": _("Interactions"),
    "task": _("Tasks"),
    "team": _("Teams"),
    "user": _("Users"),
}
_RANK = {s: i for i, s in enumerate(SCOPES)}


class ScopedUser(Protocol):
    pk: Any
    is_superuser: bool
    is_active: bool

    def grants(self) -> dict[str, dict[str, str]]: ...

    def team_subtree_ids(self) -> list[int]: ...


def user_scope(user: Any, object_type: str, action: str) -> str:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return SCOPE_NONE
    if user.is_superuser:
        return SCOPE_ALL
    scope = user.grants().get(object_type, {}).get(action, SCOPE_NONE)
    return scope if scope in _RANK else SCOPE_NONE


def scope_q(
    user: Any,
    object_type: str,
    action: str = "view",
    *,
    owner_field: str = "responsible_id",
    team_field: str = "team_id",
) -> Q:
    """A filter that keeps only the rows ``user`` may ``action``. Deny by default."""
    scope = user_scope(user, object_type, action)
    if scope == SCOPE_ALL:
        return Q()
    if scope == SCOPE_TEAM:
        return Q(**{f"{team_field}__in": user.team_subtree_ids()}) | Q(**{owner_field: user.pk})
    if scope == SCOPE_OWN:
        return Q(**{owner_field: user.pk})
    return Q(pk__in=[])


def scope_allows(
    user: Any,
    object_type: str,
    action: str,
    *,
    owner_id: int | None = None,
    team_id: int | None = None,
) -> bool:
    """Whether ``user`` may ``action`` a record with this owner and team."""
    scope = user_scope(user, object_type, action)
    if scope == SCOPE_ALL:
        return True
    if scope == SCOPE_NONE:
        return False
    if owner_id is not None and owner_id == user.pk:
        return True
    return scope == SCOPE_TEAM and team_id is not None and team_id in user.team_subtree_ids()


def can(user: Any, object_type: str, action: str) -> bool:
    """Whether ``user`` may ``action`` at least some records of the type."""
    return user_scope(user, object_type, action) != SCOPE_NONE
