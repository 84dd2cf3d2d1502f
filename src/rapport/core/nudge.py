"""Telling the worker that events are waiting in the outbox.

``outbox_nudge_on_commit`` is called by whoever records events outside the worker's own
dispatch loop (``core.events.event_record``, bulk writers); it arranges, once per
transaction, for the worker to look at the outbox after the commit. The periodic sweep
dispatches anything a nudge missed, so a nudge is an optimisation, never the only path.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

log = logging.getLogger("rapport.events")


def outbox_nudge() -> None:
    if not getattr(settings, "OUTBOX_NUDGE", True):
        return
    try:
        from django_q.tasks import async_task

        async_task("rapport.core.tasks.outbox_dispatch", q_options={"group": "outbox"})
    except Exception:  # the periodic sweep delivers it anyway
        log.warning("could not nudge the worker; the periodic sweep will dispatch", exc_info=True)


def outbox_nudge_on_commit() -> None:
    """Nudge the worker once after the current transaction commits (none if it rolls back)."""
    conn = transaction.get_connection()
    if not any(entry[1] is outbox_nudge for entry in conn.run_on_commit):
        transaction.on_commit(outbox_nudge)
