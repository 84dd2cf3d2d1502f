"""Telling the worker that events are waiting in the outbox.

``outbox_nudge_on_commit`` is called by whoever records events outside the worker's own
dispatch loop (``core.events.event_record``, bulk writers); it arranges, once per
transaction, for the worker to look at the outbox after the commit. The periodic sweep
dispatches anything a nudge missed, so a nudge is an optimisation, never the only path.

How the worker is told depends on ``settings.OUTBOX_DISPATCHER`` (decision 0012):

- on (the default): the worker runs its own dispatch loop (``core.dispatcher``). On
  PostgreSQL the transaction sends ``NOTIFY rapport_outbox``, which PostgreSQL delivers only
  if and when it commits; on SQLite nothing is sent, the loop polls the outbox.
- off: a django-q2 task (``rapport.core.tasks.outbox_dispatch``) is queued after the commit.

``settings.OUTBOX_NUDGE = False`` (no worker is running: tests, benchmarks) sends nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

log = logging.getLogger("rapport.events")

# The PostgreSQL channel the dispatch loop listens on.
CHANNEL = "rapport_outbox"


def nudge_enabled() -> bool:
    return bool(getattr(settings, "OUTBOX_NUDGE", True))


def dispatcher_enabled() -> bool:
    return bool(getattr(settings, "OUTBOX_DISPATCHER", True))


def _notify(conn: Any) -> None:
    with conn.cursor() as cursor:
        cursor.execute("NOTIFY rapport_outbox")  # the channel is CHANNEL


def outbox_nudge() -> None:
    """Wake the worker now: more events are due (called outside the caller's transaction)."""
    if not nudge_enabled():
        return
    if dispatcher_enabled():
        conn = connections[DEFAULT_DB_ALIAS]
        if conn.vendor != "postgresql":
            return  # the dispatch loop polls
        try:
            _notify(conn)
        except DatabaseError:  # the loop's own poll and the sweep find the events anyway
            log.warning("could not notify the outbox dispatcher", exc_info=True)
        return
    queue_task("rapport.core.tasks.outbox_dispatch", group="outbox")


def queue_task(func: str, *, group: str) -> None:
    """Ask the django-q2 cluster to run ``func`` soon. Best effort: every such job also runs
    on a schedule, so a queue that cannot be reached only delays it."""
    try:
        from django_q.tasks import async_task

        async_task(func, q_options={"group": group})
    except Exception:
        log.warning("could not queue %s; its periodic run will do it", func, exc_info=True)


def _notified() -> None:
    """Marks a transaction that has sent its NOTIFY already (run on commit, does nothing)."""


def outbox_nudge_on_commit() -> None:
    """Nudge the worker once after the current transaction commits (none if it rolls back)."""
    if not nudge_enabled():
        return
    conn = transaction.get_connection()
    if not dispatcher_enabled():
        if not any(entry[1] is outbox_nudge for entry in conn.run_on_commit):
            transaction.on_commit(outbox_nudge)
        return
    if conn.vendor != "postgresql":
        return  # SQLite: the dispatch loop polls the outbox
    if not conn.in_atomic_block:
        _notify(conn)  # autocommit: the event is committed already
        return
    # NOTIFY is transactional: sent now, delivered at commit, dropped by a rollback (also of
    # a savepoint, which drops the marker too, so a later event in the outer block re-sends).
    if not any(entry[1] is _notified for entry in conn.run_on_commit):
        _notify(conn)
        transaction.on_commit(_notified)
