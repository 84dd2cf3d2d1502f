"""Reads of outgoing messages, channel settings and message templates (administrators only)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from rapport.core.errors import PermissionDenied
from rapport.messaging.models import (
    ChannelSettings,
    Kind,
    MessageTemplate,
    OutgoingMessage,
    SmtpSecurity,
    Status,
)

SETTINGS_PK = 1


def require_admin(user: Any) -> None:
    """Outgoing messages carry clients' addresses and texts: administrators only."""
    if not getattr(user, "is_rapport_admin", False):
        raise PermissionDenied(_("Only an administrator can do this."))


def channel_settings_get() -> ChannelSettings:
    """The saved channel settings, or (before an admin saves them) the defaults taken from the
    ``EMAIL_*`` environment settings, unsaved."""
    row = ChannelSettings.objects.filter(pk=SETTINGS_PK).first()
    if row is not None:
        return row
    security = SmtpSecurity.NONE
    if settings.EMAIL_USE_SSL:
        security = SmtpSecurity.SSL
    elif settings.EMAIL_USE_TLS:
        security = SmtpSecurity.STARTTLS
    return ChannelSettings(
        pk=SETTINGS_PK,
        smtp_host=settings.EMAIL_HOST or "",
        smtp_port=settings.EMAIL_PORT or 25,
        smtp_user=settings.EMAIL_HOST_USER or "",
        smtp_password=settings.EMAIL_HOST_PASSWORD or "",
        smtp_security=security,
        smtp_timeout=min(int(settings.EMAIL_TIMEOUT or 10), 60),
        from_email=settings.DEFAULT_FROM_EMAIL or "",
    )


def message_list(
    *, user: Any, status: str = "", kind: str = "", source: str = "", q: str = ""
) -> QuerySet[OutgoingMessage]:
    """Outgoing messages, newest first, filtered by status, kind, source prefix, key part."""
    require_admin(user)
    qs = OutgoingMessage.objects.all()
    if status in Status.values:
        qs = qs.filter(status=status)
    if kind in Kind.values:
        qs = qs.filter(kind=kind)
    if source:
        qs = qs.filter(source__startswith=source[:200])
    if q:
        qs = qs.filter(key__contains=q[:200])
    return qs.order_by("-id")


def message_get(*, user: Any, message_id: int) -> OutgoingMessage:
    require_admin(user)
    message = OutgoingMessage.objects.filter(pk=message_id).first()
    if message is None:
        raise Http404
    return message


def message_counts() -> dict[str, int]:
    """How many messages are in each status (the list's tabs)."""
    from django.db.models import Count

    rows = OutgoingMessage.objects.values("status").annotate(n=Count("id")).order_by()
    return {row["status"]: row["n"] for row in rows}


def template_list(*, user: Any | None = None, channel: str = "") -> QuerySet[MessageTemplate]:
    """Message templates by name. ``user=None`` is the automation engine (no user)."""
    if user is not None:
        require_admin(user)
    qs = MessageTemplate.objects.all()
    if channel:
        qs = qs.filter(channel=channel)
    return qs.order_by("name", "id")


def template_get(*, template_id: int, user: Any | None = None) -> MessageTemplate:
    """One template (404 if it was deleted). ``user=None`` is the automation engine."""
    if user is not None:
        require_admin(user)
    template = MessageTemplate.objects.filter(pk=template_id).first()
    if template is None:
        raise Http404
    return template
