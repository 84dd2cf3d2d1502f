"""Data for the automations benchmark (``bench/scenarios_automations.py``) and for the R13
crash test (``tests/automations/test_crash_r13.py``).

Everything goes through the services (``rule_save``, ``deal_create``, ``task_create``, …):
the rules are checked as the rule builder checks them, and every record writes its audit
entry and its outbox event as a user's change would.

Run as a script (the crash test does, on its own database)::

    python -m bench.generate_automations r13-seed --deals 2000 --smtp-port 8025
    python -m bench.generate_automations r13-report      # JSON counts for the assertions
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

Out = Callable[[str], None]

PIPELINE = "Bench automations"
R13_RULE = "R13: every new deal → email the duty manager and a call task"
DUTY_EMAIL = "duty@bench.example"


# --------------------------------------------------------------------------- organisation


def setup(out: Out, *, managers: int = 10) -> dict[str, Any]:
    """The bench organisation (``bench.generate.setup_org``), a pipeline with stages, custom
    fields on deals and leads, and the "duty" employee the emails go to."""
    from django.db import transaction

    from bench.generate import setup_org
    from rapport.accounts.models import User
    from rapport.core.models import CustomFieldDefinition
    from rapport.sales.models import Pipeline, Stage

    org = setup_org(out, managers=managers)
    with transaction.atomic():
        pipeline = Pipeline.objects.filter(name=PIPELINE).first()
        if pipeline is None:
            pipeline = Pipeline.objects.create(name=PIPELINE, kind="free", order=0)
            for i, name in enumerate(("New", "Talks", "Offer", "Contract")):
                Stage.objects.create(pipeline=pipeline, name=name, order=10 * (i + 1))
        for object_type, name, kind, choices in (
            ("deal", "segment", "choice", ["smb", "mid", "enterprise"]),
            ("deal", "score", "number", []),
            ("lead", "region_code", "text", []),
            ("lead", "budget", "money", []),
        ):
            CustomFieldDefinition.objects.get_or_create(
                object_type=object_type,
                name=name,
                defaults={
                    "label": name.replace("_", " ").title(),
                    "type": kind,
                    "choices": choices,
                },
            )
        duty = User.objects.filter(username="duty").first()
        if duty is None:
            duty = User(
                username="duty",
                first_name="Duty",
                last_name="Manager",
                email=DUTY_EMAIL,
                team_id=org["teams"][1],
                role_id=User.objects.get(username="manager00").role_id,
            )
            duty.set_unusable_password()
            duty.save()
    stages = list(
        Stage.objects.filter(pipeline=pipeline).order_by("order").values_list("id", flat=True)
    )
    return {
        **org,
        "admin": User.objects.get(username="bench"),
        "duty": duty,
        "pipeline": pipeline.pk,
        "stages": stages,
    }


def smtp_settings(*, host: str, port: int, timeout: int = 5) -> None:
    """Point the channel settings (the one row an administrator edits) at ``host:port``."""
    from rapport.messaging.models import ChannelSettings

    ChannelSettings.objects.update_or_create(
        pk=1,
        defaults={
            "smtp_host": host,
            "smtp_port": port,
            "smtp_security": "none",
            "smtp_timeout": timeout,
            "from_email": "rapport@bench.example",
            "max_attempts": 20,
            "retry_base_seconds": 2,
            "retry_max_seconds": 20,
        },
    )


# --------------------------------------------------------------------------- R13


def r13_rule(org: dict[str, Any]) -> Any:
    from rapport.automations.services import rule_save

    return rule_save(
        actor=org["admin"],
        data={
            "name": R13_RULE,
            "trigger": "deal.created",
            "actions": [
                {
                    "type": "email_employee",
                    "params": {
                        "who": "user",
                        "user_id": org["duty"].pk,
                        "subject": "New deal {{ record.title }}",
                        "body": "{{ record.title }}: {{ record.amount }} — please have a look.",
                    },
                },
                {
                    "type": "create_task",
                    "params": {"who": "responsible", "title": "Call about {{ record.title }}"},
                },
            ],
        },
    )


def deals_create(org: dict[str, Any], n: int, *, batch: int = 200, seed: int = 13) -> list[int]:
    """``n`` deals through ``deal_create`` (each records ``deal.created``), ``batch`` per
    transaction, by random bench managers."""
    from django.db import transaction

    from rapport.accounts.models import User
    from rapport.sales.services import deal_create

    rng = random.Random(seed)
    managers = {u.pk: u for u in User.objects.filter(username__startswith="manager")}
    ids = list(managers)
    out: list[int] = []
    for start in range(0, n, batch):
        with transaction.atomic():
            for i in range(start, min(n, start + batch)):
                actor = managers[rng.choice(ids)]
                deal = deal_create(
                    actor=actor,
                    data={
                        "title": f"R13 deal {i:05d}",
                        "pipeline_id": org["pipeline"],
                        "amount": str(rng.randrange(1_000, 500_000)),
                    },
                )
                out.append(deal.pk)
    return out


def r13_seed(*, deals: int, smtp_port: int, out: Out) -> dict[str, Any]:
    """Organisation, SMTP settings, the rule, then ``deals`` deals whose events wait in the
    outbox (each transaction of ``deals_create`` nudges the worker, as a user's change does)."""
    org = setup(out, managers=10)
    smtp_settings(host="127.0.0.1", port=smtp_port)
    rule = r13_rule(org)
    started = time.perf_counter()
    ids = deals_create(org, deals)
    seconds = time.perf_counter() - started
    out(f"{len(ids)} deals in {seconds:.1f} s ({len(ids) / seconds:.0f}/s)")
    return {"rule": rule.pk, "deals": len(ids), "seed_seconds": round(seconds, 1)}


def r13_report() -> dict[str, Any]:
    """What the crash test asserts on, counted in the database."""
    from django.db.models import Count

    from rapport.activities.models import Notification, Task
    from rapport.automations.models import ActionRun, RuleRun
    from rapport.core.models import OutboxEvent
    from rapport.messaging.models import OutgoingMessage
    from rapport.sales.models import Deal

    deals = Deal.objects.filter(title__startswith="R13 deal ")
    tasks = Task.objects.filter(title__startswith="Call about R13 deal ")
    per_deal = dict(
        tasks.values_list("deal_id").annotate(n=Count("id")).values_list("deal_id", "n")
    )
    notes = Notification.objects.filter(title__contains="R13 deal ")
    note_keys = notes.values("user_id", "kind", "key").annotate(n=Count("id")).filter(n__gt=1)
    emails = OutgoingMessage.objects.filter(source__startswith="rule:")
    return {
        "deals": deals.count(),
        "tasks": tasks.count(),
        "deals_without_task": deals.exclude(pk__in=tasks.values("deal_id")).count(),
        "deals_with_several_tasks": sum(1 for n in per_deal.values() if n > 1),
        "notifications": notes.count(),
        "duplicate_notifications": note_keys.count(),
        "messages": emails.count(),
        "messages_by_status": dict(
            emails.values_list("status").annotate(n=Count("id")).values_list("status", "n")
        ),
        "message_ids": {m: k for k, m in emails.values_list("key", "message_id")},
        "messages_attempts_max": max(emails.values_list("attempts", flat=True), default=0),
        "events_by_status": dict(
            OutboxEvent.objects.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        ),
        "rule_runs": RuleRun.objects.count(),
        "rule_runs_by_outcome": dict(
            RuleRun.objects.values_list("outcome")
            .annotate(n=Count("id"))
            .values_list("outcome", "n")
        ),
        "action_runs": ActionRun.objects.count(),
    }


# --------------------------------------------------------------------------- the bench's rules


def _cond(rng: random.Random, object_type: str, n: int) -> dict[str, Any]:
    """1–3 conditions on fields of ``object_type`` (custom fields and related records
    included), each true for roughly 10–35 % of the generated records, as rules that pick
    out "big deals", "enterprise clients", "tenders" are."""
    pool: dict[str, list[dict[str, Any]]] = {
        "deal": [
            {"field": "amount", "op": "gt", "value": str(rng.choice([300_000, 400_000]))},
            {"field": "amount", "op": "lt", "value": str(rng.choice([20_000, 50_000]))},
            {"field": "title", "op": "contains", "value": "Acme"},
            {"field": "custom.segment", "op": "eq", "value": rng.choice(["smb", "enterprise"])},
            {"field": "custom.score", "op": "gte", "value": str(rng.randrange(70, 95))},
            {"field": "source", "op": "in", "value": rng.choice([["tender"], ["referral"]])},
        ],
        "lead": [
            {"field": "channel", "op": "eq", "value": rng.choice(["web_form", "phone"])},
            {"field": "amount", "op": "gt", "value": str(rng.choice([60_000, 80_000]))},
            {"field": "custom.region_code", "op": "eq", "value": rng.choice(["77", "78"])},
            {"field": "custom.budget", "op": "gte", "value": str(rng.choice([70_000, 90_000]))},
            {"field": "interest", "op": "contains", "value": rng.choice(["CRM", "audit"])},
        ],
        "task": [
            {"field": "priority", "op": "in", "value": rng.choice([["3", "4"], ["1"]])},
            {"field": "title", "op": "contains", "value": rng.choice(["Visit", "Send"])},
            {"field": "deal.amount", "op": "gt", "value": str(rng.choice([300_000, 400_000]))},
            {"field": "deal.custom.segment", "op": "eq", "value": "enterprise"},
        ],
        "interaction": [
            {"field": "kind", "op": "eq", "value": rng.choice(["call", "meeting"])},
            {"field": "direction", "op": "eq", "value": rng.choice(["in", "out"])},
            {"field": "subject", "op": "contains", "value": rng.choice(["price", "contract"])},
            {"field": "deal.amount", "op": "gt", "value": "400000"},
        ],
    }
    items = rng.sample(pool[object_type], k=min(n, len(pool[object_type])))
    return {"match": "any" if rng.random() < 0.1 else "all", "items": items}


FIELD_CHANGED: dict[str, list[tuple[str, str | None]]] = {
    "deal": [("amount", None), ("source", "tender"), ("custom.segment", "enterprise")],
    "lead": [("status", None), ("custom.region_code", None), ("amount", None)],
    "task": [("status", "done"), ("priority", None), ("due_at", None)],
    "interaction": [("status", None), ("subject", None)],
}
CHANGE_FIELD: dict[
    str, tuple[str, str]
] = {  # action "change a field": a harmless field of the record itself
    "deal": ("source", "rule"),
    "lead": ("utm_campaign", "auto"),
    "task": ("description", "Flagged by a rule"),
    "interaction": ("result", "Seen by a rule"),
}


def _action(
    rng: random.Random, object_type: str, trigger: str, org: dict[str, Any], i: int
) -> dict[str, Any]:
    """Mostly tasks (on deals and leads), notifications and field changes (on "created"
    triggers, so that a rule does not feed its own trigger), a few emails."""
    roll = rng.random()
    if roll < 0.40 and object_type in ("deal", "lead"):
        return {
            "type": "create_task",
            "params": {"who": "responsible", "title": f"Rule {i}: follow up {{{{ record }}}}"},
        }
    if roll < 0.80 or (roll < 0.95 and not trigger.endswith(".created")):
        return {
            "type": "notify",
            "params": {"who": "responsible", "title": f"Rule {i}: {{{{ record }}}} changed"},
        }
    if roll < 0.95:
        name, value = CHANGE_FIELD[object_type]
        return {"type": "change_field", "params": {"field": name, "value": value}}
    return {
        "type": "email_employee",
        "params": {
            "who": "user",
            "user_id": org["duty"].pk,
            "subject": f"Rule {i}: {{{{ record }}}}",
            "body": "See {{ record }}.",
        },
    }


def bench_rules(org: dict[str, Any], *, n: int = 200, seed: int = 200) -> list[int]:
    """``n`` active rules: created / updated / field-changed triggers on deals, leads, tasks
    and interactions; 0–3 conditions (custom fields included); 1–2 actions, mostly tasks,
    notifications and field changes, a few emails. Saved through ``rule_save``."""
    from rapport.automations.models import Rule
    from rapport.automations.services import rule_save

    rng = random.Random(seed)
    Rule.objects.filter(name__startswith="Bench rule ").delete()
    ids: list[int] = []
    types = ["deal"] * 4 + ["lead"] * 2 + ["task"] * 2 + ["interaction"] * 2
    for i in range(n):
        ot = rng.choice(types)
        kind = rng.choice(["created", "updated", "updated", "field_changed", "field_changed"])
        created = "interaction.created" if ot == "interaction" else f"{ot}.created"
        trigger = created if kind == "created" else f"{ot}.{kind}"
        config: dict[str, Any] = {}
        if kind == "field_changed":
            field, to = rng.choice(FIELD_CHANGED[ot])
            config = {"field": field, **({"to": to} if to else {})}
        conditions = _cond(rng, ot, rng.choice([1, 2, 2, 3, 3]))
        actions = [_action(rng, ot, trigger, org, i) for _ in range(rng.choice([1, 1, 2]))]
        rule = rule_save(
            actor=org["admin"],
            data={
                "name": f"Bench rule {i:03d} ({trigger})",
                "trigger": trigger,
                "trigger_config": config,
                "conditions": conditions,
                "actions": actions,
                "order": i,
            },
        )
        ids.append(rule.pk)
    return ids


# --------------------------------------------------------------------------- the bench's records


def records_create(org: dict[str, Any], *, each: int, seed: int = 7) -> dict[str, list[int]]:
    """``each`` deals, leads, tasks and interactions through the services (their ``created``
    events stay in the outbox; the bench claims them as done before it starts)."""
    from django.db import transaction

    from rapport.accounts.models import User
    from rapport.activities.services import interaction_log, task_create
    from rapport.sales.services import deal_create, lead_create

    rng = random.Random(seed)
    managers = list(User.objects.filter(username__startswith="manager"))
    out: dict[str, list[int]] = {"deal": [], "lead": [], "task": [], "interaction": []}
    for start in range(0, each, 200):
        with transaction.atomic():
            for i in range(start, min(each, start + 200)):
                actor = rng.choice(managers)
                deal = deal_create(
                    actor=actor,
                    data={
                        "title": f"Bench deal {i} {'Acme' if i % 7 == 0 else ''}".strip(),
                        "pipeline_id": org["pipeline"],
                        "amount": str(rng.randrange(1_000, 500_000)),
                        "source": rng.choice(["website", "tender", "referral", "phone"]),
                        "custom_fields": {
                            "segment": rng.choice(["smb", "mid", "enterprise"]),
                            "score": rng.randrange(0, 100),
                        },
                    },
                )
                out["deal"].append(deal.pk)
                lead = lead_create(
                    actor=actor,
                    data={
                        "name": f"Lead {i}",
                        "email": f"lead{i}@example.com" if i % 3 else "",
                        "interest": rng.choice(["CRM", "audit", "support"]),
                        "amount": str(rng.randrange(500, 100_000)),
                        "channel": rng.choice(["web_form", "phone", "manual"]),
                        "custom_fields": {
                            "region_code": rng.choice(["77", "78", "50", "66"]),
                            "budget": rng.randrange(1_000, 100_000),
                        },
                    },
                )
                out["lead"].append(lead.pk)
                task = task_create(
                    actor=actor,
                    data={
                        "title": rng.choice(["Call", "Send", "Visit"]) + f" client {i}",
                        "responsible_id": actor.pk,
                        "deal_id": deal.pk,
                        "priority": rng.choice([1, 2, 3]),
                    },
                )
                out["task"].append(task.pk)
                interaction = interaction_log(
                    actor=actor,
                    data={
                        "kind": rng.choice(["call", "email", "meeting", "note"]),
                        "direction": rng.choice(["in", "out"]),
                        "subject": rng.choice(["price", "contract", "hello"]) + f" {i}",
                        "deal_id": deal.pk,
                    },
                )
                out["interaction"].append(interaction.pk)
    return out


def _update_payload(rng: random.Random, object_type: str) -> dict[str, Any]:
    """An update event's payload as the services write it (``changes_payload``)."""
    from rapport.core.events import changes_payload

    pick: dict[str, list[dict[str, Any]]] = {
        "deal": [
            {"amount": ["1000.00", str(Decimal(rng.randrange(1_000, 500_000)))]},
            {"source": ["website", rng.choice(["tender", "referral"])]},
            {"custom.segment": ["smb", rng.choice(["mid", "enterprise"])]},
            {"title": ["Old", "New"], "version": [1, 2]},
            {"source": ["rule", "website"]},
        ],
        "lead": [
            {"status": ["new", "in_work"]},
            {"amount": ["100.00", "2000.00"]},
            {"custom.region_code": ["77", "78"]},
        ],
        "task": [
            {"status": ["open", rng.choice(["done", "in_progress"])]},
            {"priority": [2, 3]},
            {"description": ["", "x"]},
        ],
        "interaction": [{"status": ["planned", "done"]}, {"subject": ["a", "b"]}],
    }
    return changes_payload(rng.choice(pick[object_type]))


def events_insert(records: dict[str, list[int]], *, n: int, seed: int = 100) -> int:
    """``n`` outbox events over the records: 30 % created, 70 % updated (with changes),
    spread over deals 40 %, leads 20 %, tasks 20 %, interactions 20 %. Bulk-inserted,
    pending, as if that many user changes had just been committed."""
    from django.db import transaction
    from django.utils import timezone

    from rapport.core.models import OutboxEvent

    rng = random.Random(seed)
    now = timezone.now()
    weights = [("deal", 4), ("lead", 2), ("task", 2), ("interaction", 2)]
    kinds = [k for k, w in weights for _ in range(w)]
    rows: list[OutboxEvent] = []
    for _ in range(n):
        ot = rng.choice(kinds)
        pk = rng.choice(records[ot])
        if rng.random() < 0.3:
            name = "interaction.logged" if ot == "interaction" else f"{ot}.created"
            payload: dict[str, Any] = {}
        else:
            name, payload = f"{ot}.updated", _update_payload(rng, ot)
        rows.append(
            OutboxEvent(name=name, object_type=ot, object_id=pk, payload=payload, available_at=now)
        )
    with transaction.atomic():
        OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    return n


# --------------------------------------------------------------------------- script


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate_automations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    seed = sub.add_parser("r13-seed", help="data of the R13 crash test")
    seed.add_argument("--deals", type=int, required=True)
    seed.add_argument("--smtp-port", type=int, required=True)
    sub.add_parser("r13-report", help="counts of the R13 crash test, as JSON")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapport.settings")
    import django

    django.setup()
    if args.cmd == "r13-seed":
        result = r13_seed(
            deals=args.deals, smtp_port=args.smtp_port, out=lambda s: print(s, file=sys.stderr)
        )
    else:
        result = r13_report()
    sys.stdout.write(json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    main()
