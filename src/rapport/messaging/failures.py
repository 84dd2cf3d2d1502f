"""How a send failed: worth another try later, or not."""

from __future__ import annotations


class TransientError(Exception):
    """The channel is down or busy (SMTP 4xx, dropped connection, gateway 5xx): retry later."""


class PermanentError(Exception):
    """The channel refused this message for good (SMTP 5xx, gateway 4xx): fail it now."""
