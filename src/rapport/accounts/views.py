"""Login, profile (language, time zone, password, API tokens), users, teams and roles pages."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts import selectors, services
from rapport.accounts.models import Role, Team, User
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.scopes import ACTION_LABELS, ACTIONS, OBJECT_TYPES, SCOPE_LABELS, SCOPES


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _admin(request: HttpRequest) -> User:
    user = _user(request)
    if not user.is_rapport_admin:
        raise Http404
    return user


TIME_ZONES = sorted(zoneinfo.available_timezones())


def _notify_kinds() -> list[tuple[str, Any]]:
    from rapport.activities.models import NotificationKind

    return list(NotificationKind.choices)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    errors: dict[str, list[str]] = {}
    new_token = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "preferences":
                services.user_update(
                    actor=user,
                    user=user,
                    first_name=request.POST.get("first_name", ""),
                    last_name=request.POST.get("last_name", ""),
                    email=request.POST.get("email", ""),
                    time_zone=request.POST.get("time_zone", ""),
                    language=request.POST.get("language", ""),
                    email_notify_kinds=request.POST.getlist("email_notify_kinds"),
                )
                messages.success(request, _("Preferences saved."))
                return redirect("profile")
            if action == "password":
                if not user.check_password(request.POST.get("old_password", "")):
                    raise FieldErrors.single(
                        "old_password", _("Your current password is not right.")
                    )
                if request.POST.get("new_password") != request.POST.get("new_password2"):
                    raise FieldErrors.single("new_password2", _("The two passwords differ."))
                services.user_set_password(
                    actor=user, user=user, password=request.POST.get("new_password", "")
                )
                update_session_auth_hash(request, user)
                messages.success(request, _("Password changed."))
                return redirect("profile")
            if action == "token":
                _token, new_token = services.api_token_create(
                    user=user, name=request.POST.get("token_name", "")
                )
        except FieldErrors as exc:
            errors = exc.errors
    return render(
        request,
        "accounts/profile.html",
        {
            "languages": settings.LANGUAGES,
            "time_zones": TIME_ZONES,
            "tokens": selectors.api_token_list(user=user),
            "notify_kinds": _notify_kinds(),
            "new_token": new_token,
            "errors": errors,
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    user = _user(request)
    token = selectors.api_token_list(user=user).filter(pk=token_id).first()
    if token is None:
        raise Http404
    services.api_token_revoke(user=user, token=token)
    messages.success(request, _("Token revoked."))
    return redirect("profile")


@login_required
def users(request: HttpRequest) -> HttpResponse:
    actor = _admin(request)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        p = request.POST
        try:
            team = selectors.team_get(user=actor, team_id=int(p["team"])) if p.get("team") else None
            role = Role.objects.filter(pk=p.get("role") or 0).first()
            services.user_create(
                actor=actor,
                username=p.get("username", ""),
                password=p.get("password", ""),
                first_name=p.get("first_name", ""),
                last_name=p.get("last_name", ""),
                email=p.get("email", ""),
                team=team,
                role=role,
                language=p.get("language", ""),
                time_zone=p.get("time_zone", ""),
            )
            messages.success(request, _("User created."))
            return redirect("users")
        except FieldErrors as exc:
            errors = exc.errors
    return render(
        request,
        "accounts/users.html",
        {
            "users": selectors.user_list(user=actor),
            "teams": selectors.team_list(user=actor),
            "roles": selectors.role_list(user=actor),
            "languages": settings.LANGUAGES,
            "errors": errors,
            "data": request.POST,
        },
        status=422 if errors else 200,
    )


@login_required
def user_edit(request: HttpRequest, user_id: int) -> HttpResponse:
    actor = _admin(request)
    target = selectors.user_get(user=actor, user_id=user_id)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        p = request.POST
        try:
            team = selectors.team_get(user=actor, team_id=int(p["team"])) if p.get("team") else None
            role = Role.objects.filter(pk=p.get("role") or 0).first()
            services.user_update(
                actor=actor,
                user=target,
                first_name=p.get("first_name", ""),
                last_name=p.get("last_name", ""),
                email=p.get("email", ""),
                team=team,
                role=role,
                is_active=p.get("is_active") == "on",
                language=p.get("language", ""),
                time_zone=p.get("time_zone", ""),
            )
            if p.get("password"):
                services.user_set_password(actor=actor, user=target, password=p["password"])
            messages.success(request, _("User saved."))
            return redirect("users")
        except (FieldErrors, PermissionDenied) as exc:
            errors = exc.errors if isinstance(exc, FieldErrors) else {"__all__": [str(exc)]}
    return render(
        request,
        "accounts/user_edit.html",
        {
            "target": target,
            "teams": selectors.team_list(user=actor),
            "roles": selectors.role_list(user=actor),
            "languages": settings.LANGUAGES,
            "errors": errors,
        },
        status=422 if errors else 200,
    )


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    actor = _admin(request)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        p = request.POST
        try:
            parent = (
                selectors.team_get(user=actor, team_id=int(p["parent"]))
                if p.get("parent")
                else None
            )
            if p.get("team_id"):
                team = selectors.team_get(user=actor, team_id=int(p["team_id"]))
                services.team_update(
                    actor=actor,
                    team=team,
                    name=p.get("name", ""),
                    kind=p.get("kind", team.kind),
                    parent=parent,
                )
            else:
                services.team_create(
                    actor=actor,
                    name=p.get("name", ""),
                    kind=p.get("kind", Team.Kind.DEPARTMENT),
                    parent=parent,
                )
            messages.success(request, _("Team saved."))
            return redirect("teams")
        except FieldErrors as exc:
            errors = exc.errors
    return render(
        request,
        "accounts/teams.html",
        {
            "teams": selectors.team_list(user=actor).prefetch_related("members"),
            "kinds": Team.Kind.choices,
            "errors": errors,
        },
        status=422 if errors else 200,
    )


def _permission_grid(role: Role | None) -> list[dict[str, Any]]:
    perms = role.permissions if role else {}
    return [
        {
            "object": obj,
            "label": label,
            "cells": [
                {"action": a, "label": ACTION_LABELS[a], "value": perms.get(obj, {}).get(a, "none")}
                for a in ACTIONS
            ],
        }
        for obj, label in OBJECT_TYPES.items()
    ]


@login_required
def roles(request: HttpRequest, role_id: int | None = None) -> HttpResponse:
    actor = _admin(request)
    role = selectors.role_list(user=actor).filter(pk=role_id).first() if role_id else None
    if role_id and role is None:
        raise Http404
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        p = request.POST
        permissions = {
            obj: {a: p.get(f"perm_{obj}_{a}", "none") for a in ACTIONS} for obj in OBJECT_TYPES
        }
        try:
            services.role_save(
                actor=actor,
                role=role,
                name=p.get("name", ""),
                description=p.get("description", ""),
                permissions=permissions,
                is_admin=p.get("is_admin") == "on",
            )
            messages.success(request, _("Role saved."))
            return redirect("roles")
        except FieldErrors as exc:
            errors = exc.errors
    return render(
        request,
        "accounts/roles.html",
        {
            "roles": selectors.role_list(user=actor),
            "role": role,
            "grid": _permission_grid(role),
            "scopes": [(s, SCOPE_LABELS[s]) for s in SCOPES],
            "errors": errors,
        },
        status=422 if errors else 200,
    )
