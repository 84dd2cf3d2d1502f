"""Writes for users, teams, roles and API tokens. Each is one audited transaction."""

from __future__ import annotations

import datetime as dt
import secrets
import zoneinfo
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import ApiToken, LoginAttempt, Role, Team, User
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.scopes import ACTIONS, OBJECT_TYPES, SCOPES

USER_FIELDS = [
    "username",
    "first_name",
    "last_name",
    "email",
    "team",
    "role",
    "time_zone",
    "language",
    "phone",
    "is_active",
    "email_notify_kinds",
]


def _require_admin(actor: User | None) -> None:
    if actor is not None and not actor.is_rapport_admin:
        raise PermissionDenied(_("Only an administrator can do this."))


def _check_prefs(time_zone: str, language: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if time_zone:
        try:
            zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = [_("Unknown time zone: %(tz)s.") % {"tz": time_zone}]
    if language and language not in dict(settings.LANGUAGES):
        errors["language"] = [_("Unsupported language: %(lang)s.") % {"lang": language}]
    return errors


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    username: str,
    password: str,
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    team: Team | None = None,
    role: Role | None = None,
    time_zone: str = "",
    language: str = "",
    is_superuser: bool = False,
) -> User:
    _require_admin(actor)
    errors = _check_prefs(time_zone, language)
    username = username.strip()
    if not username:
        errors["username"] = [_("This field is required.")]
    elif User.objects.filter(username__iexact=username).exists():
        errors["username"] = [_("A user with this login already exists.")]
    candidate = User(username=username, first_name=first_name, last_name=last_name, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise FieldErrors(errors)
    user = User(
        username=username,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        email=email.strip().lower(),
        team=team,
        role=role,
        time_zone=time_zone,
        language=language,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    user.set_password(password)
    user.save()
    audit_record(
        actor=actor,
        instance=user,
        object_type="user",
        action="create",
        changes={k: [None, v] for k, v in snapshot(user, USER_FIELDS).items()},
    )
    return user


@transaction.atomic
def user_update(*, actor: User, user: User, **fields: Any) -> User:
    """Change a user. Admins change anyone; a user changes their own preferences only."""
    own_prefs = {
        "first_name",
        "last_name",
        "email",
        "time_zone",
        "language",
        "phone",
        "email_notify_kinds",
    }
    if actor.pk != user.pk or not set(fields) <= own_prefs:
        _require_admin(actor)
    unknown = set(fields) - set(USER_FIELDS)
    if unknown:
        raise FieldErrors({k: [_("This field cannot be changed here.")] for k in unknown})
    errors = _check_prefs(fields.get("time_zone", ""), fields.get("language", ""))
    if "email_notify_kinds" in fields:
        from rapport.activities.models import NotificationKind

        kinds = [str(k) for k in fields["email_notify_kinds"] or []]
        if set(kinds) - set(NotificationKind.values):
            errors["email_notify_kinds"] = [_("Unknown notification kind.")]
        fields["email_notify_kinds"] = sorted(set(kinds))
    if errors:
        raise FieldErrors(errors)
    before = snapshot(user, USER_FIELDS)
    for name, value in fields.items():
        setattr(user, name, value.strip() if isinstance(value, str) else value)
    user.save(update_fields=list(fields))
    changes = diff(before, snapshot(user, USER_FIELDS))
    if changes:
        audit_record(
            actor=actor, instance=user, object_type="user", action="update", changes=changes
        )
    return user


@transaction.atomic
def user_set_password(*, actor: User, user: User, password: str) -> None:
    if actor.pk != user.pk:
        _require_admin(actor)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise FieldErrors({"password": list(exc.messages)}) from exc
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(
        actor=actor,
        instance=user,
        object_type="user",
        action="update",
        changes={"password": ["***", "***"]},
    )


def _team_path(team: Team) -> str:
    parent_path = team.parent.path if team.parent_id and team.parent else "/"
    return f"{parent_path}{team.pk}/"


@transaction.atomic
def team_create(
    *, actor: User | None, name: str, kind: str = Team.Kind.DEPARTMENT, parent: Team | None = None
) -> Team:
    _require_admin(actor)
    if not name.strip():
        raise FieldErrors.single("name", _("This field is required."))
    if kind not in Team.Kind.values:
        raise FieldErrors.single("kind", _("Unknown team kind."))
    team = Team.objects.create(name=name.strip(), kind=kind, parent=parent)
    team.path = _team_path(team)
    team.save(update_fields=["path"])
    audit_record(
        actor=actor,
        instance=team,
        object_type="team",
        action="create",
        changes={"name": [None, team.name], "parent": [None, parent.pk if parent else None]},
    )
    return team


@transaction.atomic
def team_update(*, actor: User, team: Team, name: str, kind: str, parent: Team | None) -> Team:
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = [_("This field is required.")]
    if parent is not None and parent.path.startswith(team.path):
        errors["parent"] = [_("A team cannot be placed inside itself or its sub-teams.")]
    if errors:
        raise FieldErrors(errors)
    before = snapshot(team, ["name", "kind", "parent"])
    old_path = team.path
    team.name, team.kind, team.parent = name.strip(), kind, parent
    team.path = _team_path(team)
    team.save(update_fields=["name", "kind", "parent", "path"])
    if team.path != old_path:
        for child in Team.objects.filter(path__startswith=old_path).exclude(pk=team.pk):
            child.path = team.path + child.path[len(old_path) :]
            child.save(update_fields=["path"])
    changes = diff(before, snapshot(team, ["name", "kind", "parent"]))
    if changes:
        audit_record(
            actor=actor, instance=team, object_type="team", action="update", changes=changes
        )
    return team


def _clean_permissions(permissions: dict[str, Any]) -> dict[str, dict[str, str]]:
    clean: dict[str, dict[str, str]] = {}
    errors: dict[str, list[str]] = {}
    for obj, actions in permissions.items():
        if obj not in OBJECT_TYPES or not isinstance(actions, dict):
            errors["permissions"] = [_("Unknown object type: %(obj)s.") % {"obj": obj}]
            continue
        for action, scope in actions.items():
            if action not in ACTIONS or scope not in SCOPES:
                errors["permissions"] = [
                    _("Invalid permission %(obj)s.%(action)s = %(scope)s.")
                    % {"obj": obj, "action": action, "scope": scope}
                ]
                continue
            clean.setdefault(obj, {})[action] = scope
    if errors:
        raise FieldErrors(errors)
    return clean


@transaction.atomic
def role_save(
    *,
    actor: User | None,
    role: Role | None = None,
    name: str,
    description: str = "",
    permissions: dict[str, Any],
    is_admin: bool = False,
) -> Role:
    _require_admin(actor)
    if not name.strip():
        raise FieldErrors.single("name", _("This field is required."))
    clash = Role.objects.filter(name__iexact=name.strip())
    if role is not None:
        clash = clash.exclude(pk=role.pk)
    if clash.exists():
        raise FieldErrors.single("name", _("A role with this name already exists."))
    clean = _clean_permissions(permissions)
    fields = ["name", "description", "permissions", "is_admin"]
    if role is None:
        role = Role.objects.create(
            name=name.strip(), description=description, permissions=clean, is_admin=is_admin
        )
        audit_record(
            actor=actor,
            instance=role,
            object_type="role",
            action="create",
            changes={k: [None, v] for k, v in snapshot(role, fields).items()},
        )
        return role
    before = snapshot(role, fields)
    role.name, role.description, role.permissions, role.is_admin = (
        name.strip(),
        description,
        clean,
        is_admin,
    )
    role.save(update_fields=fields)
    changes = diff(before, snapshot(role, fields))
    if changes:
        audit_record(
            actor=actor, instance=role, object_type="role", action="update", changes=changes
        )
    return role


TOKEN_PREFIX = "rpt_"  # noqa: S105 - a visible prefix, not a secret


@transaction.atomic
def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token; the raw value is returned once and never stored."""
    if not name.strip():
        raise FieldErrors.single("name", _("This field is required."))
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name.strip(), prefix=raw[:12], digest=ApiToken.hash(raw)
    )
    audit_record(
        actor=user,
        instance=token,
        object_type="api_token",
        action="create",
        changes={"name": [None, token.name]},
    )
    return token, raw


@transaction.atomic
def api_token_revoke(*, user: User, token: ApiToken) -> None:
    if token.user_id != user.pk and not user.is_rapport_admin:
        raise PermissionDenied(_("You cannot revoke this token."))
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=user,
            instance=token,
            object_type="api_token",
            action="update",
            changes={"revoked_at": [None, token.revoked_at.isoformat()]},
        )


def api_token_authenticate(raw: str) -> User | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user", "user__role", "user__team")
        .filter(digest=ApiToken.hash(raw), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def login_attempts_prune(*, now: Any = None) -> int:
    """Forget failed logins older than ``LOGIN_ATTEMPTS_KEEP_DAYS`` (the lockout needs only
    the last ``LOGIN_LOCKOUT_MINUTES``); the security log keeps its own lines."""
    days = int(getattr(settings, "LOGIN_ATTEMPTS_KEEP_DAYS", 30))
    keep = max(dt.timedelta(days=days), dt.timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES))
    cutoff = (now or timezone.now()) - keep
    return int(LoginAttempt.objects.filter(at__lt=cutoff).delete()[0])
