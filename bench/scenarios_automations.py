"""Automations: how fast the worker evaluates rules, and how soon a rule's action follows its
event (issue 6, "Benchmark").

1. **Throughput.** ``--events`` outbox events (deals 40 %, leads, tasks, interactions 20 %
   each; 30 % "created", 70 % "updated" with their changed fields) over generated records,
   dispatched by the worker's own loop (``core.events.outbox_dispatch``) in this process:
   first with no rule active (the **raw baseline**: claim, handlers, bookkeeping), then the
   same events again with ``--rules`` active rules (``generate_automations.bench_rules``).
   Reports source events/s (the events put in), all events/s (with those the rules' actions
   recorded: task.created, deal.updated, …), and the ratio to the baseline.
2. **Latency.** The real worker (``rapport worker``, django-q2, ``WORKER_PROCESSES`` 2)
   runs while this process creates deals through ``deal_create`` at ``--rate`` per second for
   ``--seconds``; a probe rule "deal created → create a task" answers each. Latency = the
   task's ``created_at`` − the moment ``deal_create``'s transaction committed (same clock).
   Measured with only the probe rule active, and (``--latency-with-rules``) with the
   ``--rules`` rules active too.

Run (a separate database, dropped and created; results in ``bench/results/``)::

    python -m bench.scenarios_automations                       # SQLite, smoke sizes
    python -m bench.scenarios_automations --events 100000 --rules 200
    python -m bench.scenarios_automations --database-url \\
        postgres://postgres@127.0.0.1:5432/rapport_bench_auto --events 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
PROBE = "Latency probe"


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- database


def prepare_database(url: str) -> None:
    """Drop and create the bench database (a SQLite file or a PostgreSQL database)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = Path(parsed.path[1:])
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _dispatch_all() -> tuple[int, float]:
    """The worker's dispatch loop until the outbox is empty: (events processed, seconds)."""
    from rapport.core.events import outbox_dispatch

    started = time.perf_counter()
    total = 0
    while True:
        n = outbox_dispatch(limit=500)
        total += n
        if not n:
            return total, time.perf_counter() - started


def _runs_logged() -> int:
    """Rule runs in the log, counting each rule of an event's grouped "not met" row."""
    from rapport.automations.models import RuleRun

    own = RuleRun.objects.filter(rule__isnull=False).count()
    grouped = RuleRun.objects.filter(rule__isnull=True).values_list("rule_ids", flat=True)
    return own + sum(len(ids.split()) for ids in grouped.iterator(chunk_size=5000))


def _outbox_settle() -> None:
    """Everything recorded so far counts as handled (not part of a measurement)."""
    from rapport.core.models import OutboxEvent

    OutboxEvent.objects.exclude(status="done").update(status="done", lease_until=None)


# --------------------------------------------------------------------------- throughput


def throughput(
    org: dict[str, Any],
    records: dict[str, list[int]],
    *,
    events: int,
    rules: int,
    with_actions: bool = True,
) -> dict[str, Any]:
    from django.conf import settings

    from bench.generate_automations import bench_rules, events_insert
    from rapport.automations.engine import rules_cache_clear
    from rapport.automations.models import Rule, RuleRun

    settings.OUTBOX_NUDGE = False  # no worker: this process dispatches
    _outbox_settle()
    Rule.objects.filter(is_active=True).update(is_active=False)
    rules_cache_clear()

    _print(f"Baseline: {events:,} events, no rule active")
    events_insert(records, n=events)
    base_n, base_s = _dispatch_all()
    base = {"events": base_n, "seconds": round(base_s, 2), "per_second": round(base_n / base_s)}
    _print(f"  {base_n:,} events in {base_s:.1f} s: {base['per_second']:,}/s")

    _print(f"Saving {rules} rules")
    ids = bench_rules(org, n=rules)
    rules_cache_clear()
    if not with_actions:  # the actions' phase takes ~40× longer: evaluation only
        return {
            "baseline": base,
            "with_rules": None,
            "evaluation_only": _evaluation_only(records, ids, events=events, base=base),
            "target_per_second": 2000,
        }
    runs_before = _runs_logged()
    _print(f"With {len(ids)} active rules: the same {events:,} events")
    events_insert(records, n=events)
    n, seconds = _dispatch_all()
    runs = _runs_logged() - runs_before
    matched = RuleRun.objects.filter(matched=True, rule_id__in=ids).count()
    with_rules = {
        "rules": len(ids),
        "source_events": events,
        "all_events": n,
        "seconds": round(seconds, 2),
        "source_per_second": round(events / seconds),
        "all_per_second": round(n / seconds),
        "rule_runs": runs,
        "rule_runs_matched": matched,
        "rule_runs_per_event": round(runs / max(n, 1), 2),
        "ratio_to_baseline": round((base_n / base_s) / (events / seconds), 1),
    }
    _print(
        f"  {events:,} source events ({n:,} with the actions' own) in {seconds:.1f} s: "
        f"{with_rules['source_per_second']:,}/s ({with_rules['all_per_second']:,}/s all), "
        f"{runs:,} rule runs ({matched:,} matched); ×{with_rules['ratio_to_baseline']} slower "
        "than the baseline"
    )
    evaluation = _evaluation_only(records, ids, events=events, base=base)
    return {
        "baseline": base,
        "with_rules": with_rules,
        "evaluation_only": evaluation,
        "target_per_second": 2000,
    }


NEVER = {"deal": "title", "lead": "name", "task": "title", "interaction": "subject"}


def _evaluation_only(
    records: dict[str, list[int]], ids: list[int], *, events: int, base: dict[str, Any]
) -> dict[str, Any]:
    """The same rules and events with one more condition that no record meets (its text
    field equal to a value nobody types): every trigger test and every condition is
    evaluated and every run logged, no action runs. What the engine costs, apart from the
    work the actions do through the services."""
    from django.utils import timezone

    from bench.generate_automations import events_insert
    from rapport.automations.engine import rules_cache_clear
    from rapport.automations.models import Rule

    for rule in Rule.objects.filter(pk__in=ids):
        conditions = dict(rule.conditions or {})
        items = list(conditions.get("items") or [])
        items.append({"field": NEVER[rule.object_type], "op": "eq", "value": "\u2400never"})
        Rule.objects.filter(pk=rule.pk).update(
            conditions={"match": "all", "items": items}, updated_at=timezone.now()
        )
    rules_cache_clear()
    runs_before = _runs_logged()
    _print(f"Evaluation only (no rule matches): the same {events:,} events")
    events_insert(records, n=events)
    n, seconds = _dispatch_all()
    runs = _runs_logged() - runs_before
    out = {
        "events": n,
        "seconds": round(seconds, 2),
        "per_second": round(n / seconds),
        "rule_runs": runs,
        "ratio_to_baseline": round(base["per_second"] / (n / seconds), 1),
    }
    _print(
        f"  {n:,} events in {seconds:.1f} s: {out['per_second']:,}/s, {runs:,} rule runs "
        f"evaluated and logged; ×{out['ratio_to_baseline']} slower than the baseline"
    )
    return out


# --------------------------------------------------------------------------- latency


def _probe_rule(org: dict[str, Any]) -> int:
    from rapport.automations.services import rule_save

    rule = rule_save(
        actor=org["admin"],
        data={
            "name": "Bench latency probe",
            "trigger": "deal.created",
            "conditions": {"items": [{"field": "title", "op": "contains", "value": PROBE}]},
            "actions": [{"type": "create_task", "params": {"title": "Answer {{ record.title }}"}}],
            "order": 0,
        },
    )
    return int(rule.pk)


def _worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "WORKER_PROCESSES": "2",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
    }
    with log.open("ab") as fh:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "rapport.cli", "worker"],
            env=env,
            cwd=PROJECT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def latency(
    org: dict[str, Any],
    *,
    url: str,
    rate: float,
    seconds: float,
    with_rules: bool,
    drain_seconds: float = 120,
) -> dict[str, Any]:
    """Deals at ``rate``/s for ``seconds`` with the worker running; commit → task latency."""
    from django.conf import settings
    from django.db import transaction

    from bench.scenarios import summary
    from rapport.activities.models import Task
    from rapport.automations.engine import rules_cache_clear
    from rapport.automations.models import Rule
    from rapport.core.models import OutboxEvent
    from rapport.sales.services import deal_create

    # As in production: each commit nudges the worker (with the dispatcher: NOTIFY on
    # PostgreSQL, nothing on SQLite, where it polls; without: a django-q2 task).
    settings.OUTBOX_NUDGE = True
    _outbox_settle()
    Rule.objects.filter(name__startswith="Bench rule ").update(is_active=with_rules)
    Rule.objects.filter(name="Bench latency probe").delete()
    probe = _probe_rule(org)
    rules_cache_clear()
    from rapport.accounts.models import User

    managers = list(User.objects.filter(username__startswith="manager"))
    log = Path(settings.DATA_DIR) / "bench-automations-worker.log"
    worker = _worker(url, log)
    label = "with the bench rules" if with_rules else "probe rule only"
    try:
        time.sleep(8)  # the cluster starts (its processes, the schedules)
        _print(f"Latency ({label}): deals at {rate:g}/s for {seconds:g} s, worker running")
        committed: dict[int, float] = {}
        run_tag = f"{PROBE} {int(time.time())}"
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            due = started + i / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with transaction.atomic():
                deal = deal_create(
                    actor=managers[i % len(managers)],
                    data={"title": f"{run_tag} {i}", "pipeline_id": org["pipeline"]},
                )
            committed[deal.pk] = time.time()
            i += 1
        produce_s = time.monotonic() - started
        achieved = i / produce_s
        _print(f"  {i:,} deals in {produce_s:.1f} s ({achieved:.1f}/s); waiting for the worker")
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline:
            answered = Task.objects.filter(
                origin_key__startswith=f"r{probe}:", title__contains=run_tag
            ).count()
            if answered >= i:
                break
            time.sleep(1)
        tasks = dict(
            Task.objects.filter(
                origin_key__startswith=f"r{probe}:", title__contains=run_tag
            ).values_list("deal_id", "created_at")
        )
        events = dict(
            OutboxEvent.objects.filter(
                name="deal.created", object_id__in=list(committed), processed_at__isnull=False
            ).values_list("object_id", "processed_at")
        )
    finally:
        _stop(worker)
    to_task = [(tasks[pk].timestamp() - at) * 1000 for pk, at in committed.items() if pk in tasks]
    to_done = [
        (done.timestamp() - at) * 1000
        for pk, at in committed.items()
        if (done := events.get(pk)) is not None
    ]
    task_ms, done_ms = summary(to_task), summary(to_done)
    result: dict[str, Any] = {
        "rules_active": Rule.objects.filter(is_active=True).count(),
        "rate_asked": rate,
        "rate_achieved": round(achieved, 1),
        "deals": i,
        "answered": len(to_task),
        "unanswered_after_drain": i - len(to_task),
        "commit_to_task_ms": task_ms,
        "commit_to_event_done_ms": done_ms,
        "target_p95_ms": 2000,
        # how the worker reached the events (decision 0012); the worker inherits this env
        "outbox_dispatcher": bool(getattr(settings, "OUTBOX_DISPATCHER", False)),
        "outbox_poll_seconds": getattr(settings, "OUTBOX_POLL_SECONDS", None),
        "outbox_dispatchers": getattr(settings, "OUTBOX_DISPATCHERS", None),
    }
    _print(
        f"  answered {len(to_task):,}/{i:,}; commit → task p50 {task_ms.get('p50')} ms, "
        f"p95 {task_ms.get('p95')} ms (commit → event done p95 {done_ms.get('p95')} ms)"
    )
    return result


# --------------------------------------------------------------------------- the run


def _machine() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SHOW server_version")
            version = str(cur.fetchone()[0]).split()[0]
        else:
            version = sqlite3.sqlite_version
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "db_version": version,
    }


def run(
    *,
    url: str,
    events: int,
    rules: int,
    records: int,
    rate: float,
    seconds: float,
    latency_with_rules: bool,
    skip_latency: bool = False,
    skip_actions: bool = False,
    write: bool = True,
) -> dict[str, Any]:
    """Everything after ``django.setup()`` on the prepared, migrated database."""
    from django.conf import settings
    from django.db import connection

    from bench.generate_automations import records_create, setup

    settings.OUTBOX_NUDGE = False  # the worker runs only for the latency scenario
    started_at = dt.datetime.now(dt.UTC)
    load = [round(x, 2) for x in os.getloadavg()]
    org = setup(_print, managers=20)
    t0 = time.perf_counter()
    recs = records_create(org, each=records)
    gen_s = time.perf_counter() - t0
    _print(f"{4 * records:,} records through the services in {gen_s:.1f} s")
    result: dict[str, Any] = {
        "db": connection.vendor,
        "date": started_at.strftime("%Y-%m-%d"),
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": {**_machine(), "load_average_at_start": load},
        "sizes": {"events": events, "rules": rules, "records": 4 * records},
        "throughput": throughput(
            org, recs, events=events, rules=rules, with_actions=not skip_actions
        ),
    }
    if not skip_latency:
        result["latency_probe_only"] = latency(
            org, url=url, rate=rate, seconds=seconds, with_rules=False
        )
        if latency_with_rules:
            result["latency_with_rules"] = latency(
                org, url=url, rate=rate, seconds=seconds, with_rules=True
            )
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{connection.vendor}-{result['date']}-automations-{events}.json"
        path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        _print(f"Results: {path}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scenarios_automations")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--records", type=int, default=250, help="of each kind (4 kinds)")
    parser.add_argument("--rate", type=float, default=50, help="deals per second (latency)")
    parser.add_argument("--seconds", type=float, default=60, help="latency: how long")
    parser.add_argument("--latency-with-rules", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--skip-actions",
        action="store_true",
        help="throughput: only the baseline and the evaluation of the rules, not their actions",
    )
    args = parser.parse_args(argv)

    data_dir = Path(os.environ.get("RAPPORT_DATA_DIR", str(PROJECT / "var")))
    url = args.database_url or f"sqlite:///{data_dir.resolve() / 'bench-automations.sqlite3'}"
    prepare_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapport.settings")
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    run(
        url=url,
        events=args.events,
        rules=args.rules,
        records=args.records,
        rate=args.rate,
        seconds=args.seconds,
        latency_with_rules=args.latency_with_rules,
        skip_latency=args.skip_latency,
        skip_actions=args.skip_actions,
    )


if __name__ == "__main__":
    main()
