"""Reads of the routing table and of absences, through the acting user's scope.

The routing table is seen by the head of sales (an administrator, or a role that may
assign every lead). Absences: everyone sees their own; a user who may assign the team's
leads sees the team's (and its sub-teams'); one who may assign every lead sees all.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from rapport.accounts.models import User
from rapport.core.scopes import SCOPE_ALL, SCOPE_TEAM, user_scope
from rapport.routing.models import Absence, Handover, RoutingRule


def is_head_of_sales(user: User | None) -> bool:
    """An administrator, or a user whose role may assign every lead."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_rapport_admin or user_scope(user, "lead", "assign") == SCOPE_ALL


def routing_rule_list(*, user: User) -> QuerySet[RoutingRule]:
    if not is_head_of_sales(user):
        return RoutingRule.objects.none()
    return RoutingRule.objects.select_related("target_user", "target_team").order_by("order", "id")


def routing_rule_get(*, user: User, rule_id: int) -> RoutingRule:
    rule = routing_rule_list(user=user).filter(pk=rule_id).first()
    if rule is None:
        raise Http404
    return rule


def absence_scope(user: User) -> str:
    """own, team or all: whose absences ``user`` may see and manage."""
    if user.is_rapport_admin:
        return SCOPE_ALL
    scope = user_scope(user, "lead", "assign")
    return scope if scope in (SCOPE_ALL, SCOPE_TEAM) else "own"


def absence_scope_q(user: User, *, prefix: str = "") -> Q:
    """A filter on users (``prefix`` "user__" for absences) that ``user`` may manage."""
    scope = absence_scope(user)
    if scope == SCOPE_ALL:
        return Q()
    own = Q(**{f"{prefix}pk": user.pk})
    if scope == SCOPE_TEAM:
        return own | Q(**{f"{prefix}team_id__in": user.team_subtree_ids()})
    return own


def absence_list(*, user: User, status: str = "", who: str = "") -> QuerySet[Absence]:
    """Absences ``user`` may see (those they manage, and those they stand in for as
    deputy); ``who``: "mine" for the user's own only."""
    qs = Absence.objects.all()
    if absence_scope(user) != SCOPE_ALL:
        # Not ``Q() | …``: an empty Q or-ed with another is that other one alone.
        qs = qs.filter(absence_scope_q(user, prefix="user__") | Q(deputy=user))
    if who == "mine":
        qs = qs.filter(user=user)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related("user", "deputy", "created_by").order_by("-starts_at", "-id")


def absence_get(*, user: User, absence_id: int) -> Absence:
    obj = absence_list(user=user).filter(pk=absence_id).first()
    if obj is None:
        raise Http404
    return obj


def absence_handovers(*, absence: Absence) -> QuerySet[Handover]:
    return absence.handovers.select_related("to_user", "from_user").order_by("object_type", "id")


def users_for_absences(*, user: User) -> QuerySet[User]:
    """Users ``user`` may record an absence for (themselves, or their team's, or anyone)."""
    return (
        User.objects.filter(absence_scope_q(user), is_active=True)
        .select_related("team")
        .order_by("username")
    )


def deputies() -> QuerySet[User]:
    """Everyone who can stand in: active users."""
    return User.objects.filter(is_active=True).select_related("team").order_by("username")
