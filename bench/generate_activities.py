"""Bench data for activities: interactions (with threads and participants) and tasks (with
co-executors and subtasks), linked to the generated companies, people and deals.

- Interactions: calls, emails, meetings, notes, messages over the last three years, a few
  planned ones in the coming weeks; each belongs to a deal (its company, person and
  manager), or to a company (and one of its employees), or to a person. 20 "busy"
  companies hold 2 % of them (5,000 each at 5M). Emails come in threads; meetings have
  their client (and sometimes a colleague) as participants.
- Tasks: most were due during the last two years and are done; 8 % fall in the weeks around
  today (done, open or in progress), so "my overdue" and the week calendar have content;
  5 % are subtasks, 5 % have a co-executor.

Rows go in like ``bench/generate.py`` (explicit ids, batches, ``executemany`` / ``COPY``).
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from bench.generate import BATCH, SOURCE, Progress, Writer, _fix_sequences, _iso, _next_id
from rapport.activities.models import Interaction, Participant, Task, Thread

BUSY_COMPANIES = 20
INTERACTION_COLS = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "responsible_id",
    "team_id",
    "created_by_id",
    "company_id",
    "person_id",
    "deal_id",
    "lead_id",
    "kind",
    "status",
    "direction",
    "subject",
    "body",
    "at",
    "ends_at",
    "duration_seconds",
    "result",
    "place",
    "recording_url",
    "email_from",
    "email_to",
    "email_cc",
    "message_id",
    "thread_id",
)
PARTICIPANT_COLS = ("id", "interaction_id", "person_id", "company_id", "user_id", "text")
THREAD_COLS = ("id", "subject", "created_at")
TASK_COLS = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "responsible_id",
    "team_id",
    "created_by_id",
    "company_id",
    "person_id",
    "deal_id",
    "lead_id",
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "remind_at",
    "reminded_at",
    "overdue_notified_at",
    "completed_at",
    "parent_id",
    "origin_key",
)
COEXECUTOR_COLS = ("id", "task_id", "user_id")

KINDS = ("call", "email", "meeting", "note", "message")
KIND_WEIGHTS = (40, 25, 10, 17, 8)
SUBJECTS = {
    "call": ("Call about the order", "Follow-up call", "Price clarification", "Delivery dates"),
    "email": ("Commercial offer", "Contract draft", "Invoice", "Re: specification", "Documents"),
    "meeting": ("Meeting at the office", "Product demo", "Negotiation", "Site visit"),
    "note": ("Note", "Client prefers email", "Decision maker changed", "Budget approved"),
    "message": ("WhatsApp", "Telegram", "SMS reminder"),
    "planned": ("Call back", "Planned meeting", "Presentation"),
}
RESULTS = ("agreed", "call back later", "no answer", "sent the offer", "")
PLACES = ("Office", "Client's office", "Online", "Exhibition hall")
TASK_TITLES = (
    "Call the client",
    "Send the offer",
    "Prepare the contract",
    "Check the payment",
    "Agree the delivery",
    "Send the invoice",
    "Meet the decision maker",
    "Update the specification",
    "Collect documents",
    "Ask for feedback",
)


def _rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params or [])
        return list(cur.fetchall())


def generate_activities(
    *,
    interactions: int,
    tasks: int,
    org: dict[str, Any],
    out: Callable[[str], None],
    seed: int = 777,
) -> dict[str, Any]:
    rng = random.Random(seed)
    managers: list[tuple[int, int]] = org["managers"]
    team_of = dict(managers)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start_all = time.perf_counter()
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-1000000")
    else:
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")

    companies = _rows(
        "SELECT id, responsible_id FROM parties_company WHERE source = %s ORDER BY id", [SOURCE]
    )
    people = _rows(
        "SELECT id, responsible_id FROM parties_person WHERE source = %s ORDER BY id", [SOURCE]
    )
    staff: dict[int, list[int]] = {}
    for company_id, person_id in _rows(
        "SELECT company_id, person_id FROM parties_employment WHERE is_current"
    ):
        staff.setdefault(company_id, []).append(person_id)
    deals = _rows(
        "SELECT id, company_id, person_id, responsible_id FROM sales_deal WHERE source != %s "
        "ORDER BY id",
        ["bench-create"],
    )
    busy = list(rng.sample(companies, min(BUSY_COMPANIES, len(companies))))
    busy_share = 0.02 if companies else 0.0

    def link() -> tuple[int | None, int | None, int | None, int]:
        """(company, person, deal, responsible) of one interaction or task."""
        r = rng.random()
        if r < busy_share and busy:
            cid, resp = rng.choice(busy)
            pids = staff.get(cid)
            return cid, rng.choice(pids) if pids else None, None, resp
        if r < 0.35 and deals:
            did, cid, pid, resp = rng.choice(deals)
            return cid, pid, did, resp
        if r < 0.8 and companies:
            cid, resp = rng.choice(companies)
            pids = staff.get(cid)
            return cid, rng.choice(pids) if pids and rng.random() < 0.7 else None, None, resp
        if people:
            pid, resp = rng.choice(people)
            return None, pid, None, resp
        return None, None, None, rng.choice(managers)[0]

    w_int = Writer(Interaction, INTERACTION_COLS)
    w_part = Writer(Participant, PARTICIPANT_COLS)
    w_thread = Writer(Thread, THREAD_COLS)
    w_task = Writer(Task, TASK_COLS)
    w_cox = Writer(Task.coexecutors.through, COEXECUTOR_COLS)
    int_id, part_id, thread_id = _next_id(Interaction), _next_id(Participant), _next_id(Thread)
    task_id, cox_id = _next_id(Task), _next_id(Task.coexecutors.through)
    three_years = 3 * 365 * 86400

    # ---- interactions
    t0 = time.perf_counter()
    progress = Progress("interactions", interactions, out)
    open_threads: dict[int, int] = {}  # company/person key -> thread id, for follow-up emails
    for lo in range(0, interactions, BATCH):
        rows: list[tuple[Any, ...]] = []
        parts: list[tuple[Any, ...]] = []
        threads: list[tuple[Any, ...]] = []
        for _k in range(lo, min(lo + BATCH, interactions)):
            company, person, deal, resp = link()
            if rng.random() < 0.3:
                resp = rng.choice(managers)[0]
            team = team_of.get(resp)
            planned = rng.random() < 0.003
            if planned:
                kind = rng.choice(("meeting", "planned", "call"))
                at = now + dt.timedelta(seconds=rng.randrange(30 * 86400))
                status = "planned"
            else:
                kind = rng.choices(KINDS, KIND_WEIGHTS)[0]
                at = now - dt.timedelta(seconds=rng.randrange(three_years))
                status = "cancelled" if rng.random() < 0.02 else "done"
            at = at.replace(minute=(at.minute // 15) * 15, second=0)
            subject = rng.choice(SUBJECTS[kind])
            direction = rng.choice(("in", "out")) if kind in ("call", "email", "message") else ""
            ends_at = at + dt.timedelta(hours=1) if kind == "meeting" else None
            duration = rng.randrange(20, 1800) if kind == "call" and status == "done" else None
            thread = None
            email_from = email_to = message_id = ""
            if kind == "email":
                key = company or person or 0
                if key in open_threads and rng.random() < 0.6:
                    thread = open_threads[key]
                else:
                    thread = thread_id
                    thread_id += 1
                    threads.append((thread, subject, _iso(at)))
                    open_threads[key] = thread
                email_from = "manager@bench.example" if direction == "out" else "client@example.com"
                email_to = "client@example.com" if direction == "out" else "manager@bench.example"
                message_id = f"<{int_id}@bench.example>"
            ts = _iso(min(at, now))
            rows.append(
                (
                    int_id,
                    ts,
                    ts,
                    1,
                    None,
                    resp,
                    team,
                    resp,
                    company,
                    person,
                    deal,
                    None,
                    kind,
                    status,
                    direction,
                    subject,
                    "" if rng.random() < 0.6 else f"{subject}: details of the conversation.",
                    _iso(at),
                    _iso(ends_at) if ends_at else None,
                    duration,
                    rng.choice(RESULTS) if kind in ("call", "meeting") else "",
                    rng.choice(PLACES) if kind == "meeting" else "",
                    "",
                    email_from,
                    email_to,
                    "",
                    message_id,
                    thread,
                )
            )
            if kind == "meeting":
                if person is not None:
                    parts.append((part_id, int_id, person, None, None, ""))
                    part_id += 1
                if rng.random() < 0.3:
                    parts.append((part_id, int_id, None, None, rng.choice(managers)[0], ""))
                    part_id += 1
            int_id += 1
        with transaction.atomic():
            w_thread.write(threads)
            w_int.write(rows)
            w_part.write(parts)
        progress.tick(min(lo + BATCH, interactions), w_int.rows + w_part.rows + w_thread.rows)
    interactions_seconds = time.perf_counter() - t0

    # ---- tasks
    t0 = time.perf_counter()
    progress = Progress("tasks", tasks, out)
    last_parent: dict[int, int] = {}  # responsible -> a recent top-level task of theirs
    for lo in range(0, tasks, BATCH):
        rows = []
        coex: list[tuple[Any, ...]] = []
        for _k in range(lo, min(lo + BATCH, tasks)):
            company, person, deal, resp = link()
            team = team_of.get(resp)
            if rng.random() < 0.08:
                due = now + dt.timedelta(seconds=rng.randrange(-30 * 86400, 45 * 86400))
                past = due < now
                r = rng.random()
                if past:
                    status = "done" if r < 0.7 else "cancelled" if r < 0.73 else "open"
                else:
                    status = "open" if r < 0.85 else "in_progress" if r < 0.95 else "done"
                if status == "open" and rng.random() < 0.2:
                    status = "in_progress"
            else:
                due = now - dt.timedelta(seconds=rng.randrange(30 * 86400, 2 * 365 * 86400))
                r = rng.random()
                status = "done" if r < 0.96 else "cancelled" if r < 0.99 else "open"
            due = due.replace(minute=(due.minute // 30) * 30, second=0)
            created = due - dt.timedelta(seconds=rng.randrange(3600, 14 * 86400))
            created = min(created, now)
            completed = (
                min(due + dt.timedelta(seconds=rng.randrange(-86400, 3 * 86400)), now)
                if status == "done"
                else None
            )
            remind = due - dt.timedelta(hours=1) if rng.random() < 0.3 else None
            reminded = remind if remind is not None and remind < now else None
            overdue_noted = due if status in ("open", "in_progress") and due < now else None
            parent = None
            if rng.random() < 0.05 and resp in last_parent:
                parent = last_parent[resp]
            else:
                last_parent[resp] = task_id
            rows.append(
                (
                    task_id,
                    _iso(created),
                    _iso(completed or created),
                    2 if completed else 1,
                    None,
                    resp,
                    team,
                    resp,
                    company,
                    person,
                    deal,
                    None,
                    rng.choice(TASK_TITLES),
                    "",
                    status,
                    rng.choices((1, 2, 3, 4), (15, 60, 20, 5))[0],
                    _iso(due),
                    _iso(remind) if remind else None,
                    _iso(reminded) if reminded else None,
                    _iso(overdue_noted) if overdue_noted else None,
                    _iso(completed) if completed else None,
                    parent,
                    None,
                )
            )
            if rng.random() < 0.05:
                mate = rng.choice(managers)[0]
                if mate != resp:
                    coex.append((cox_id, task_id, mate))
                    cox_id += 1
            task_id += 1
        with transaction.atomic():
            w_task.write(rows)
            w_cox.write(coex)
        progress.tick(min(lo + BATCH, tasks), w_task.rows + w_cox.rows)
    tasks_seconds = time.perf_counter() - t0
    _fix_sequences([Interaction, Participant, Thread, Task, Task.coexecutors.through])
    seconds = time.perf_counter() - start_all
    rows_total = w_int.rows + w_part.rows + w_thread.rows + w_task.rows + w_cox.rows
    out(
        f"  activities: {w_int.rows:,} interactions, {w_task.rows:,} tasks in {seconds:,.0f} s "
        f"({rows_total / seconds if seconds else 0:,.0f} rows/s)"
    )
    return {
        "interactions_seconds": round(interactions_seconds, 1),
        "tasks_seconds": round(tasks_seconds, 1),
        "interactions": w_int.rows,
        "participants": w_part.rows,
        "threads": w_thread.rows,
        "tasks": w_task.rows,
        "task_coexecutors": w_cox.rows,
        "busy_companies": [c for c, _r in busy],
        "rows": rows_total,
    }
