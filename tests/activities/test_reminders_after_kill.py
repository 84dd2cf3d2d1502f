"""Reminders go out exactly once even when the worker running them is killed mid-run and
started again: every task reminded once, one notification and one ``reminder.due`` event
each, nothing half-written at the kill. Real processes on a real SQLite file, no mocks."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TASKS = 1_200

SETUP = f"""
import datetime as dt
from django.utils import timezone
from rapport.accounts.models import User
from rapport.activities.models import Task
admin = User.objects.get(username="admin")
now = timezone.now()
Task.objects.bulk_create(
    Task(
        title=f"Call back {{i}}",
        responsible=admin,
        due_at=now + dt.timedelta(days=1),
        remind_at=now - dt.timedelta(minutes=1 + i % 60),
    )
    for i in range({TASKS})
)
"""

# The worker's scheduled job, run back to back until nothing is left (the cluster would run
# it every minute; a loop gets to the kill sooner).
WORKER = """
from rapport.activities.jobs import reminders
while reminders():
    pass
"""


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql).fetchall()


def _one(db: Path, sql: str) -> int:
    return int(_query(db, sql)[0][0])  # type: ignore[call-overload]


def test_reminders_go_out_exactly_once_when_the_worker_is_killed_and_restarted(
    rapport_cli, sqlite_cli_env
):
    env, db = sqlite_cli_env()
    assert rapport_cli(env, "migrate", "-v0").returncode == 0
    assert rapport_cli(env, "createadmin").returncode == 0
    made = rapport_cli(env, "shell", "-c", SETUP)
    assert made.returncode == 0, made.stderr
    assert _one(db, "SELECT COUNT(*) FROM activities_task WHERE reminded_at IS NULL") == TASKS

    # when the worker is killed once some reminders went out
    worker = subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "rapport.cli", "shell", "-c", WORKER],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.poll() is None:
        if _one(db, "SELECT COUNT(*) FROM activities_notification") >= 50:
            break
        time.sleep(0.05)
    assert worker.poll() is None, "the worker finished before it could be killed"
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    # then what it committed is whole: each task marked has its notification and event
    reminded = _one(db, "SELECT COUNT(*) FROM activities_task WHERE reminded_at IS NOT NULL")
    assert 0 < reminded < TASKS
    assert _one(db, "SELECT COUNT(*) FROM activities_notification") == reminded
    assert _one(db, "SELECT COUNT(*) FROM core_outboxevent WHERE name = 'reminder.due'") == (
        reminded
    )

    # when it is started again and runs to the end
    again = rapport_cli(env, "shell", "-c", WORKER)
    assert again.returncode == 0, again.stderr

    # then every task was reminded exactly once
    assert _one(db, "SELECT COUNT(*) FROM activities_task WHERE reminded_at IS NULL") == 0
    assert _query(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT key), COUNT(DISTINCT url) FROM activities_notification "
        "WHERE kind = 'reminder'",
    ) == [(TASKS, TASKS, TASKS)]
    assert _query(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT object_id) FROM core_outboxevent "
        "WHERE name = 'reminder.due'",
    ) == [(TASKS, TASKS)]
    assert _one(db, "SELECT COUNT(*) FROM core_outboxevent WHERE name = 'task.overdue'") == 0
