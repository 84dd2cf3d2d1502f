"""Reads of users, teams and roles."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from rapport.accounts.models import ApiToken, Role, Team, User
from rapport.core.scopes import can


def user_list(*, user: User) -> QuerySet[User]:
    if not can(user, "user", "view"):
        return User.objects.none()
    return User.objects.select_related("team", "role").order_by("username")


def user_get(*, user: User, user_id: int) -> User:
    obj = user_list(user=user).filter(pk=user_id).first()
    if obj is None:
        raise Http404
    return obj


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
