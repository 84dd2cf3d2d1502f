"""The worker's outbox dispatch loop (core.dispatcher, decision 0012): how soon it reaches an
event, how PostgreSQL wakes it, how it stops and survives database errors, and that two loops
never handle an event twice.

Real databases: on PostgreSQL the test database itself; on SQLite a copy of the in-memory test
database in a file (WAL, as in production), because threads and processes cannot share the
in-memory one. Loops run in threads with their own connections, or as real processes
(``rapport worker``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from rapport.core import events
from rapport.core.dispatcher import DispatchLoop, OutboxListener
from rapport.core.models import HandlerRun, OutboxEvent
from rapport.core.nudge import outbox_nudge

PROJECT = Path(django_settings.PROJECT_DIR)

pytestmark = pytest.mark.django_db(transaction=True)

postgresql_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
    reason="LISTEN/NOTIFY is PostgreSQL's",
)


@pytest.fixture
def shared_db(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """The test database, reachable by other threads and processes; its DATABASE_URL."""
    conn = connections["default"]
    if conn.vendor != "sqlite":
        s = conn.settings_dict
        yield (
            f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:"
            f"{s['PORT'] or 5432}/{s['NAME']}"
        )
        return
    if not conn.is_in_memory_db():
        yield f"sqlite:///{conn.settings_dict['NAME']}"
        return
    conn.ensure_connection()
    path = tmp_path / "outbox.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as copy:
        conn.connection.backup(copy)
    memory, name = conn.connection, conn.settings_dict["NAME"]
    conn.connection = None  # closing it would destroy the in-memory database
    conn.settings_dict["NAME"] = str(path)  # shared by every thread's connection
    try:
        yield f"sqlite:///{path}"
    finally:
        connections.close_all()
        conn.settings_dict["NAME"] = name
        conn.connection = memory


@pytest.fixture
def worker_running(settings: Any) -> None:
    """Commits nudge the worker, as in production (tests otherwise run without a worker)."""
    settings.OUTBOX_NUDGE = True


@pytest.fixture
def handled(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[tuple[int, str]]]:
    """Two handlers on "test.*" events; each call recorded as (event id, thread name)."""
    monkeypatch.setattr(events, "_HANDLERS", [])
    calls: dict[str, list[tuple[int, str]]] = {"first": [], "second": []}
    lock = threading.Lock()

    def recorder(key: str) -> Callable[[OutboxEvent], None]:
        def record(event: OutboxEvent) -> None:
            with lock:
                calls[key].append((event.pk, threading.current_thread().name))

        return record

    events.handler("test.*", key="test.first")(recorder("first"))
    events.handler("test.*", key="test.second")(recorder("second"))
    return calls


def _record(n: int = 1, *, name: str = "test.ping") -> list[int]:
    """``n`` events recorded in one committed transaction, as a service records them."""
    with transaction.atomic():
        return [
            events.event_record(name=name, object_type="test", object_id=i).pk for i in range(n)
        ]


@contextlib.contextmanager
def _running(loop: DispatchLoop, name: str = "dispatcher") -> Iterator[threading.Thread]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        loop.stop()
        thread.join(timeout=10)
    assert not thread.is_alive(), "the loop did not stop"
    assert not errors, errors


def _wait_until(check: Callable[[], bool], *, seconds: float) -> float:
    """Seconds until ``check()`` held; fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.01)
    return time.monotonic() - started


def _done(ids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        return OutboxEvent.objects.filter(pk__in=ids, status="done").count() == len(ids)

    return check


def test_an_event_recorded_while_the_worker_runs_is_handled_within_a_moment(
    shared_db, worker_running, handled
):
    loop = DispatchLoop(poll_seconds=0.05)
    with _running(loop):
        time.sleep(0.2)  # the loop is idle, waiting
        ids = _record()
        took = _wait_until(_done(ids), seconds=5)
    assert took < 3  # a loaded 2-core CI machine; the periodic sweep would take a minute
    assert [pk for pk, _ in handled["first"]] == ids
    assert [pk for pk, _ in handled["second"]] == ids


@postgresql_only
def test_on_postgresql_a_commit_wakes_the_worker_at_once(shared_db, handled, settings):
    settings.OUTBOX_NUDGE = True  # a worker is running: commits notify it
    loop = DispatchLoop(poll_seconds=10)  # it would not look again for 10 s by itself
    with _running(loop):
        time.sleep(0.3)
        first = _record()
        took_first = _wait_until(_done(first), seconds=5)
        time.sleep(0.3)
        second = _record(3)
        took_second = _wait_until(_done(second), seconds=5)
    assert took_first < 3  # well under the loop's own 10 s look: NOTIFY woke it
    assert took_second < 3
    assert loop.wakeups >= 2


@postgresql_only
def test_a_rolled_back_transaction_sends_no_notify(shared_db, settings):
    settings.OUTBOX_NUDGE = True
    listener = OutboxListener()
    listener.open()
    try:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            events.event_record(name="test.ping", object_type="test", object_id=1)
            raise RuntimeError("the user's change failed")
        assert not listener.wait(0.5)

        with transaction.atomic():
            with contextlib.suppress(RuntimeError), transaction.atomic():
                events.event_record(name="test.ping", object_type="test", object_id=2)
                raise RuntimeError("a savepoint rolled back, its NOTIFY with it")
            assert not listener.wait(0.3)  # nothing before the commit
            with CaptureQueriesContext(connection) as queries:
                for i in range(3):
                    events.event_record(name="test.ping", object_type="test", object_id=3 + i)
        assert listener.wait(1)  # the commit delivered it
        notifies = [q for q in queries.captured_queries if "NOTIFY" in q["sql"]]
        assert len(notifies) == 1  # once per transaction, not once per event
    finally:
        listener.close()
    assert OutboxEvent.objects.count() == 3


def test_with_the_dispatcher_a_commit_queues_no_django_q_task(shared_db, settings):
    from django_q.models import OrmQ

    settings.OUTBOX_NUDGE = True
    _record(2)
    assert OrmQ.objects.count() == 0


def test_without_the_dispatcher_a_commit_queues_one_dispatch_task(shared_db, settings):
    from django_q.models import OrmQ

    settings.OUTBOX_NUDGE = True
    settings.OUTBOX_DISPATCHER = False
    _record(2)
    assert OrmQ.objects.count() == 1  # one per transaction


def test_with_no_worker_running_a_commit_sends_nothing(shared_db, settings):
    from django_q.models import OrmQ

    settings.OUTBOX_NUDGE = False  # tests and benchmarks: nobody listens
    for dispatcher in (True, False):
        settings.OUTBOX_DISPATCHER = dispatcher
        with CaptureQueriesContext(connection) as queries:
            _record(2)
        assert not [q for q in queries.captured_queries if "NOTIFY" in q["sql"]]
    assert OrmQ.objects.count() == 0


def test_the_worker_stops_at_once_when_told_even_while_waiting(shared_db, handled):
    loop = DispatchLoop(poll_seconds=10)
    with _running(loop) as thread:
        time.sleep(0.3)
        stopped_at = time.monotonic()
        loop.stop()
        thread.join(timeout=5)
        took = time.monotonic() - stopped_at
    assert took < 3  # not the 10 s it would otherwise wait


def test_the_worker_carries_on_after_a_database_error(shared_db, worker_running, handled):
    loop = DispatchLoop(poll_seconds=0.05)
    with _running(loop) as thread:
        time.sleep(0.2)
        with connection.cursor() as cursor:  # the outbox is gone for a moment
            cursor.execute("ALTER TABLE core_outboxevent RENAME TO core_outboxevent_away")
        outbox_nudge()  # PostgreSQL: wakes the loop, which meets the error at once
        try:
            _wait_until(lambda: loop.errors >= 1, seconds=5)
            time.sleep(0.3)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE core_outboxevent_away RENAME TO core_outboxevent")
        ids = _record()
        _wait_until(_done(ids), seconds=4)
        assert thread.is_alive()
    assert loop.errors >= 1
    assert [pk for pk, _ in handled["first"]] == ids


@postgresql_only
def test_the_worker_reconnects_when_postgresql_drops_its_connections(shared_db, handled, settings):
    settings.OUTBOX_NUDGE = True
    loop = DispatchLoop(poll_seconds=10)
    with _running(loop):
        _wait_until(_done(_record()), seconds=5)  # both connections are open now
        with connection.cursor() as cursor:  # an administrator, a failover, a restart
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchall()
        time.sleep(0.3)
        ids = _record()
        took = _wait_until(_done(ids), seconds=4)
    assert took < 3
    assert [pk for pk, _ in handled["first"]][-1] == ids[0]


def test_two_workers_handle_every_event_exactly_once_per_handler(shared_db, handled, settings):
    settings.OUTBOX_NUDGE = True
    loops = [DispatchLoop(poll_seconds=0.02), DispatchLoop(poll_seconds=0.02)]
    ids: list[int] = []
    with _running(loops[0], "loop-1"), _running(loops[1], "loop-2"):
        for _ in range(40):
            ids += _record(5)
            time.sleep(0.005)
        _wait_until(_done(ids), seconds=10)
    for key in ("first", "second"):
        per_event = Counter(pk for pk, _ in handled[key])
        assert set(per_event) == set(ids)
        assert set(per_event.values()) == {1}, f"{key}: an event handled twice"
    assert HandlerRun.objects.filter(event_id__in=ids).count() == 2 * len(ids)
    assert sum(loop.dispatched for loop in loops) == len(ids)
    sys.stderr.write(f"events per loop: {[loop.dispatched for loop in loops]}\n")


# --------------------------------------------------------------------------- real processes


def _worker(url: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        "DATABASE_URL": url,
        "RAPPORT_DATA_DIR": str(tmp_path / "data"),
        "LOG_LEVEL": "INFO",
        "WORKER_PROCESSES": "1",
    }
    log = (tmp_path / "worker.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "rapport.cli", "worker", *args],
        env=env,
        cwd=PROJECT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a service manager starts it
    )


def _processes() -> Iterator[tuple[Path, list[str]]]:
    """Each process's /proc entry and the fields of its stat after the command name
    (state, ppid, pgrp, …)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                yield entry, (entry / "stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> dict[str, int]:
    """The worker's children by role ("cluster", "dispatcher"), from /proc."""
    found: dict[str, int] = {}
    for entry, fields in _processes():
        if int(fields[1]) == pid:
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
                found[cmd[-2].decode() if len(cmd) > 1 else ""] = int(entry.name)
    return found


def _logged(tmp_path: Path, text: str) -> int:
    """How many lines of the worker's log contain ``text``."""
    path = tmp_path / "worker.log"
    return path.read_text().count(text) if path.exists() else 0


def _claimed_by(event_id: int) -> int:
    """The pid of the process that claimed the event."""
    return int(OutboxEvent.objects.get(pk=event_id).claimed_by.rsplit(":", 1)[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_the_worker_process_handles_events_and_stops_cleanly_on_sigterm(
    shared_db, worker_running, tmp_path
):
    proc = _worker(shared_db, tmp_path)
    try:
        _wait_until(lambda: _logged(tmp_path, "outbox dispatcher started") == 1, seconds=15)
        ids = _record(name="test.unhandled")  # no handler: done as soon as it is reached
        _wait_until(_done(ids), seconds=5)
        children = _children(proc.pid)
        assert set(children) == {"cluster", "dispatcher"}
        assert _claimed_by(ids[0]) == children["dispatcher"]  # not the cluster's sweep
        # a running worker: django-q2's own processes are up
        _wait_until(lambda: bool(_children(children["cluster"])), seconds=15)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)  # to the worker only, as `rapport run` does
        assert proc.wait(timeout=60) == 0  # within the supervisor's own bound
        for pid in children.values():
            assert not Path(f"/proc/{pid}").exists()  # stopped and reaped
    finally:
        _stop(proc)
    log = (tmp_path / "worker.log").read_text()
    assert "outbox dispatcher stopped" in log


def _group_alive(pgid: int) -> list[int]:
    """The processes of a process group that are not zombies."""
    return [
        int(entry.name)
        for entry, fields in _processes()
        if int(fields[2]) == pgid and fields[0] != "Z"
    ]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize("moment", ["sentinel started", "pool starting"])
def test_the_cluster_stops_promptly_when_told_while_it_is_still_starting(
    shared_db, tmp_path, moment
):
    """A stop during django-q2's start (a worker restarted at once, a deploy) is carried out
    once the cluster runs, instead of hanging until the supervisor kills it."""
    proc = _worker(shared_db, tmp_path, "--only", "cluster")
    try:
        _wait_until(lambda: bool(_children(proc.pid)), seconds=15)  # the sentinel
        if moment == "pool starting":
            sentinel = next(iter(_children(proc.pid).values()))
            _wait_until(lambda: bool(_children(sentinel)), seconds=15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        _wait_until(lambda: not _group_alive(proc.pid), seconds=10)  # nothing left behind
    finally:
        _stop(proc)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_dispatcher_that_dies_is_started_again(shared_db, worker_running, tmp_path):
    proc = _worker(shared_db, tmp_path)
    try:
        _wait_until(lambda: _logged(tmp_path, "outbox dispatcher started") == 1, seconds=15)
        killed = _children(proc.pid)["dispatcher"]
        os.kill(killed, signal.SIGKILL)  # out of memory, say
        _wait_until(lambda: _logged(tmp_path, "outbox dispatcher started") == 2, seconds=15)
        ids = _record(name="test.unhandled")
        _wait_until(_done(ids), seconds=5)
        assert proc.poll() is None
        again = _children(proc.pid)["dispatcher"]
        assert again != killed
        assert _claimed_by(ids[0]) == again
    finally:
        _stop(proc)
    log = (tmp_path / "worker.log").read_text()
    assert "exited with status -9" in log


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_the_worker_stops_when_its_whole_process_group_gets_sigterm(shared_db, tmp_path):
    """As systemd stops a service (KillMode=control-group): every process gets SIGTERM."""
    proc = _worker(shared_db, tmp_path)
    try:
        _wait_until(lambda: set(_children(proc.pid)) == {"cluster", "dispatcher"}, seconds=10)
        cluster = _children(proc.pid)["cluster"]
        _wait_until(lambda: bool(_children(cluster)), seconds=10)  # django-q2's own processes
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # the supervisor's own bound, as above
    finally:
        _stop(proc)
