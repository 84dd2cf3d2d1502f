"""Users, teams (a tree), roles with per-object scopes, API tokens, login attempts."""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel


class Team(TimestampedModel):
    """A node of the organisation tree: organisation -> office -> department."""

    class Kind(models.TextChoices):
        ORGANISATION = "organisation", _("organisation")
        OFFICE = "office", _("office")
        DEPARTMENT = "department", _("department")

    name = models.CharField(_("name"), max_length=150)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.DEPARTMENT)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        verbose_name=_("parent team"),
    )
    # Materialised path "/1/4/9/": a subtree is one indexed prefix query.
    path = models.CharField(max_length=255, db_index=True, editable=False, default="/")

    class Meta:
        ordering = ["path", "id"]
        verbose_name = _("team")
        verbose_name_plural = _("teams")

    def __str__(self) -> str:
        return self.name

    @property
    def depth(self) -> int:
        return max(0, self.path.count("/") - 2)


class Role(TimestampedModel):
    """What its users may do: per object type, per action, a scope."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    # {"company": {"view": "team", "edit": "own", ...}, ...}
    permissions = models.JSONField(_("permissions"), default=dict, blank=True)
    is_admin = models.BooleanField(
        _("administrator"),
        default=False,
        help_text=_("Manages users, teams, roles, custom fields and the recycle bin."),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("role")
        verbose_name_plural = _("roles")

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    """A person who logs in to Rapport."""

    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
        verbose_name=_("team"),
    )
    role = models.ForeignKey(
        Role,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
        verbose_name=_("role"),
    )
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True)
    language = models.CharField(_("language"), max_length=10, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    email_notify_kinds = models.JSONField(
        _("notifications also sent by email"), default=list, blank=True
    )

    class Meta:
        ordering = ["username"]
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def grants(self) -> dict[str, dict[str, str]]:
        return dict(self.role.permissions) if self.role_id and self.role else {}

    @property
    def is_rapport_admin(self) -> bool:
        return bool(self.is_superuser or (self.role_id and self.role and self.role.is_admin))

    def team_subtree_ids(self) -> list[int]:
        cached: list[int] | None = getattr(self, "_team_subtree_cache", None)
        if cached is not None:
            return cached
        ids: list[int] = []
        if self.team_id and self.team:
            ids = list(
                Team.objects.filter(path__startswith=self.team.path).values_list("id", flat=True)
            )
        self._team_subtree_cache = ids
        return ids


class ApiToken(TimestampedModel):
    """A personal API token. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()


class LoginAttempt(models.Model):
    """A failed login, kept to lock an account after too many (R5)."""

    username = models.CharField(max_length=150, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.username} at {self.at}"


def default_permissions(scope_view: str, scope_write: str) -> dict[str, Any]:
    """A permission grid giving ``scope_view`` to view/export and ``scope_write`` to the rest."""
    grid: dict[str, Any] = {}
    for obj in ("company", "person", "lead", "deal", "interaction", "task"):
        grid[obj] = {
            "view": scope_view,
            "export": scope_view,
            "create": scope_write,
            "edit": scope_write,
            "delete": scope_write,
            "assign": scope_write,
        }
    grid["team"] = {"view": "all"}
    grid["user"] = {"view": "all"}
    return grid
