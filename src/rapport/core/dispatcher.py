"""The worker's outbox dispatch loop (decision 0012).

``rapport worker`` runs ``DispatchLoop`` in a process of its own beside the django-q2
cluster. The loop calls ``core.events.outbox_dispatch`` (which claims events with a lease,
so any number of loops on any number of machines share the outbox safely) until nothing is
due, then waits for new work:

- PostgreSQL: ``LISTEN rapport_outbox`` on a dedicated autocommit connection; every
  transaction that records an event sends ``NOTIFY rapport_outbox`` (``core.nudge``), which
  wakes the loop the moment it commits. It also looks every ``LISTENING_POLL_SECONDS`` (5 s,
  or ``OUTBOX_POLL_SECONDS`` if longer) for what no commit announces: retries whose backoff
  ended, leases that ran out.
- SQLite (and PostgreSQL while its listening connection is down): it looks every
  ``OUTBOX_POLL_SECONDS`` (0.05 s by default; an idle look is one indexed query).

The django-q2 schedule "rapport.outbox_sweep" stays as the safety net, and re-queues events
whose lease ran out (their worker died).

A database error never ends the loop: it is logged, the loop waits a little (longer each
time, up to ``MAX_BACKOFF_SECONDS``), drops its connections and tries again. SIGTERM or
SIGINT (``run_dispatcher``) or ``DispatchLoop.stop`` end it after the current batch.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

from rapport.core.events import outbox_dispatch
from rapport.core.nudge import CHANNEL

log = logging.getLogger("rapport.dispatcher")

# Events per call of outbox_dispatch: a stop request waits for at most this many.
BATCH = 100
# How long a wait lasts before the stop flag is looked at again.
STOP_CHECK_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 30.0
# While LISTENing on PostgreSQL, how often the loop looks at the outbox all the same.
LISTENING_POLL_SECONDS = 5.0
# After a failed LISTEN, how long the loop only polls before it tries again.
LISTEN_RETRY_SECONDS = 5.0


class OutboxListener:
    """A dedicated autocommit PostgreSQL connection LISTENing on the outbox channel."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.alias = alias
        self.conn: Any = None

    def open(self) -> None:
        import psycopg

        params = dict(connections[self.alias].get_connection_params())
        # Django's own cursor class and adapters are not needed for LISTEN.
        for key in ("cursor_factory", "context"):
            params.pop(key, None)
        self.conn = psycopg.connect(**params, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                log.debug("closing the listening connection failed", exc_info=True)
            self.conn = None

    def wait(self, timeout: float) -> bool:
        """True when a notification arrived within ``timeout`` seconds (all are consumed)."""
        if self.conn is None:
            self.open()
        got = False
        for _ in self.conn.notifies(timeout=timeout, stop_after=1):
            got = True
        if got:  # several commits may have notified: one look at the outbox serves them all
            for _ in self.conn.notifies(timeout=0):
                pass
        return got


class DispatchLoop:
    """Dispatch outbox events until stopped; see the module docstring."""

    def __init__(self, *, poll_seconds: float | None = None, alias: str = DEFAULT_DB_ALIAS):
        if poll_seconds is None:
            poll_seconds = float(getattr(settings, "OUTBOX_POLL_SECONDS", 0.05))
        self.poll_seconds = poll_seconds
        # While LISTENing, a look now and then still finds what no commit announced: retries
        # whose backoff ended, leases that ran out.
        self.listening_poll_seconds = max(poll_seconds, LISTENING_POLL_SECONDS)
        self.alias = alias
        self.stopping = threading.Event()
        self.dispatched = 0
        self.errors = 0
        self.wakeups = 0  # waits ended by a NOTIFY
        self._listener: OutboxListener | None = None
        self._backoff = 0.0
        self._listen_retry_at = 0.0

    @property
    def listens(self) -> bool:
        return connections[self.alias].vendor == "postgresql"

    def stop(self) -> None:
        """End the loop after the current batch (safe from a signal handler or a thread)."""
        self.stopping.set()

    def run(self) -> int:
        """Dispatch until ``stop``; returns how many events this loop dispatched."""
        if self.listens:
            how = f"LISTEN {CHANNEL}, look every {self.listening_poll_seconds:g} s"
        else:
            how = "polling"
        log.info(
            "outbox dispatcher started (pid %s, %s, poll every %g s)",
            os.getpid(),
            how,
            self.poll_seconds,
        )
        if self.listens:
            self._listener = OutboxListener(self.alias)
            self._listen_again()
        try:
            while not self.stopping.is_set():
                found = self.run_once()
                if found is None:  # a database error: wait, then start afresh
                    self._pause_after_error()
                elif not found:
                    self._wait()
        finally:
            if self._listener is not None:
                self._listener.close()
            connections[self.alias].close()
            log.info("outbox dispatcher stopped (%s events dispatched)", self.dispatched)
        return self.dispatched

    def run_once(self) -> int | None:
        """One call of ``outbox_dispatch``: events dispatched, or None after an error."""
        close_old_connections()
        try:
            found = outbox_dispatch(limit=BATCH)
        except Exception:  # never dies: a lost connection, a locked file, a bug in a query
            self.errors += 1
            log.exception("outbox dispatch failed; retrying")
            return None
        self._backoff = 0.0
        self.dispatched += found
        return found

    def _listen_again(self) -> bool:
        """(Re)open the listening connection; on failure poll and try again later."""
        if self._listener is None:
            return False
        try:
            self._listener.open()
        except Exception:  # noqa: BLE001 - the database is down: polling goes on meanwhile
            self._listener.close()
            self._listen_retry_at = time.monotonic() + LISTEN_RETRY_SECONDS
            log.warning("outbox dispatcher cannot LISTEN; polling meanwhile", exc_info=True)
            return False
        return True

    def _pause_after_error(self) -> None:
        self._backoff = min(MAX_BACKOFF_SECONDS, max(0.5, self._backoff * 2))
        for conn in connections.all(initialized_only=True):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may refuse to close
                log.debug("closing a broken connection failed", exc_info=True)
        if self._listener is not None:
            self._listener.close()  # opened (and LISTENing) again on the next wait
            self._listen_retry_at = 0.0
        self.stopping.wait(self._backoff)

    def _wait(self) -> None:
        """Until a NOTIFY arrives, the poll interval passes, or ``stop`` is called."""
        started = time.monotonic()
        listener = self._listener
        while not self.stopping.is_set():
            listening = listener is not None and listener.conn is not None
            period = self.listening_poll_seconds if listening else self.poll_seconds
            left = started + period - time.monotonic()
            if left <= 0:
                return
            step = min(left, STOP_CHECK_SECONDS)
            if listener is None:
                self.stopping.wait(step)
                continue
            if listener.conn is None:
                if time.monotonic() < self._listen_retry_at:
                    self.stopping.wait(step)
                    continue
                if self._listen_again():
                    return  # events committed while nobody listened: look now
                continue
            try:
                notified = listener.wait(step)
            except Exception:  # noqa: BLE001 - connection lost: reopen, poll meanwhile
                log.warning("outbox dispatcher lost its LISTEN connection", exc_info=True)
                listener.close()
                self._listen_retry_at = 0.0
                continue
            if notified:
                self.wakeups += 1
                return


def run_dispatcher(*, poll_seconds: float | None = None) -> int:
    """Run one loop in this process until SIGTERM or SIGINT (the worker's dispatcher child)."""
    loop = DispatchLoop(poll_seconds=poll_seconds)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        log.info("outbox dispatcher got %s; stopping after the current batch", name)
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return loop.run()
