"""`rapport worker`: the background worker.

With ``OUTBOX_DISPATCHER`` on (the default) this process only supervises two kinds of
children, started as ``rapport worker --only …`` in the same process group:

- ``--only cluster``: the django-q2 cluster (schedules, the outbox sweep, message delivery,
  imports and every other task), exactly what ``rapport worker`` ran before;
- ``--only dispatcher`` (``OUTBOX_DISPATCHERS`` of them, 1 by default): the outbox dispatch
  loop (``core.dispatcher``).

SIGTERM or SIGINT to the supervisor is passed on to every child and waits for them (each
finishes its current batch or task). A dispatcher that dies is started again (after 1 s,
doubling up to 30 s while it keeps dying within a minute of its start); after five such
deaths in a row, or when the cluster dies, the supervisor stops the rest and exits with
status 1, so ``rapport run`` (or systemd, a container) notices. On Linux each child also
gets SIGTERM if the supervisor itself is killed alone. ``kill -9`` of the process group
(a container stopped hard) ends everything at once; leases make the next start safe.

With ``OUTBOX_DISPATCHER`` off, ``rapport worker`` runs the django-q2 cluster in this process
as before, and every commit that records events queues a dispatch task.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

log = logging.getLogger("rapport.worker")

RESTART_FIRST_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a dispatcher that ran this long before dying is restarted at once
GIVE_UP_AFTER = 5  # deaths in a row, each within STABLE_SECONDS of its start
STOP_TIMEOUT_SECONDS = 60.0
CLUSTER_HUNG_SECONDS = 3.0  # stopping, alive, but none of its own processes left


def ensure_schedules() -> None:
    """A django-q2 schedule for every periodic job the apps registered (core.tasks.periodic)."""
    from django_q.models import Schedule

    from rapport.core.tasks import PERIODIC

    for name, (func, minutes) in PERIODIC.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child when the supervisor dies, even by SIGKILL of it alone."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        return


def _has_live_children(pid: int) -> bool:
    """Whether ``pid`` has a child that is not a zombie (True where /proc cannot tell)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            return True
    return False


@dataclass
class Child:
    role: str  # "cluster" or "dispatcher"
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    history: list[int] = field(default_factory=list)  # exit codes, for the log

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own entry point
            [sys.executable, "-m", "rapport.cli", "worker", "--only", self.role],
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.started_at = time.monotonic()
        log.info("worker: started %s (pid %s)", self.role, self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)  # a child that has just exited is ignored


class Supervisor:
    """Runs the cluster and the dispatchers as children; see the module docstring."""

    def __init__(self, *, dispatchers: int) -> None:
        self.children = [Child("cluster")] + [Child("dispatcher") for _ in range(dispatchers)]
        self.stopping = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("worker: got %s; stopping", signal.Signals(signum).name)
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        for child in self.children:
            child.start()
        status = 0
        while not self.stopping:
            time.sleep(0.2)
            status = self._watch()
            if status:
                break
        self._stop_all()
        return status

    def _watch(self) -> int:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:  # waiting to be restarted
                if now >= child.restart_at:
                    child.start()
                continue
            code = child.proc.poll()
            if code is None or self.stopping:
                continue
            child.history.append(code)
            if child.role == "cluster":
                log.error("worker: the django-q2 cluster exited (status %s); stopping", code)
                return 1
            ran = now - child.started_at
            child.quick_deaths = child.quick_deaths + 1 if ran < STABLE_SECONDS else 0
            if child.quick_deaths >= GIVE_UP_AFTER:
                log.error(
                    "worker: the outbox dispatcher died %s times in a row (last status %s); "
                    "stopping",
                    child.quick_deaths,
                    code,
                )
                return 1
            delay = min(
                RESTART_MAX_SECONDS, RESTART_FIRST_SECONDS * 2 ** max(0, child.quick_deaths - 1)
            )
            log.error(
                "worker: the outbox dispatcher (pid %s) exited with status %s after %.0f s; "
                "starting another in %.0f s",
                child.proc.pid,
                code,
                ran,
                delay,
            )
            child.proc = None
            child.restart_at = now + delay
        return 0

    def _stop_all(self) -> None:
        for child in self.children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        orphaned_since: float | None = None
        while True:
            running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
            if not running:
                break
            now = time.monotonic()
            if now >= deadline:
                for child in running:
                    log.warning(
                        "worker: %s (pid %s) did not stop; killing it", child.role, child.pid
                    )
                    child.kill()
                break
            cluster = next((c for c in running if c.role == "cluster"), None)
            if cluster is not None and not _has_live_children(cluster.pid):
                orphaned_since = orphaned_since or now
                if now - orphaned_since >= CLUSTER_HUNG_SECONDS:
                    # SIGTERM to the whole group (systemd's default KillMode, `kill -- -PGID`)
                    # also reaches django-q2's own processes, which die at once; the cluster's
                    # main process then waits forever on a lock one of them held.
                    log.warning(
                        "worker: the django-q2 cluster (pid %s) hangs after its processes "
                        "ended; killing it",
                        cluster.pid,
                    )
                    cluster.kill()
            time.sleep(0.1)
        log.info("worker: stopped")


def run_cluster() -> None:
    """The django-q2 cluster in this process, as ``qcluster`` runs it, but safe to stop
    while it starts.

    django-q2 stops the cluster from its signal handler: it sets the stop event and joins
    its sentinel process. While the cluster starts, its main thread polls the sentinel's
    start event, holding the event's lock for a moment each time; a SIGTERM landing inside
    that moment made the handler wait for the sentinel, and the sentinel wait for the lock
    to say it had started: neither stopped (a worker stopped a second after its start hung
    until the supervisor killed it at ``STOP_TIMEOUT_SECONDS``). Here a signal during the
    start is only noted, and the cluster is stopped once it reports running."""
    from django_q.cluster import Cluster

    cluster = Cluster()
    state = {"started": False, "pending": False}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if state["started"]:
            cluster.sig_handler(signum, frame)
        else:
            state["pending"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster.start()
    state["started"] = True
    if state["pending"]:
        cluster.stop()
        return
    # As ``qcluster``: the sentinel runs until the stop (a signal), and the interpreter's
    # exit waits for it.
    if cluster.sentinel is not None:
        cluster.sentinel.join()


class Command(BaseCommand):
    help = "Run the background worker (outbox dispatch, scheduled jobs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--only",
            choices=["cluster", "dispatcher"],
            help="Run one part of the worker in this process (the worker starts these itself).",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        only = opts.get("only")
        if only == "dispatcher":
            from rapport.core.dispatcher import run_dispatcher

            run_dispatcher()
            return
        if only == "cluster" or not settings.OUTBOX_DISPATCHER:
            ensure_schedules()
            run_cluster()
            return
        status = Supervisor(dispatchers=max(1, settings.OUTBOX_DISPATCHERS)).run()
        if status:
            sys.exit(status)
