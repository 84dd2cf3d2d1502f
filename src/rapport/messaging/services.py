"""Writes of outgoing messages, channel settings and message templates.

``message_enqueue`` is what the automation engine (and anything else) calls, inside its own
transaction: idempotent on ``key``, validated (header injection refused), and delivered after
commit by the worker (``rapport.messaging.delivery``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.emails import normalize_email, split_email_field
from rapport.core.errors import FieldErrors
from rapport.core.events import after_dispatch, in_dispatch
from rapport.core.nudge import nudge_enabled, queue_task
from rapport.core.phones import parse_phone
from rapport.messaging.models import (
    ChannelSettings,
    Kind,
    MessageTemplate,
    OutgoingMessage,
    SmsMethod,
    SmtpSecurity,
    Status,
    TemplateChannel,
)
from rapport.messaging.selectors import SETTINGS_PK, channel_settings_get, require_admin
from rapport.messaging.sms import PROVIDERS
from rapport.messaging.templating import render, template_check
from rapport.messaging.urlguard import allowlist_parse

log = logging.getLogger("rapport.messaging")

MAX_RECIPIENTS = 50
_NEWLINE = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]")


def _has_newline(text: str) -> bool:
    return bool(_NEWLINE.search(text or ""))


def message_id_for(key: str) -> str:
    """The email Message-ID of a key: the same on every retry, unique per key."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    sender = str(getattr(settings, "DEFAULT_FROM_EMAIL", "") or "")
    domain = sender.rsplit("@", 1)[-1].strip(" >").lower() if "@" in sender else ""
    if not re.fullmatch(r"[a-z0-9.-]+\.[a-z]{2,}", domain):
        domain = "rapport"
    return f"<{digest}@{domain}>"


def _raw_recipients(to: Iterable[str] | str, kind: str) -> list[str]:
    if isinstance(to, str):
        if _has_newline(to):
            raise FieldErrors.single(
                "to", _("Recipients must not contain line breaks (header injection).")
            )
        if kind == Kind.EMAIL:
            return split_email_field(to)
        return [p for p in re.split(r"[,;]+", to) if p.strip()]
    return [str(item) for item in to]


def _recipients(kind: str, to: Iterable[str] | str) -> list[str]:
    raw = _raw_recipients(to, kind)
    if kind == Kind.WEBHOOK:
        return []
    if not raw:
        raise FieldErrors.single("to", _("Give at least one recipient."))
    if len(raw) > MAX_RECIPIENTS:
        raise FieldErrors.single(
            "to", _("At most %(n)s recipients per message.") % {"n": MAX_RECIPIENTS}
        )
    out: list[str] = []
    for item in raw:
        if _has_newline(item):
            raise FieldErrors.single(
                "to", _("Recipients must not contain line breaks (header injection).")
            )
        if kind == Kind.EMAIL:
            parsed = normalize_email(item)
            if not parsed.valid:
                raise FieldErrors.single(
                    "to", _("“%(value)s” is not a valid email address.") % {"value": item[:100]}
                )
            value = parsed.normalized
        else:
            phone = parse_phone(item, default_region=settings.DEFAULT_PHONE_REGION)
            if not phone.valid or not phone.e164:
                raise FieldErrors.single(
                    "to", _("“%(value)s” is not a valid phone number.") % {"value": item[:100]}
                )
            value = phone.e164
        if value not in out:
            out.append(value)
    return out


def _check_url(url: str, field: str) -> str:
    url = (url or "").strip()
    if not url:
        raise FieldErrors.single(field, _("Give the address to call."))
    if _has_newline(url) or len(url) > 2000:
        raise FieldErrors.single(field, _("The address is too long or contains line breaks."))
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FieldErrors.single(field, _("Enter an address starting with http:// or https://."))
    return url


def messages_nudge() -> None:
    if not nudge_enabled():
        return
    queue_task("rapport.messaging.jobs.deliver_due", group="messaging")


def _nudge_after_commit() -> None:
    if in_dispatch():  # queued by a rule in the worker: one nudge when the dispatch ends
        transaction.on_commit(lambda: after_dispatch(messages_nudge))
        return
    conn = transaction.get_connection()
    if not any(entry[1] is messages_nudge for entry in conn.run_on_commit):
        transaction.on_commit(messages_nudge)  # once per transaction


def message_enqueue(
    *,
    kind: str,
    key: str,
    to: Iterable[str] | str = (),
    subject: str = "",
    body: str = "",
    html: str = "",
    url: str = "",
    payload: Any = None,
    source: str = "",
    object_type: str = "",
    object_id: int | None = None,
) -> OutgoingMessage:
    """Queue one email, SMS or webhook call for delivery after the caller's commit.

    Idempotent on ``key`` (e.g. "rule:12:event:9876:action:2"): a second call with the same
    key returns the first message and queues nothing. Raises FieldErrors naming the field for
    bad recipients, a subject or recipient with a line break (header injection), a bad address.
    """
    key = (key or "").strip()
    if not key or len(key) > 200 or _has_newline(key):
        raise FieldErrors.single("key", _("Give a key of 1 to 200 characters, on one line."))
    existing = OutgoingMessage.objects.filter(key=key).first()
    if existing is not None:
        return existing
    if kind not in Kind.values:
        raise FieldErrors.single("kind", _("Choose email, SMS or webhook."))
    recipients = _recipients(kind, to)
    if _has_newline(subject):
        raise FieldErrors.single(
            "subject", _("The subject must not contain line breaks (header injection).")
        )
    if len(subject) > 500:
        raise FieldErrors.single("subject", _("The subject is longer than 500 characters."))
    if len(source) > 200 or len(object_type) > 40:
        raise FieldErrors.single("source", _("The source is longer than 200 characters."))
    if kind == Kind.SMS and not body.strip():
        raise FieldErrors.single("body", _("An SMS needs a text."))
    if kind == Kind.EMAIL and not (body.strip() or html.strip() or subject.strip()):
        raise FieldErrors.single("body", _("An email needs a subject or a text."))
    if kind == Kind.WEBHOOK:
        url = _check_url(url, "url")
        payload = {} if payload is None else payload
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise FieldErrors.single("payload", _("The payload must be JSON data.")) from exc
    else:
        url, payload = "", None
    now = timezone.now()
    try:
        with transaction.atomic():
            message = OutgoingMessage.objects.create(
                kind=kind,
                key=key,
                recipients=recipients,
                subject=subject,
                body=body,
                html=html if kind == Kind.EMAIL else "",
                url=url,
                payload=payload,
                source=source,
                object_type=object_type,
                object_id=object_id,
                status=Status.PENDING,
                next_attempt_at=now,
                message_id=message_id_for(key) if kind == Kind.EMAIL else "",
            )
            audit_record(
                actor=None,
                instance=message,
                object_type="message",
                action="create",
                changes={"kind": kind, "key": key, "source": source},
            )
    except IntegrityError:
        # The same key was queued concurrently: that one stands.
        return OutgoingMessage.objects.get(key=key)
    _nudge_after_commit()
    return message


def message_retry(*, actor: Any, message: OutgoingMessage) -> OutgoingMessage:
    """Send a failed (or waiting) message again now, with a fresh count of attempts."""
    require_admin(actor)
    with transaction.atomic():
        changed = OutgoingMessage.objects.filter(
            pk=message.pk, status__in=[Status.FAILED, Status.PENDING]
        ).update(
            status=Status.PENDING, attempts=0, next_attempt_at=timezone.now(), lease_until=None
        )
        if not changed:
            raise FieldErrors.single(
                "status", _("Only a failed or waiting message can be sent again.")
            )
        message.refresh_from_db()
        audit_record(
            actor=actor,
            instance=message,
            object_type="message",
            action="update",
            changes={"status": ["failed", "pending"]},
        )
        _nudge_after_commit()
    return message


def message_cancel(*, actor: Any, message: OutgoingMessage) -> OutgoingMessage:
    """Stop a waiting or failed message from being sent."""
    require_admin(actor)
    with transaction.atomic():
        before = message.status
        changed = OutgoingMessage.objects.filter(
            pk=message.pk, status__in=[Status.FAILED, Status.PENDING]
        ).update(status=Status.CANCELLED, lease_until=None)
        if not changed:
            raise FieldErrors.single(
                "status", _("Only a failed or waiting message can be cancelled.")
            )
        message.refresh_from_db()
        audit_record(
            actor=actor,
            instance=message,
            object_type="message",
            action="update",
            changes={"status": [before, Status.CANCELLED.value]},
        )
    return message


# --- channel settings -------------------------------------------------------------------------

SETTINGS_FIELDS = (
    "smtp_host",
    "smtp_port",
    "smtp_user",
    "smtp_password",
    "smtp_security",
    "smtp_timeout",
    "from_email",
    "sms_provider",
    "sms_url",
    "sms_method",
    "sms_auth_header",
    "sms_auth_value",
    "sms_content_type",
    "sms_body",
    "sms_sender",
    "url_allowlist",
    "max_attempts",
    "retry_base_seconds",
    "retry_max_seconds",
)
SECRET_FIELDS = ("smtp_password", "sms_auth_value")
_NUMBERS = {
    "smtp_port": (1, 65535),
    "smtp_timeout": (1, 60),
    "max_attempts": (1, 50),
    "retry_base_seconds": (1, 86400),
    "retry_max_seconds": (1, 7 * 86400),
}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


def _from_ok(value: str) -> bool:
    """An RFC 5322 address, with or without a display name (``rapport@localhost`` too)."""
    _name, address = parseaddr(value)
    local, _at, domain = address.rpartition("@")
    return bool(local and domain) and not any(ch.isspace() for ch in address)


def _settings_errors(values: dict[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    for name, (low, high) in _NUMBERS.items():
        try:
            values[name] = int(values[name])
        except (TypeError, ValueError):
            add(name, _("Enter a whole number."))
            continue
        if not low <= values[name] <= high:
            add(name, _("Enter a number from %(low)s to %(high)s.") % {"low": low, "high": high})
    for name in (
        "smtp_host",
        "smtp_user",
        "smtp_password",
        "from_email",
        "sms_auth_value",
        "sms_content_type",
        "sms_sender",
        "sms_url",
    ):
        values[name] = str(values.get(name) or "")
        if _has_newline(values[name]):
            add(name, _("This must be on one line."))
    values["smtp_host"] = values["smtp_host"].strip()
    if values["smtp_security"] not in SmtpSecurity.values:
        add("smtp_security", _("Choose none, STARTTLS or SSL/TLS."))
    if values["from_email"].strip() and not _from_ok(values["from_email"]):
        add("from_email", _("Enter an address like crm@example.com or Rapport <crm@example.com>."))
    if values["sms_provider"] not in PROVIDERS:
        add("sms_provider", _("Choose an SMS provider."))
    if values["sms_method"] not in SmsMethod.values:
        add("sms_method", _("Choose POST, PUT or GET."))
    header = str(values.get("sms_auth_header") or "").strip()
    values["sms_auth_header"] = header
    if header and not _HEADER_NAME.match(header):
        add("sms_auth_header", _("A header name has letters, digits and dashes only."))
    url = values["sms_url"].strip()
    values["sms_url"] = url
    try:
        template_check(url, "sms_url")
        if url and "{" not in url:
            _check_url(url, "sms_url")
        elif values["sms_provider"] == "http" and not url:
            add("sms_url", _("Give the SMS gateway address."))
    except FieldErrors as exc:
        for name, messages in exc.errors.items():
            errors.setdefault(name, []).extend(messages)
    try:
        template_check(str(values.get("sms_body") or ""), "sms_body")
    except FieldErrors as exc:
        errors.setdefault("sms_body", []).extend(exc.errors["sms_body"])
    try:
        allowlist_parse(str(values.get("url_allowlist") or ""))
    except FieldErrors as exc:
        errors.setdefault("url_allowlist", []).extend(exc.errors["url_allowlist"])
    if not errors and values["retry_max_seconds"] < values["retry_base_seconds"]:
        add("retry_max_seconds", _("The longest wait cannot be shorter than the first one."))
    return errors


def channel_settings_update(*, actor: Any, data: Mapping[str, Any]) -> ChannelSettings:
    """Save the channel settings. Keys absent from ``data`` keep their value (a blank password
    field on the page is left out, so the stored password stays)."""
    require_admin(actor)
    unknown = set(data) - set(SETTINGS_FIELDS)
    if unknown:
        raise FieldErrors({name: [_("Unknown setting.")] for name in sorted(unknown)})
    with transaction.atomic():
        current = ChannelSettings.objects.select_for_update().filter(pk=SETTINGS_PK).first()
        row = current or channel_settings_get()
        before = snapshot(row, SETTINGS_FIELDS)
        values = {name: data.get(name, before[name]) for name in SETTINGS_FIELDS}
        errors = _settings_errors(values)
        if errors:
            raise FieldErrors(errors)
        for name in SETTINGS_FIELDS:
            setattr(row, name, values[name])
        if current is None:
            row.save(force_insert=True)
        else:
            row.save(update_fields=[*SETTINGS_FIELDS, "updated_at"])
        changes = diff(before, snapshot(row, SETTINGS_FIELDS))
        for name in SECRET_FIELDS:
            if name in changes:
                changes[name] = ["***", "***"]
        audit_record(
            actor=actor,
            instance=row,
            object_type="channel_settings",
            action="update",
            changes=changes,
        )
    return row


# --- message templates ------------------------------------------------------------------------

TEMPLATE_FIELDS = ("name", "channel", "subject", "body", "language")


def _template_values(data: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    values = {name: str(data.get(name, base.get(name, "")) or "") for name in TEMPLATE_FIELDS}
    values["name"] = values["name"].strip()
    values["language"] = values["language"].strip()
    errors: dict[str, list[str]] = {}
    if not values["name"]:
        errors["name"] = [_("Give the template a name.")]
    elif len(values["name"]) > 200:
        errors["name"] = [_("The name is longer than 200 characters.")]
    if values["channel"] not in TemplateChannel.values:
        errors["channel"] = [_("Choose email or SMS.")]
    if _has_newline(values["subject"]):
        errors["subject"] = [_("The subject must not contain line breaks (header injection).")]
    elif len(values["subject"]) > 500:
        errors["subject"] = [_("The subject is longer than 500 characters.")]
    if not values["body"].strip():
        errors["body"] = [_("Write the text of the message.")]
    if values["language"] and values["language"] not in dict(settings.LANGUAGES):
        errors["language"] = [_("Choose one of the interface languages, or none.")]
    for name in ("subject", "body"):
        if name in errors:
            continue
        try:
            template_check(values[name], name)
        except FieldErrors as exc:
            errors[name] = exc.errors[name]
    if values["channel"] == TemplateChannel.SMS:
        values["subject"] = ""
    if errors:
        raise FieldErrors(errors)
    return values


def template_create(*, actor: Any, data: Mapping[str, Any]) -> MessageTemplate:
    require_admin(actor)
    values = _template_values(data, {"channel": TemplateChannel.EMAIL})
    with transaction.atomic():
        template = MessageTemplate.objects.create(**values)
        audit_record(
            actor=actor,
            instance=template,
            object_type="message_template",
            action="create",
            changes=diff({}, snapshot(template, TEMPLATE_FIELDS)),
        )
    return template


def template_update(
    *, actor: Any, template: MessageTemplate, data: Mapping[str, Any]
) -> MessageTemplate:
    require_admin(actor)
    before = snapshot(template, TEMPLATE_FIELDS)
    values = _template_values(data, before)
    with transaction.atomic():
        for name, value in values.items():
            setattr(template, name, value)
        template.save(update_fields=[*TEMPLATE_FIELDS, "updated_at"])
        audit_record(
            actor=actor,
            instance=template,
            object_type="message_template",
            action="update",
            changes=diff(before, snapshot(template, TEMPLATE_FIELDS)),
        )
    return template


def template_delete(*, actor: Any, template: MessageTemplate) -> None:
    """Delete a template. Rules that used it find it gone and say so in their log."""
    require_admin(actor)
    with transaction.atomic():
        audit_record(
            actor=actor,
            instance=template,
            object_type="message_template",
            action="delete",
            changes=snapshot(template, TEMPLATE_FIELDS),
        )
        template.delete()


def template_render_text(*, subject: str, body: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Render a subject and a body; a rendered subject with a line break is refused."""
    rendered_subject = render(subject, context, field="subject").strip()
    if _has_newline(rendered_subject):
        raise FieldErrors.single(
            "subject", _("The subject must not contain line breaks (header injection).")
        )
    return rendered_subject, render(body, context, field="body")


def template_render(template: MessageTemplate, context: Mapping[str, Any]) -> tuple[str, str]:
    """The (subject, body) of ``template`` for ``context``, rendered in the sandbox."""
    return template_render_text(subject=template.subject, body=template.body, context=context)
