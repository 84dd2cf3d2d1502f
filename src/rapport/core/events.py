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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Min, Q
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


# A batch handler takes the events of one claim together, in one transaction, and returns
# those it wants done one by one instead (each then in its own transaction, as a plain
# handler): the cheap common case in bulk, the costly or external work isolated.
BatchHandler = Callable[[list[OutboxEvent]], list[OutboxEvent]]


@dataclass(frozen=True)
class _Registered:
    pattern: str
    name: str
    func: Handler
    batch: BatchHandler | None = None
    wants: Callable[[OutboxEvent], bool] | None = None


_HANDLERS: list[_Registered] = []


def handler(pattern: str, *, key: str | None = None) -> Callable[[Handler], Handler]:
    """Register ``func`` for events whose name matches ``pattern`` (``person.*``).

    ``key`` names the handler in HandlerRun; it must stay stable across releases.
    """

    def register(func: Handler) -> Handler:
        name = key or f"{func.__module__}.{func.__qualname__}"
        _HANDLERS.append(_Registered(pattern, name, func))
        return func

    return register


def batch_handler(
    pattern: str,
    *,
    key: str,
    one: Handler,
    wants: Callable[[OutboxEvent], bool] | None = None,
) -> Callable[[BatchHandler], BatchHandler]:
    """Register a handler that takes a claim's matching events at once.

    The batch function runs in one transaction with the run records of the events it
    handled; it returns the events to be handled one by one by ``one`` instead. If it
    fails, every event of the batch is handled one by one, so one bad event costs only
    itself. ``wants`` (cheap, no query) tells an event the handler has nothing to do for
    right now (no rule listens to it): such an event is passed over without a run record.
    """

    def register(func: BatchHandler) -> BatchHandler:
        _HANDLERS.append(_Registered(pattern, key, one, func, wants))
        return func

    return register


def handlers_for(event_name: str) -> list[tuple[str, Handler]]:
    return [(h.name, h.func) for h in _registered_for(event_name)]


_matched: dict[str, list[_Registered]] = {}
_matched_for: list[Any] = [None, -1]  # the handler list (held, so compared by identity), its size


def _registered_for(event_name: str) -> list[_Registered]:
    if _matched_for[0] is not _HANDLERS or _matched_for[1] != len(_HANDLERS):
        _matched.clear()  # a handler was registered since (or the list replaced, in tests)
        _matched_for[:] = [_HANDLERS, len(_HANDLERS)]
    found = _matched.get(event_name)
    if found is None:
        found = _matched[event_name] = [
            h for h in _HANDLERS if fnmatch.fnmatch(event_name, h.pattern)
        ]
    return found


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

    Claimed events whose lease expired (their worker died: that is the reaper) come first,
    then pending events whose time has come, oldest first. Each part is read in the order
    of the ``(status, available_at)`` index, so a claim reads about ``limit`` index entries
    however long the backlog is (ordering the union by id sorted the whole backlog on every
    claim: at 100,000 events waiting the outbox ran at half speed).
    """
    now = timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    me = claimer or worker_id()
    if connection.vendor == "postgresql":
        return _claim_returning(now=now, lease=lease, claimer=me, limit=limit)
    pending, claimed = OutboxEvent.Status.PENDING, OutboxEvent.Status.CLAIMED
    expired = Q(status=claimed, lease_until__lt=now)
    waiting = Q(status=pending, available_at__lte=now)
    with transaction.atomic():
        rows: list[tuple[int, str, int]] = []
        for due, order in ((expired, "id"), (waiting, "available_at")):
            # Not (available_at, id): ties (a bulk change records its events at one time)
            # would be sorted as a whole on PostgreSQL; the index's own order serves.
            qs = OutboxEvent.objects.filter(due).order_by(order)
            if connection.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            rows += qs.values_list("id", "status", "attempts")[: limit - len(rows)]
            if len(rows) >= limit:
                break
        if not rows:
            return []
        ids = [pk for pk, _status, _attempts in rows]
        # The status guard makes the claim safe even without row locks (SQLite
        # serialises writers with IMMEDIATE transactions anyway).
        OutboxEvent.objects.filter(Q(id__in=ids) & (expired | waiting)).update(
            status=claimed, lease_until=lease, claimed_by=me
        )
        events = list(OutboxEvent.objects.filter(id__in=ids, claimed_by=me, lease_until=lease))
    first = {pk for pk, status, attempts in rows if status == pending and not attempts}
    for event in events:
        event.first_claim = event.pk in first
    return events


def _claim_returning(*, now: Any, lease: Any, claimer: str, limit: int) -> list[OutboxEvent]:
    """PostgreSQL: the claim as one statement (lock the due rows, skipping those another
    worker holds, mark them ours, return them) instead of five round trips: at a few events
    per claim those were a large part of an event's cost. Expired leases first, then the
    oldest pending events, each read in index order (see ``outbox_claim``)."""
    meta = OutboxEvent._meta
    q = connection.ops.quote_name
    table = q(meta.db_table)
    columns = ", ".join(f"o.{q(f.column)}" for f in meta.concrete_fields)
    sql = f"""
        WITH expired AS (
            SELECT id, status AS was, attempts AS tries FROM {table}
            WHERE status = %s AND lease_until < %s
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
        ), waiting AS (
            SELECT id, status AS was, attempts AS tries FROM {table}
            WHERE status = %s AND available_at <= %s
            ORDER BY available_at LIMIT %s FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT * FROM (SELECT 0 AS part, * FROM expired UNION ALL SELECT 1, * FROM waiting) u
            ORDER BY part, id LIMIT %s
        )
        UPDATE {table} o SET status = %s, lease_until = %s, claimed_by = %s
        FROM due WHERE o.id = due.id
        RETURNING {columns}, due.was, due.tries
    """  # noqa: S608 - names from the model
    pending, claimed = OutboxEvent.Status.PENDING, OutboxEvent.Status.CLAIMED
    params = [claimed, now, limit, pending, now, limit, limit, claimed, lease, claimer]
    events = list(OutboxEvent.objects.raw(sql, params))
    for event in events:
        event.first_claim = event.was == pending and not event.tries  # type: ignore[attr-defined]
    events.sort(key=lambda e: e.pk)
    return events


def _run_one(event: OutboxEvent, name: str, func: Handler) -> str | None:
    """Run one handler on one event in its own transaction; the error text if it failed."""
    try:
        with transaction.atomic():
            func(event)
            HandlerRun.objects.create(event=event, handler=name)
    except IntegrityError:
        # Another worker finished this handler meanwhile: its effect is in, ours rolled back.
        return None
    except Exception as exc:
        log.exception("handler %s failed on event %s", name, event.pk)
        return f"{name}: {exc!r}"
    return None


def _run_batch(name: str, batch: BatchHandler, events: list[OutboxEvent]) -> list[OutboxEvent]:
    """Run a batch handler; the events left to handle one by one."""
    try:
        with transaction.atomic():
            rest = batch(events)
            left = {e.pk for e in rest}
            HandlerRun.objects.bulk_create(
                [HandlerRun(event=e, handler=name) for e in events if e.pk not in left]
            )
        return rest
    except Exception:  # one by one below: each event's own error is recorded there
        log.warning("batch handler %s failed; one event at a time", name, exc_info=True)
        return events


def outbox_process_batch(events: list[OutboxEvent]) -> dict[int, list[str]]:
    """Run every handler not yet run for each of ``events``; returns the errors by event.

    Handlers run in their registration order, each over all its events (in id order), so
    every event still sees its handlers in the same order as one processed alone.
    """
    if not events:
        return {}
    seen = [e.pk for e in events if not e.first_claim]  # others: no handler has run yet
    ran = (
        set(HandlerRun.objects.filter(event__in=seen).order_by().values_list("event_id", "handler"))
        if seen
        else set()
    )
    plan: dict[str, tuple[_Registered, list[OutboxEvent]]] = {}
    order: dict[str, int] = {}
    for index, registered in enumerate(_HANDLERS):
        order.setdefault(registered.name, index)
    for event in events:
        for registered in _registered_for(event.name):
            if (event.pk, registered.name) in ran:
                continue
            if registered.wants is not None and not _wanted(registered, event):
                continue
            plan.setdefault(registered.name, (registered, []))[1].append(event)
    errors: dict[int, list[str]] = {}
    for name in sorted(plan, key=lambda n: order.get(n, 0)):
        registered, todo = plan[name]
        if registered.batch is not None and len(todo) > 1:  # one event: its own path at once
            todo = _run_batch(name, registered.batch, todo)
        for event in todo:
            error = _run_one(event, name, registered.func)
            if error:
                errors.setdefault(event.pk, []).append(error)
    _settle(events, errors)
    return errors


def _wanted(registered: _Registered, event: OutboxEvent) -> bool:
    try:
        return bool(registered.wants and registered.wants(event))
    except Exception:  # let the handler run and record its own error
        log.warning("handler %s could not tell whether it wants an event", registered.name)
        return True


def _settle(events: list[OutboxEvent], errors: dict[int, list[str]]) -> None:
    now = timezone.now()
    done = [e.pk for e in events if e.pk not in errors]
    if done:
        OutboxEvent.objects.filter(pk__in=done).update(
            status=OutboxEvent.Status.DONE,
            processed_at=now,
            attempts=F("attempts") + 1,
            lease_until=None,
        )
    for event in events:
        if event.pk not in errors:
            continue
        attempts = event.attempts + 1
        text = "\n".join(errors[event.pk])
        if attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            OutboxEvent.objects.filter(pk=event.pk).update(
                status=OutboxEvent.Status.FAILED, attempts=attempts, last_error=text
            )
        else:
            backoff = timedelta(seconds=min(3600, 5 * 2**attempts))
            OutboxEvent.objects.filter(pk=event.pk).update(
                status=OutboxEvent.Status.PENDING,
                attempts=attempts,
                available_at=now + backoff,
                lease_until=None,
                last_error=text,
            )


def outbox_process(event: OutboxEvent) -> bool:
    """Run every handler not yet run for ``event``. True when all succeeded."""
    return not outbox_process_batch([event])


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
            outbox_process_batch(batch)
            done += len(batch)
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


def outbox_prune(*, now: Any = None, chunk: int = 5000) -> int:
    """Remove events handled more than ``OUTBOX_KEEP_DAYS`` ago with their handler-run
    records, in chunks (a short write lock each). Pending, claimed and failed events stay."""
    days = int(getattr(settings, "OUTBOX_KEEP_DAYS", 7))
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    removed = 0
    while True:
        ids = list(
            # available_at ≤ processed_at: the range on (status, available_at) finds them
            OutboxEvent.objects.filter(
                status=OutboxEvent.Status.DONE, available_at__lt=cutoff, processed_at__lt=cutoff
            )
            .order_by("available_at")
            .values_list("id", flat=True)[:chunk]
        )
        if not ids:
            return removed
        with transaction.atomic():
            HandlerRun.objects.filter(event_id__in=ids).delete()
            removed += OutboxEvent.objects.filter(pk__in=ids).delete()[0]


def outbox_backlog() -> dict[str, Any]:
    """How far behind the worker is: the age of the oldest event due and not yet handled,
    and how many failed for good (an administrator's matter, not a reason to stop traffic)."""
    now = timezone.now()
    due = OutboxEvent.objects.filter(
        status__in=[OutboxEvent.Status.PENDING, OutboxEvent.Status.CLAIMED], available_at__lte=now
    ).aggregate(oldest=Min("available_at"))["oldest"]
    failed = OutboxEvent.objects.filter(status=OutboxEvent.Status.FAILED).count()
    return {
        "oldest_waiting_seconds": round((now - due).total_seconds(), 1) if due else 0.0,
        "failed": failed,
    }
