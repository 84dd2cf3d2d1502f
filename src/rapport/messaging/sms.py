"""SMS providers. A provider sends one text to one or more E.164 numbers, or raises.

``log`` writes the message to the log only (development). ``http`` calls an HTTP gateway:
address, method, an auth header, and a request body template with ``{{ to }}``, ``{{ text }}``,
``{{ key }}`` (and ``{{ sender }}``), rendered in the sandbox (the address too, for gateways
that take the text in the query: ``?to={{ to|urlencode }}``); the idempotency key also goes in
the ``Idempotency-Key`` header; any 2xx answer is success. Add a provider with ``sms_provider``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

from rapport.core.errors import FieldErrors
from rapport.messaging.failures import PermanentError, TransientError
from rapport.messaging.templating import render
from rapport.messaging.urlguard import (
    HttpFailure,
    UrlRefused,
    UrlUnresolvable,
    allowlist_parse,
    safe_request,
)

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    from rapport.messaging.models import ChannelSettings, OutgoingMessage

log = logging.getLogger("rapport.messaging")

# name -> (label, send(message, settings) -> provider response)
Sender = Callable[["OutgoingMessage", "ChannelSettings"], str]
PROVIDERS: dict[str, tuple[_StrPromise | str, Sender]] = {}


def sms_provider(name: str, label: _StrPromise | str) -> Callable[[Sender], Sender]:
    def register(func: Sender) -> Sender:
        PROVIDERS[name] = (label, func)
        return func

    return register


@sms_provider("log", _("Log only (development)"))
def send_log(message: OutgoingMessage, cfg: ChannelSettings) -> str:
    for number in message.recipients:
        log.info("SMS to %s (key %s): %s", number, message.key, message.body)
    return "logged"


def _status_error(status: int, text: str) -> Exception:
    detail = f"HTTP {status}: {text[:200]}"
    if status in (408, 425, 429) or status >= 500:
        return TransientError(detail)
    return PermanentError(detail)


@sms_provider("http", _("HTTP gateway"))
def send_http(message: OutgoingMessage, cfg: ChannelSettings) -> str:
    if not cfg.sms_url:
        raise TransientError(str(_("No SMS gateway address is set in the channel settings.")))
    headers = {
        "Content-Type": cfg.sms_content_type or "application/json",
        "Idempotency-Key": message.key,
    }
    if cfg.sms_auth_header and cfg.sms_auth_value:
        headers[cfg.sms_auth_header] = cfg.sms_auth_value
    responses: list[str] = []
    recipients = list(message.recipients)
    for index, number in enumerate(recipients):
        key = message.key if len(recipients) == 1 else f"{message.key}:{index}"
        headers["Idempotency-Key"] = key
        context = {"to": number, "text": message.body, "key": key, "sender": cfg.sms_sender}
        try:
            url = render(cfg.sms_url, context, field="sms_url").strip()
            body = render(cfg.sms_body, context, field="sms_body")
        except FieldErrors as exc:
            raise PermanentError(str(exc)) from exc
        try:
            response = safe_request(
                cfg.sms_method,
                url,
                body=None if cfg.sms_method == "GET" else body.encode(),
                headers=headers,
                allowlist=allowlist_parse(cfg.url_allowlist),
            )
        except UrlRefused as exc:
            raise PermanentError(str(exc)) from exc
        except (UrlUnresolvable, HttpFailure) as exc:
            raise TransientError(str(exc)) from exc
        text = response.body.decode("utf-8", "replace")
        if not response.ok:
            raise _status_error(response.status, text)
        responses.append(f"{response.status} {text[:100]}".strip())
    return "; ".join(responses)
