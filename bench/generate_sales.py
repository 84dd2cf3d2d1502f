"""Bench data for the sales process: pipelines, stages, loss reasons, leads, deals and their
stage history, consistent with what the services write.

Three pipelines: a big strict one ("Bench sales", seven stages) that holds 60 % of the deals
and a third of them open (100k open deals at 500k), and two free ones. Every deal's history
is simulated the way ``rapport.sales.services`` records it: a creation row (``from_status``
empty), one row per move (``seconds_in_previous`` since the previous row, ``limit_exceeded``
when the stay overran the stage's limit), and for closed deals the closing row (from the
stage it was closed from to the same stage, status won / lost, the won amount or the amount).
The deal's current stage is its last row's ``to_stage``; ``stage_entered_at`` is that row's
time; ``stage_deadline`` is set for open deals in a stage with a limit. Some deals come
back to a stage (free pipelines) and some change amount on the way, so the funnel's
"once per deal, latest entry" rule has something to do.

Rows go in like ``bench/generate.py``: explicit ids, batches, one transaction per batch,
``executemany`` / ``COPY``; sequences moved; ``ANALYZE`` at the end (by the caller).
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import time
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from bench.generate import BATCH, SOURCE, Progress, Writer, _fix_sequences, _iso, _next_id
from rapport.sales import stage_days
from rapport.sales.models import Deal, Lead, LossReason, Pipeline, Stage, StageChange

BIG_PIPELINE = "Bench sales"
PIPELINES: tuple[tuple[str, str, tuple[tuple[str, int | None, list[str]], ...]], ...] = (
    (
        BIG_PIPELINE,
        "strict",
        (
            ("New", 48, []),
            ("Qualified", 120, []),
            ("Meeting", 168, []),
            ("Proposal", 240, ["amount"]),
            ("Negotiation", 240, ["amount"]),
            ("Contract", 168, ["amount"]),
            ("Payment", None, ["amount"]),
        ),
    ),
    (
        "Bench projects",
        "free",
        (
            ("Request", None, []),
            ("Estimate", 168, []),
            ("Offer", None, []),
            ("Approval", 336, []),
            ("Delivery", None, []),
        ),
    ),
    (
        "Bench renewals",
        "free",
        (("Due", 720, []), ("Contacted", None, []), ("Quote sent", 240, []), ("Agreed", None, [])),
    ),
)
LOSS_REASONS = (
    "Bench: price too high",
    "Bench: chose a competitor",
    "Bench: no budget",
    "Bench: no answer",
    "Bench: project postponed",
    "Bench: requirements not met",
)
SOURCES = ("web", "referral", "cold call", "exhibition", "partner", "repeat")
PRODUCTS = (
    "Annual supply",
    "Equipment",
    "Installation",
    "Service contract",
    "Licences",
    "Consulting",
    "Spare parts",
    "Training",
    "Logistics",
    "Pilot project",
)
CURRENCIES = ("RUB", "RUB", "RUB", "EUR", "USD", "AZN")
LEAD_CHANNELS = ("phone", "email", "web_form", "messenger", "referral", "campaign", "manual")

DEAL_COLS = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "custom_fields",
    "responsible_id",
    "team_id",
    "created_by_id",
    "source",
    "title",
    "company_id",
    "person_id",
    "contact_id",
    "pipeline_id",
    "stage_id",
    "amount",
    "currency",
    "expected_close",
    "lead_id",
    "status",
    "loss_reason_id",
    "loss_comment",
    "won_amount",
    "closed_at",
    "stage_entered_at",
    "stage_deadline",
    "stalled_at",
)
CHANGE_COLS = (
    "id",
    "deal_id",
    "pipeline_id",
    "from_stage_id",
    "to_stage_id",
    "from_status",
    "to_status",
    "at",
    "by_id",
    "seconds_in_previous",
    "limit_exceeded",
    "amount",
    "loss_reason_id",
)
LEAD_COLS = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "custom_fields",
    "responsible_id",
    "team_id",
    "created_by_id",
    "source",
    "name",
    "phone",
    "phone_e164",
    "email",
    "company_name",
    "address",
    "text",
    "interest",
    "amount",
    "currency",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "status",
    "reject_reason",
    "company_id",
    "person_id",
    "converted_at",
)
COWORKER_COLS = ("id", "deal_id", "user_id")


def setup_pipelines() -> dict[str, Any]:
    """The three bench pipelines with their stages and the loss reasons (idempotent)."""
    with transaction.atomic():
        out: list[dict[str, Any]] = []
        for order, (name, kind, stages) in enumerate(PIPELINES):
            pipeline, created = Pipeline.objects.get_or_create(
                name=name, defaults={"kind": kind, "order": 10 + order}
            )
            if created:
                for i, (stage_name, limit, required) in enumerate(stages):
                    Stage.objects.create(
                        pipeline=pipeline,
                        name=stage_name,
                        order=(i + 1) * 10,
                        probability=min(95, 10 + i * 15),
                        time_limit_hours=limit,
                        required_fields=required,
                    )
            rows = list(pipeline.stages.order_by("order", "id"))
            out.append(
                {
                    "id": pipeline.pk,
                    "name": name,
                    "strict": pipeline.kind == "strict",
                    "stages": [s.pk for s in rows],
                    "limits": [s.time_limit_hours for s in rows],
                }
            )
        reasons = []
        for i, reason in enumerate(LOSS_REASONS):
            obj, _ = LossReason.objects.get_or_create(name=reason, defaults={"order": i + 1})
            reasons.append(obj.pk)
    return {"pipelines": out, "loss_reasons": reasons}


def _money(value: float) -> decimal.Decimal:
    return decimal.Decimal(int(value)).quantize(decimal.Decimal("0.01"))


def _party_ids(table: str) -> list[tuple[int, int, int]]:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT id, responsible_id, team_id FROM {table} WHERE source = %s ORDER BY id",  # noqa: S608
            [SOURCE],
        )
        return [(int(a), int(b), int(c)) for a, b, c in cur.fetchall()]


def generate_sales(
    *, deals: int, org: dict[str, Any], out: Callable[[str], None], seed: int = 4242
) -> dict[str, Any]:
    """Leads (a fifth of the deals), deals over the three pipelines and their history."""
    rng = random.Random(seed)
    managers: list[tuple[int, int]] = org["managers"]
    team_of = dict(managers)
    setup = setup_pipelines()
    pipes = setup["pipelines"]
    reasons: list[int] = setup["loss_reasons"]
    companies = _party_ids("parties_company")
    people = _party_ids("parties_person")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start_all = time.perf_counter()
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-1000000")
    else:
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")

    w_deal = Writer(Deal, DEAL_COLS)
    w_change = Writer(StageChange, CHANGE_COLS)
    w_lead = Writer(Lead, LEAD_COLS)
    w_cow = Writer(Deal.coworkers.through, COWORKER_COLS)
    deal_id, change_id = _next_id(Deal), _next_id(StageChange)
    lead_id, cow_id = _next_id(Lead), _next_id(Deal.coworkers.through)
    first_deal_id = deal_id

    # The big pipeline holds 60 % of the deals, a third of them open (100k at 500k deals).
    big_total = int(deals * 0.6)
    big_open = big_total // 3
    rest = deals - big_total
    plan: list[tuple[int, bool]] = [(0, True)] * big_open + [(0, False)] * (big_total - big_open)
    for k in range(rest):
        plan.append((1 + k % 2, rng.random() < 0.25))
    rng.shuffle(plan)

    counts = {"open": 0, "won": 0, "lost": 0}
    progress = Progress("deals", deals, out)
    t0 = time.perf_counter()
    for lo in range(0, deals, BATCH):
        d_rows: list[tuple[Any, ...]] = []
        c_rows: list[tuple[Any, ...]] = []
        l_rows: list[tuple[Any, ...]] = []
        cw_rows: list[tuple[Any, ...]] = []
        for pi, is_open in plan[lo : lo + BATCH]:
            pipe = pipes[pi]
            stages: list[int] = pipe["stages"]
            limits: list[int | None] = pipe["limits"]
            last = len(stages) - 1
            # the owner: the company's manager when there is a company, else a random one
            company = rng.choice(companies) if companies and rng.random() < 0.85 else None
            person = rng.choice(people) if people and rng.random() < 0.5 else None
            contact = rng.choice(people) if people and rng.random() < 0.5 else None
            if company is not None:
                resp, team = company[1], company[2]
            else:
                resp, team = rng.choice(managers)
            team = team_of.get(resp, team)
            amount = _money(rng.lognormvariate(12, 1.2) // 1000 * 1000 + 1000)
            currency = rng.choice(CURRENCIES)
            # where the deal ends: open, won (from the last stage in the strict pipeline), lost
            if is_open:
                status = "open"
                created = now - dt.timedelta(seconds=rng.randrange(150 * 86400))
                target = rng.randrange(0, last + 1)
            else:
                status = "won" if rng.random() < 0.45 else "lost"
                created = now - dt.timedelta(seconds=rng.randrange(20 * 86400, 450 * 86400))
                target = last if status == "won" and pipe["strict"] else rng.randrange(0, last + 1)
            # the path through the stages: forward one by one (strict) or with jumps (free),
            # going back a stage and forward again on 30 % of the steps (~6 history rows a
            # deal: 3M at 500k deals)
            path = [0]
            pos = 0
            while pos < target:
                if rng.random() < 0.3 and pos > 0:
                    path.append(pos - 1)  # back one stage, then forward again
                    path.append(pos)
                step = 1 if pipe["strict"] or rng.random() < 0.8 else min(2, target - pos)
                pos += step
                path.append(pos)
            # stays: hours, around the limit, some over it
            stays = []
            for idx in path:
                limit = limits[idx]
                mean = (limit or 120) * 0.7
                stays.append(rng.expovariate(1 / mean) * 3600)
            total = sum(stays[:-1]) + (stays[-1] if status != "open" else 0)
            span = (now - created).total_seconds() - 60
            scale = min(1.0, span / total) if total > 0 else 1.0
            at = created
            did = deal_id
            deal_id += 1
            changes: list[tuple[Any, ...]] = []
            prev_at, prev_idx = created, path[0]
            amount_then = amount
            if rng.random() < 0.1:
                amount_then = _money(float(amount) * rng.uniform(0.6, 1.3))
            for step_no, idx in enumerate(path):
                if step_no == 0:
                    changes.append(
                        (None, stages[idx], "", "open", at, None, False, amount_then, None)
                    )
                else:
                    at = at + dt.timedelta(seconds=int(stays[step_no - 1] * scale) + 1)
                    secs = int((at - prev_at).total_seconds())
                    lim = limits[prev_idx]
                    over = bool(lim and secs > lim * 3600)
                    if step_no > len(path) // 2:
                        amount_then = amount
                    changes.append(
                        (stages[prev_idx], stages[idx], "open", "open")
                        + (at, secs, over, amount_then, None)
                    )
                prev_at, prev_idx = at, idx
            won_amount = None
            closed_at = None
            loss_reason = None
            entered_at = at
            if status != "open":
                at = at + dt.timedelta(seconds=int(stays[-1] * scale) + 1)
                secs = int((at - prev_at).total_seconds())
                lim = limits[prev_idx]
                over = bool(lim and secs > lim * 3600)
                if status == "won":
                    won_amount = _money(float(amount) * rng.uniform(0.85, 1.05))
                else:
                    loss_reason = rng.choice(reasons)
                recorded = won_amount if status == "won" else amount
                changes.append(
                    (stages[prev_idx], stages[prev_idx], "open", status)
                    + (at, secs, over, recorded, loss_reason)
                )
                closed_at = at
                entered_at = at
            stage_idx = path[-1]
            deadline = None
            stalled = None
            if status == "open" and limits[stage_idx]:
                deadline = entered_at + dt.timedelta(hours=limits[stage_idx] or 0)
                if deadline < now:
                    stalled = deadline + dt.timedelta(minutes=5)
            for frm, to, f_status, t_status, when, secs, over, amt, why in changes:
                c_rows.append(
                    (
                        change_id,
                        did,
                        pipe["id"],
                        frm,
                        to,
                        f_status,
                        t_status,
                        _iso(when),
                        resp,
                        secs,
                        over,
                        amt,
                        why,
                    )
                )
                change_id += 1
            lead = None
            if rng.random() < 0.2:
                lead = lead_id
                lead_id += 1
                l_rows.append(
                    (
                        lead,
                        _iso(created - dt.timedelta(hours=rng.randrange(1, 72))),
                        _iso(created),
                        2,
                        None,
                        "{}",
                        resp,
                        team,
                        resp,
                        rng.choice(SOURCES),
                        f"Bench lead {lead}",
                        "",
                        "",
                        f"lead{lead}@bench.example",
                        "",
                        "",
                        "Please call back about prices",
                        rng.choice(PRODUCTS),
                        amount,
                        currency,
                        rng.choice(LEAD_CHANNELS),
                        "",
                        "",
                        "",
                        "converted",
                        "",
                        company[0] if company else None,
                        person[0] if person else None,
                        _iso(created),
                    )
                )
            d_rows.append(
                (
                    did,
                    _iso(created),
                    _iso(at),
                    len(changes),
                    None,
                    "{}",
                    resp,
                    team,
                    resp,
                    rng.choice(SOURCES),
                    f"{rng.choice(PRODUCTS)} #{did}",
                    company[0] if company else None,
                    person[0] if person else None,
                    contact[0] if contact else None,
                    pipe["id"],
                    stages[stage_idx],
                    amount,
                    currency,
                    (created + dt.timedelta(days=rng.randrange(10, 120))).date().isoformat(),
                    lead,
                    status,
                    loss_reason,
                    "",
                    won_amount,
                    _iso(closed_at) if closed_at else None,
                    _iso(entered_at),
                    _iso(deadline) if deadline else None,
                    _iso(stalled) if stalled else None,
                )
            )
            counts[status] += 1
            if rng.random() < 0.1:
                mate = rng.choice(managers)[0]
                if mate != resp:
                    cw_rows.append((cow_id, did, mate))
                    cow_id += 1
        with transaction.atomic():
            w_lead.write(l_rows)
            w_deal.write(d_rows)
            w_change.write(c_rows)
            w_cow.write(cw_rows)
        progress.tick(
            min(lo + BATCH, deals), w_deal.rows + w_change.rows + w_lead.rows + w_cow.rows
        )
    _fix_sequences([Deal, StageChange, Lead, Deal.coworkers.through])
    # the funnel's day counters, as the services would have kept them move by move
    stage_days.rebuild()
    seconds = time.perf_counter() - start_all
    rows = w_deal.rows + w_change.rows + w_lead.rows + w_cow.rows
    out(
        f"  deals: {w_deal.rows:,} deals, {w_change.rows:,} stage changes, {w_lead.rows:,} leads "
        f"in {seconds:,.0f} s ({rows / seconds if seconds else 0:,.0f} rows/s)"
    )
    return {
        "deals_seconds": round(time.perf_counter() - t0, 1),
        "deals": w_deal.rows,
        "stage_changes": w_change.rows,
        "leads": w_lead.rows,
        "deal_coworkers": w_cow.rows,
        "deals_open": counts["open"],
        "deals_won": counts["won"],
        "deals_lost": counts["lost"],
        "big_pipeline_open": big_open,
        "first_deal_id": first_deal_id,
        "rows": rows,
    }
