"""Background entry points run by the worker (django-q2). Thin: they call services."""

from __future__ import annotations

from rapport.core.events import outbox_dispatch as _dispatch


def outbox_dispatch() -> int:
    return _dispatch()
