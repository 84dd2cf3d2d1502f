"""Texts of actions ("Call {{ record.name }}") and message templates, rendered by the
messaging app's sandboxed Jinja2 — one renderer for rules, templates and previews."""

from __future__ import annotations

from typing import Any

from rapport.core.errors import FieldErrors


def template_check(text: str, field: str, errors: dict[str, list[str]]) -> None:
    from rapport.messaging.templating import template_check as check

    try:
        check(text, field)
    except FieldErrors as exc:
        errors.update(exc.errors)


def render_text(text: str, context: dict[str, Any]) -> str:
    from rapport.messaging.templating import render

    return render(text, context) if "{" in text else text


def template_exists(template_id: Any, channel: str) -> bool:
    from rapport.messaging.models import MessageTemplate

    try:
        return MessageTemplate.objects.filter(pk=int(template_id), channel=channel).exists()
    except (TypeError, ValueError):
        return False


def template_texts(template_id: Any, context: dict[str, Any]) -> tuple[str, str]:
    from django.utils.translation import gettext as _

    from rapport.automations.actions import RuleBroken
    from rapport.messaging.models import MessageTemplate
    from rapport.messaging.services import template_render

    template = MessageTemplate.objects.filter(pk=template_id).first()
    if template is None:
        raise RuleBroken(_("The message template no longer exists."))
    subject, body = template_render(template, context)
    return subject, body


def webhook_url_check(url: str) -> str:
    """A problem with the webhook address as typed ("" when fine); the address is
    checked again, resolved, right before each call."""
    from urllib.parse import urlsplit

    from django.utils.translation import gettext as _

    try:
        parts = urlsplit(url)
    except ValueError:
        return _("Enter a web address starting with http:// or https://.")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _("Enter a web address starting with http:// or https://.")
    return ""
