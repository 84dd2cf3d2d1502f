"""Domain events through a transactional outbox.

``event_record`` writes the event in the caller's transaction: a rolled-back
change publishes nothing, a committed one is never lost. After commit the worker
is nudged; a periodic sweep catches anything the nudge missed.
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import logging
import os
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from rapport.core.models import HandlerRun, OutboxEvent
from rapport.core.nudge import outbox_nudge, outbox_nudge_on_commit

log = logging.getLogger("rapport.events")

Handler = Callable[[OutboxEvent], None]

# How many automation steps led to the change being recorded: 0 for a person's own
# change; a rule's action runs at its event's depth + 1. Rules stop at a limit (loops).
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("rapport_event_depth", default=0)


# While the worker dispatches, the events it records are picked up by the same dispatch
# loop: nudging the queue for each would only flood it (one task per handler transaction).
_IN_DISPATCH: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "rapport_in_dispatch", default=False
)
_AFTER_DISPATCH: contextvars.ContextVar[list[Callable[[], None]] | None] = contextvars.ContextVar(
    "rapport_after_dispatch", default=None
)


def in_dispatch() -> bool:
    return _IN_DISPATCH.get()


def after_dispatch(func: Callable[[], None]) -> None:
    """Call ``func`` once when the current dispatch run ends (or at once outside one)."""
    pending = _AFTER_DISPATCH.get()
    if pending is None:
        func()
    elif func not in pending:
        pending.append(func)


@contextlib.contextmanager
def event_depth(depth: int) -> Iterator[None]:
    """Events recorded inside carry ``_depth`` = ``depth`` in their payload."""
    token = _DEPTH.set(depth)
    try:
        yield
    finally:
        _DEPTH.reset(token)


_HANDLERS: list[tuple[str, str, Handler]] = []


def handler(pattern: str, *, key: str | None = None) -> Callable[[Handler], Handler]:
    """Register ``func`` for events whose name matches ``pattern`` (``person.*``).

    ``key`` names the handler in HandlerRun; it must stay stable across releases.
    """

    def register(func: Handler) -> Handler:
        name = key or f"{func.__module__}.{func.__qualname__}"
        _HANDLERS.append((pattern, name, func))
        return func

    return register


def handlers_for(event_name: str) -> list[tuple[str, Handler]]:
    return [
        (name, func) for pattern, name, func in _HANDLERS if fnmatch.fnmatch(event_name, pattern)
    ]


def event_record(
    *,
    name: str,
    object_type: str,
    object_id: int,
    actor: Any = None,
    payload: dict[str, Any] | None = None,
) -> OutboxEvent:
    """Record a domain event in the current transaction."""
    depth = _DEPTH.get()
    if depth:
        payload = {**(payload or {}), "_depth": depth}
    event = OutboxEvent.objects.create(
        name=name,
        object_type=object_type,
        object_id=object_id,
        actor=actor if getattr(actor, "pk", None) else None,
        payload=payload or {},
        available_at=timezone.now(),
    )
    if not _IN_DISPATCH.get():
        outbox_nudge_on_commit()  # once per transaction, not once per event
    return event


def changes_payload(changes: dict[str, Any]) -> dict[str, Any]:
    """An update event's payload: the changed fields and their old and new values.

    Rules on "a field changed from … to …" read it; ``version`` is bookkeeping, not a change.
    """
    kept = {k: v for k, v in changes.items() if k != "version"}
    return {"fields": sorted(kept), "changes": kept}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def outbox_claim(*, limit: int = 100, claimer: str | None = None) -> list[OutboxEvent]:
    """Lease up to ``limit`` due events to this worker.

    Pending events whose time has come, and claimed events whose lease expired
    (their worker died), are both due: that is the reaper.
    """
    now = timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    me = claimer or worker_id()
    due = Q(status=OutboxEvent.Status.PENDING, available_at__lte=now) | Q(
        status=OutboxEvent.Status.CLAIMED, lease_until__lt=now
    )
    with transaction.atomic():
        qs = OutboxEvent.objects.filter(due).order_by("id")
        if transaction.get_connection().features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
        ids = list(qs.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # The status guard makes the claim safe even without row locks (SQLite
        # serialises writers with IMMEDIATE transactions anyway).
        OutboxEvent.objects.filter(Q(id__in=ids) & due).update(
            status=OutboxEvent.Status.CLAIMED, lease_until=lease, claimed_by=me
        )
        return list(OutboxEvent.objects.filter(id__in=ids, claimed_by=me, lease_until=lease))


def outbox_process(event: OutboxEvent) -> bool:
    """Run every handler not yet run for ``event``. True when all succeeded."""
    ok = True
    errors: list[str] = []
    for name, func in handlers_for(event.name):
        if HandlerRun.objects.filter(event=event, handler=name).exists():
            continue
        try:
            with transaction.atomic():
                func(event)
                HandlerRun.objects.create(event=event, handler=name)
        except IntegrityError:
            # Another worker finished this handler meanwhile: its effect is in, ours rolled back.
            continue
        except Exception as exc:
            ok = False
            errors.append(f"{name}: {exc!r}")
            log.exception("handler %s failed on event %s", name, event.pk)
    now = timezone.now()
    attempts = event.attempts + 1
    if ok:
        OutboxEvent.objects.filter(pk=event.pk).update(
            status=OutboxEvent.Status.DONE, processed_at=now, attempts=attempts, lease_until=None
        )
    elif attempts >= settings.OUTBOX_MAX_ATTEMPTS:
        OutboxEvent.objects.filter(pk=event.pk).update(
            status=OutboxEvent.Status.FAILED, attempts=attempts, last_error="\n".join(errors)
        )
    else:
        backoff = timedelta(seconds=min(3600, 5 * 2**attempts))
        OutboxEvent.objects.filter(pk=event.pk).update(
            status=OutboxEvent.Status.PENDING,
            attempts=attempts,
            available_at=now + backoff,
            lease_until=None,
            last_error="\n".join(errors),
        )
    return ok


def outbox_dispatch(*, limit: int = 500) -> int:
    """Claim and process due events until none is left or ``limit`` is reached.

    Events recorded by the handlers meanwhile are taken by this same loop; reaching
    ``limit`` queues one more run, so a long backlog keeps moving without a task per event.
    """
    done = 0
    pending: list[Callable[[], None]] = []
    in_token = _IN_DISPATCH.set(True)
    after_token = _AFTER_DISPATCH.set(pending)
    try:
        while done < limit:
            batch = outbox_claim(limit=min(100, limit - done))
            if not batch:
                break
            for event in batch:
                outbox_process(event)
                done += 1
    finally:
        _IN_DISPATCH.reset(in_token)
        _AFTER_DISPATCH.reset(after_token)
    if done >= limit:
        outbox_nudge()
    for func in pending:
        try:
            func()
        except Exception:  # a nudge is an optimisation: the periodic sweeps deliver anyway
            log.warning("after-dispatch hook %r failed", func, exc_info=True)
    return done
