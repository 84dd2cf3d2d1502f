"""Delivery of outgoing messages: claim, send, mark (R13/R15 in reliability.md).

1. ``messages_claim`` turns due rows into ``sending`` with a lease, by a conditional UPDATE,
   and COMMITs: a row is claimed by one worker only (SQLite and PostgreSQL alike).
2. Each message is sent with a Message-ID / Idempotency-Key derived from its key.
3. It is marked ``sent`` by a conditional UPDATE (still ours, still ``sending``).

A worker killed between 1 and 3 leaves ``sending`` with a lease that expires; the next sweep
claims it again and re-sends it with the same Message-ID / Idempotency-Key. Only the sends in
flight at the kill can be repeated, because each message is marked as soon as it is sent.
A failure counts an attempt: transient ones (SMTP 4xx, dropped or refused connections, gateway
5xx) wait an exponential backoff, permanent ones (SMTP 5xx, gateway 4xx, refused address) and
the last attempt fail the message, which the admin list shows with its error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import time
import uuid
from datetime import timedelta
from types import TracebackType
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.core.events import event_record, worker_id
from rapport.messaging.failures import PermanentError, TransientError
from rapport.messaging.models import ChannelSettings, Kind, OutgoingMessage, SmtpSecurity, Status
from rapport.messaging.selectors import channel_settings_get
from rapport.messaging.sms import PROVIDERS
from rapport.messaging.urlguard import (
    HttpFailure,
    UrlRefused,
    UrlUnresolvable,
    allowlist_parse,
    safe_post,
)

log = logging.getLogger("rapport.messaging")

BATCH = 50


def lease_seconds() -> int:
    return int(getattr(settings, "MESSAGING_LEASE_SECONDS", 300))


def _due() -> Q:
    now = timezone.now()
    return Q(status=Status.PENDING, next_attempt_at__lte=now) | Q(
        status=Status.SENDING, lease_until__lt=now
    )


def messages_claim(
    *, limit: int = BATCH, only_ids: list[int] | None = None
) -> list[OutgoingMessage]:
    """Lease up to ``limit`` due messages to this worker (``sending``) and commit.

    Due: waiting messages whose time has come, and ``sending`` ones whose lease expired
    (their worker died mid-send: the reaper)."""
    token = f"{worker_id()}:{uuid.uuid4().hex[:12]}"
    lease = timezone.now() + timedelta(seconds=lease_seconds())
    due = _due()
    with transaction.atomic():
        qs = OutgoingMessage.objects.filter(due)
        if only_ids is not None:
            qs = qs.filter(id__in=only_ids)
        qs = qs.order_by("id")
        if transaction.get_connection().features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # The status guard in the UPDATE makes the claim safe without row locks too.
        OutgoingMessage.objects.filter(Q(id__in=ids) & due).update(
            status=Status.SENDING, lease_until=lease, claimed_by=token, attempts=F("attempts") + 1
        )
    return list(
        OutgoingMessage.objects.filter(claimed_by=token, status=Status.SENDING).order_by("id")
    )


def _mine(message: OutgoingMessage) -> Any:
    return OutgoingMessage.objects.filter(
        pk=message.pk, status=Status.SENDING, claimed_by=message.claimed_by
    )


def _mark_sent(message: OutgoingMessage, response: str) -> None:
    done = _mine(message).update(
        status=Status.SENT,
        sent_at=timezone.now(),
        lease_until=None,
        provider_response=response[:500],
    )
    if not done:  # our lease ran out and another worker took it over: it will decide
        log.warning("message %s was sent but had been reclaimed meanwhile", message.pk)


def _mark_failed(message: OutgoingMessage, error: str) -> None:
    with transaction.atomic():
        done = _mine(message).update(
            status=Status.FAILED, lease_until=None, next_attempt_at=None, last_error=error[:4000]
        )
        if done:
            event_record(
                name="message.failed",
                object_type="message",
                object_id=message.pk,
                payload={
                    "kind": message.kind,
                    "key": message.key,
                    "source": message.source,
                    "error": error[:500],
                },
            )
    log.warning("message %s (%s) failed: %s", message.pk, message.key, error[:300])


def backoff(cfg: ChannelSettings, attempts: int) -> timedelta:
    """Wait before the next try: base × 2^(attempts − 1), capped."""
    seconds = cfg.retry_base_seconds * 2 ** max(0, min(attempts - 1, 30))
    return timedelta(seconds=min(seconds, cfg.retry_max_seconds))


def _mark_retry(message: OutgoingMessage, error: str, cfg: ChannelSettings) -> None:
    if message.attempts >= cfg.max_attempts:
        _mark_failed(
            message,
            _("Gave up after %(n)s attempts. Last error: %(error)s")
            % {"n": message.attempts, "error": error},
        )
        return
    _mine(message).update(
        status=Status.PENDING,
        lease_until=None,
        next_attempt_at=timezone.now() + backoff(cfg, message.attempts),
        last_error=error[:4000],
    )


def _release(messages: list[OutgoingMessage]) -> None:
    """Give back claimed messages not tried (time ran out): not an attempt."""
    for message in messages:
        _mine(message).update(
            status=Status.PENDING,
            lease_until=None,
            next_attempt_at=timezone.now(),
            attempts=F("attempts") - 1,
        )


# --- email ------------------------------------------------------------------------------------


def _smtp_error(exc: BaseException) -> Exception:
    """Transient or permanent, by the SMTP reply code (4xx: later; 5xx: never)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentError(text)
        return TransientError(text)
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPConnectError):
        return TransientError(text)  # the server or our settings, not this message
    if isinstance(exc, smtplib.SMTPResponseException):
        if 500 <= exc.smtp_code < 600:
            return PermanentError(text)
        return TransientError(text)
    if isinstance(exc, OSError | smtplib.SMTPException):
        return TransientError(text)  # refused, dropped, timed out, TLS trouble
    return PermanentError(text)  # a message Django cannot build (bad header ...)


class EmailSession:
    """One SMTP connection reused for a batch of emails; reopened after an error."""

    def __init__(self, cfg: ChannelSettings) -> None:
        self.cfg = cfg
        self.backend: EmailBackend | None = None
        self.down: str = ""  # the server could not be reached: skip it for this batch

    def __enter__(self) -> EmailSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self.backend is not None:
            with contextlib.suppress(Exception):  # a broken connection is dropped either way
                self.backend.close()
            self.backend = None

    def _open(self) -> EmailBackend:
        if self.backend is None:
            cfg = self.cfg
            backend = get_connection(
                "django.core.mail.backends.smtp.EmailBackend",
                fail_silently=False,
                host=cfg.smtp_host,
                port=cfg.smtp_port,
                username=cfg.smtp_user or None,
                password=cfg.smtp_password or None,
                use_tls=cfg.smtp_security == SmtpSecurity.STARTTLS,
                use_ssl=cfg.smtp_security == SmtpSecurity.SSL,
                timeout=cfg.smtp_timeout,
            )
            assert isinstance(backend, EmailBackend)  # noqa: S101
            backend.open()
            self.backend = backend
        return self.backend

    def build(self, message: OutgoingMessage) -> EmailMultiAlternatives:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body,
            from_email=self.cfg.from_email or settings.DEFAULT_FROM_EMAIL,
            to=list(message.recipients),
            headers={
                "Message-ID": message.message_id,
                "Auto-Submitted": "auto-generated",
                "X-Rapport-Key": message.key,
            },
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        return email

    def send(self, message: OutgoingMessage) -> str:
        if not self.cfg.smtp_host:
            log.info(
                "email (no SMTP server set) to %s, Message-ID %s: %s\n%s",
                ", ".join(message.recipients),
                message.message_id,
                message.subject,
                message.body,
            )
            return "logged: no SMTP server is set"
        if self.down:
            raise TransientError(self.down)
        try:
            email = self.build(message)
            email.message()  # header checks (BadHeaderError) before talking to the server
        except Exception as exc:
            raise PermanentError(f"{type(exc).__name__}: {exc}") from exc
        try:
            backend = self._open()
        except Exception as exc:
            error = _smtp_error(exc)
            self.down = str(error)
            self._close()
            raise error from exc
        try:
            sent = backend.send_messages([email])
        except Exception as exc:
            self._close()
            raise _smtp_error(exc) from exc
        if not sent:
            self._close()
            raise TransientError("the SMTP connection was not open")
        return f"250 accepted by {self.cfg.smtp_host}"


# --- SMS and webhooks -------------------------------------------------------------------------


def _send_sms(message: OutgoingMessage, cfg: ChannelSettings) -> str:
    provider = PROVIDERS.get(cfg.sms_provider)
    if provider is None:
        raise TransientError(
            _("The SMS provider “%(name)s” is not known.") % {"name": cfg.sms_provider}
        )
    return provider[1](message, cfg)


def _send_webhook(message: OutgoingMessage, cfg: ChannelSettings) -> str:
    body = json.dumps(message.payload, ensure_ascii=False, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": message.key,
        "X-Rapport-Source": message.source[:200],
    }
    try:
        response = safe_post(
            message.url, body=body, headers=headers, allowlist=allowlist_parse(cfg.url_allowlist)
        )
    except UrlRefused as exc:
        raise PermanentError(str(exc)) from exc
    except (UrlUnresolvable, HttpFailure) as exc:
        raise TransientError(str(exc)) from exc
    text = response.body[:200].decode("utf-8", "replace")
    detail = f"HTTP {response.status} {text}".strip()
    if response.ok:
        return detail
    if response.status in (408, 425, 429) or response.status >= 500:
        raise TransientError(detail)
    raise PermanentError(detail)


# --- the loop ---------------------------------------------------------------------------------


def _deliver_batch(batch: list[OutgoingMessage], cfg: ChannelSettings, deadline: float) -> None:
    with EmailSession(cfg) as session:
        for index, message in enumerate(batch):
            if time.monotonic() > deadline:
                _release(batch[index:])  # the lease would run out mid-batch
                return
            try:
                if message.kind == Kind.EMAIL:
                    response = session.send(message)
                elif message.kind == Kind.SMS:
                    response = _send_sms(message, cfg)
                else:
                    response = _send_webhook(message, cfg)
            except TransientError as exc:
                _mark_retry(message, str(exc), cfg)
            except PermanentError as exc:
                _mark_failed(message, str(exc))
            except Exception as exc:  # a bug must not stop the batch: retried, then failed
                log.exception("sending message %s failed unexpectedly", message.pk)
                _mark_retry(message, f"{type(exc).__name__}: {exc}", cfg)
            else:
                _mark_sent(message, response)


def messages_deliver(
    *, limit: int = 1000, time_budget: float = 120.0, only_ids: list[int] | None = None
) -> int:
    """Claim and send due messages, batch by batch, until none is due, ``limit`` messages
    were handled or ``time_budget`` seconds passed. Returns how many were handled."""
    started = time.monotonic()
    handled = 0
    while handled < limit and time.monotonic() - started < time_budget:
        cfg = channel_settings_get()
        batch = messages_claim(limit=min(BATCH, limit - handled), only_ids=only_ids)
        if not batch:
            break
        # Stop before the lease ends, keeping room for one slow send.
        deadline = time.monotonic() + lease_seconds() - 2 * cfg.smtp_timeout - 15
        _deliver_batch(batch, cfg, deadline)
        handled += len(batch)
    return handled
