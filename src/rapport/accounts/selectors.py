"""Reads of users, teams and roles."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from rapport.accounts.models import ApiToken, Role, Team, User
from rapport.core.scopes import SCOPE_ALL, SCOPE_TEAM, can, user_scope


def user_list(*, user: User) -> QuerySet[User]:
    if not can(user, "user", "view"):
        return User.objects.none()
    return User.objects.select_related("team", "role").order_by("username")


def user_get(*, user: User, user_id: int) -> User:
    obj = user_list(user=user).filter(pk=user_id).first()
    if obj is None:
        raise Http404
    return obj


def user_assignable(*, user: User, object_type: str) -> QuerySet[User]:
    """Active users ``user`` may make responsible for a record of ``object_type``: anyone
    under an "all" assign scope, the user's team and sub-teams under "team", otherwise only
    themself (what ``core.ownership.resolve_responsible`` accepts on save)."""
    scope = user_scope(user, object_type, "assign")
    qs = User.objects.filter(is_active=True).order_by("last_name", "first_name", "username")
    if scope == SCOPE_ALL:
        return qs
    if scope == SCOPE_TEAM:
        return qs.filter(Q(team_id__in=user.team_subtree_ids()) | Q(pk=user.pk))
    return qs.filter(pk=user.pk)


def team_list(*, user: User) -> QuerySet[Team]:
    if not can(user, "team", "view"):
        return Team.objects.none()
    return Team.objects.select_related("parent").order_by("path")


def team_get(*, user: User, team_id: int) -> Team:
    obj = team_list(user=user).filter(pk=team_id).first()
    if obj is None:
        raise Http404
    return obj


def role_list(*, user: User) -> QuerySet[Role]:
    if not user.is_rapport_admin:
        return Role.objects.none()
    return Role.objects.order_by("name")


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")
