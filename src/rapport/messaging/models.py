"""Outgoing messages (email, SMS, webhook), the channels' settings, and message templates.

An ``OutgoingMessage`` row is the truth of one send: the caller enqueues it in its own
transaction under an idempotency ``key``; the worker claims it (``sending`` with a lease),
sends it with a Message-ID / Idempotency-Key derived from the key, then marks it ``sent``.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel


class Kind(models.TextChoices):
    EMAIL = "email", _("email")
    SMS = "sms", _("SMS")
    WEBHOOK = "webhook", _("webhook")


class Status(models.TextChoices):
    PENDING = "pending", _("waiting")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


class OutgoingMessage(TimestampedModel):
    """One email, SMS or webhook call to deliver at least once, keyed by its caller."""

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    key = models.CharField(_("idempotency key"), max_length=200, unique=True)
    recipients = models.JSONField(_("recipients"), default=list, blank=True)
    subject = models.CharField(_("subject"), max_length=500, blank=True)
    body = models.TextField(_("text"), blank=True)
    html = models.TextField(_("HTML"), blank=True)
    url = models.URLField(_("webhook address"), max_length=2000, blank=True)
    payload = models.JSONField(_("webhook payload"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=200, blank=True)
    object_type = models.CharField(_("object type"), max_length=40, blank=True)
    object_id = models.BigIntegerField(_("object id"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    claimed_by = models.CharField(max_length=100, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    provider_response = models.CharField(_("provider response"), max_length=500, blank=True)
    message_id = models.CharField(_("Message-ID"), max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The sweep: pending rows whose time has come, sending rows whose lease expired.
            models.Index(fields=["status", "next_attempt_at"], name="msg_due_idx"),
            models.Index(fields=["status", "lease_until"], name="msg_lease_idx"),
            # The admin list: by status and kind, newest first.
            models.Index(fields=["kind", "status", "-id"], name="msg_kind_status_idx"),
            models.Index(fields=["object_type", "object_id"], name="msg_object_idx"),
        ]
        verbose_name = _("outgoing message")
        verbose_name_plural = _("outgoing messages")

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.status})"

    @property
    def target(self) -> str:
        """Who or what it goes to, for lists."""
        if self.kind == Kind.WEBHOOK:
            return self.url
        return ", ".join(self.recipients or [])


class SmtpSecurity(models.TextChoices):
    NONE = "none", _("none")
    STARTTLS = "starttls", _("STARTTLS")
    SSL = "ssl", _("SSL/TLS")


class SmsMethod(models.TextChoices):
    POST = "POST", "POST"
    PUT = "PUT", "PUT"
    GET = "GET", "GET"


DEFAULT_SMS_BODY = '{"to": {{ to|tojson }}, "text": {{ text|tojson }}, "id": {{ key|tojson }}}'


class ChannelSettings(models.Model):
    """The one row of channel settings an administrator edits (pk = 1).

    Passwords and tokens are stored as typed (see docs/decisions/0003-calendar-sync.md for why)
    and are never rendered back into a page.
    """

    smtp_host = models.CharField(_("SMTP server"), max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField(_("SMTP port"), default=25)
    smtp_user = models.CharField(_("SMTP user"), max_length=255, blank=True)
    smtp_password = models.CharField(_("SMTP password"), max_length=500, blank=True)
    smtp_security = models.CharField(
        _("SMTP encryption"), max_length=10, choices=SmtpSecurity.choices, default=SmtpSecurity.NONE
    )
    smtp_timeout = models.PositiveSmallIntegerField(_("SMTP timeout (seconds)"), default=10)
    from_email = models.CharField(_("From address"), max_length=255, blank=True)

    sms_provider = models.CharField(_("SMS provider"), max_length=20, default="log")
    sms_url = models.URLField(_("SMS gateway address"), max_length=2000, blank=True)
    sms_method = models.CharField(
        _("SMS gateway method"), max_length=6, choices=SmsMethod.choices, default=SmsMethod.POST
    )
    sms_auth_header = models.CharField(_("SMS auth header name"), max_length=100, blank=True)
    sms_auth_value = models.CharField(_("SMS auth header value"), max_length=500, blank=True)
    sms_content_type = models.CharField(
        _("SMS request content type"), max_length=100, default="application/json"
    )
    sms_body = models.TextField(_("SMS request body template"), default=DEFAULT_SMS_BODY)
    sms_sender = models.CharField(_("SMS sender name"), max_length=20, blank=True)

    url_allowlist = models.TextField(_("allowed internal addresses"), blank=True)

    max_attempts = models.PositiveSmallIntegerField(_("attempts before failing"), default=8)
    retry_base_seconds = models.PositiveIntegerField(_("first retry after (seconds)"), default=30)
    retry_max_seconds = models.PositiveIntegerField(_("longest wait (seconds)"), default=3600)

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("channel settings")
        verbose_name_plural = _("channel settings")

    def __str__(self) -> str:
        return "channel settings"


class TemplateChannel(models.TextChoices):
    EMAIL = "email", _("email")
    SMS = "sms", _("SMS")


class MessageTemplate(TimestampedModel):
    """An email or SMS an automation sends, written in (sandboxed) Jinja2."""

    name = models.CharField(_("name"), max_length=200)
    channel = models.CharField(
        _("channel"), max_length=10, choices=TemplateChannel.choices, default=TemplateChannel.EMAIL
    )
    subject = models.CharField(_("subject"), max_length=500, blank=True)
    body = models.TextField(_("text"))
    language = models.CharField(_("language"), max_length=10, blank=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")

    def __str__(self) -> str:
        return self.name
