"""The funnel's day counters (``StageDay``): what each move of a deal adds, kept with every
move and transfer, and rebuilt from the stage history.

``_deltas`` is the one place that says what a move counts for; recording a move, moving a
deal's counters to its new manager and rebuilding everything all go through it, so the
counters always equal a rebuild (``tests/sales/test_stage_days.py`` checks it over random
histories). What a move adds:

- on the stage it enters (the "to" side): ``created`` for the creation row, and ``entered``
  (with the amount then) the first time the deal enters that stage while open — a deal
  coming back to a stage is not entered again, so periods add up (January + February =
  January to February);
- on the stage it leaves (the "from" side, with the loss reason of a losing move): the time
  it spent there when it was open (``timed``, ``timed_seconds``, ``over`` its limit), and
  ``won`` / ``lost`` with the amounts when the move closes the deal.

Days are the company's (``TIME_ZONE``); the deal's manager and team are its current ones
(scopes filter the counters as they filter deals), so reassigning a deal moves its counters.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from rapport.core.bulk import rows_insert
from rapport.sales.choices import DealStatus

# A move as the counters read it (these StageChange fields, in this order).
ROW_FIELDS = (
    "pipeline_id",
    "at",
    "from_stage_id",
    "to_stage_id",
    "from_status",
    "to_status",
    "seconds_in_previous",
    "limit_exceeded",
    "amount",
    "loss_reason_id",
)
KEY = ("pipeline_id", "day", "stage", "responsible", "team", "loss_reason")
COUNTERS = (
    "created",
    "entered",
    "entered_amount",
    "timed",
    "timed_seconds",
    "over",
    "won",
    "won_amount",
    "lost",
    "lost_amount",
)
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
_CLOSED = (DealStatus.WON, DealStatus.LOST)

Key = tuple[int, dt.date, int, int, int, int]
Deltas = dict[Key, list[Any]]


def _entered(row: Sequence[Any]) -> int | None:
    """The stage this move enters the deal into, if it is an entry at all (an open deal
    arriving in a stage from elsewhere; not a reopening or a close in the same stage)."""
    _p, _at, from_stage, to_stage, _fs, to_status = row[:6]
    if to_status == DealStatus.OPEN and to_stage is not None and from_stage != to_stage:
        return int(to_stage)
    return None


def _deltas(
    rows: Iterable[Sequence[Any]],
    *,
    responsible: int | None,
    team: int | None,
    seen: set[int],
    out: Deltas | None = None,
) -> Deltas:
    """What ``rows`` (one deal's moves in order, ``ROW_FIELDS``) add to the counters.
    ``seen``: the stages the deal entered before these rows (updated in place)."""
    out = {} if out is None else out
    tz = timezone.get_default_timezone()
    resp, tm = responsible or 0, team or 0

    def add(key: Key, **values: Any) -> None:
        counters = out.get(key)
        if counters is None:
            counters = out[key] = [0] * len(COUNTERS)
        for name, value in values.items():
            counters[_INDEX[name]] += value

    for row in rows:
        pipeline, at, from_stage, to_stage, from_status, to_status = row[:6]
        seconds, exceeded, amount, reason = row[6:10]
        day = at.astimezone(tz).date()
        money = amount if amount is not None else decimal.Decimal(0)
        into = (pipeline, day, to_stage or 0, resp, tm, 0)
        if not from_status:
            add(into, created=1)
        stage = _entered(row)
        if stage is not None and stage not in seen:
            seen.add(stage)
            add(into, entered=1, entered_amount=money)
        if not from_status:
            continue
        out_of = (pipeline, day, from_stage or 0, resp, tm, reason or 0)
        if from_status == DealStatus.OPEN and seconds is not None:
            add(out_of, timed=1, timed_seconds=int(seconds), over=1 if exceeded else 0)
        if to_status in _CLOSED and from_status not in _CLOSED:
            if to_status == DealStatus.WON:
                add(out_of, won=1, won_amount=money)
            else:
                add(out_of, lost=1, lost_amount=money)
    return out


def _apply(deltas: Deltas, sign: int = 1) -> None:
    """Add ``deltas`` (times ``sign``) to the counters: one upsert for all keys."""
    deltas = {k: v for k, v in deltas.items() if any(v)}
    if not deltas:
        return
    model = _models()[1]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    key_cols = [qn(model._meta.get_field(n.removesuffix("_id")).column) for n in KEY]
    cols = [qn(model._meta.get_field(n).column) for n in COUNTERS]
    one = "(" + ", ".join(["%s"] * (len(KEY) + len(COUNTERS))) + ")"
    params: list[Any] = []
    for key, counters in deltas.items():
        params += [*key, *(sign * v for v in counters)]
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in cols)
    sql = (
        f"INSERT INTO {table} ({', '.join(key_cols + cols)}) VALUES "  # noqa: S608 - names from the model
        + ", ".join([one] * len(deltas))
        + f" ON CONFLICT ({', '.join(key_cols)}) DO UPDATE SET {sets}"
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)


def _models() -> tuple[Any, Any]:
    from rapport.sales.models import StageChange, StageDay

    return StageChange, StageDay


def record(change: Any, *, responsible: int | None, team: int | None) -> None:
    """Count a move just written (a ``StageChange``) for the deal's manager and team."""
    row = [getattr(change, f) for f in ROW_FIELDS]
    seen: set[int] = set()
    stage = _entered(row)
    if stage is not None:
        earlier = (
            _models()[0]
            .objects.filter(deal_id=change.deal_id, to_stage_id=stage, pk__lt=change.pk)
            .order_by()
            .values_list(*ROW_FIELDS)
        )
        seen = {s for r in earlier if (s := _entered(r)) is not None}
    _apply(_deltas([row], responsible=responsible, team=team, seen=seen))


def transfer(
    deal_id: int, *, old: tuple[int | None, int | None], new: tuple[int | None, int | None]
) -> None:
    """The deal's manager or team changed: its counters go from the old pair to the new."""
    if old == new:
        return
    rows = list(
        _models()[0].objects.filter(deal_id=deal_id).order_by("id").values_list(*ROW_FIELDS)
    )
    _apply(_deltas(rows, responsible=old[0], team=old[1], seen=set()), -1)
    _apply(_deltas(rows, responsible=new[0], team=new[1], seen=set()))


def _recount(changes: Any) -> Deltas:
    """The counters of the moves ``changes`` (a StageChange query), deal by deal."""
    out: Deltas = {}
    current: int | None = None
    seen: set[int] = set()
    rows = (
        changes.order_by("deal_id", "id")
        .values_list("deal_id", "deal__responsible_id", "deal__team_id", *ROW_FIELDS)
        .iterator(chunk_size=20_000)
    )
    for deal_id, responsible, team, *row in rows:
        if deal_id != current:
            current, seen = deal_id, set()
        _deltas([row], responsible=responsible, team=team, seen=seen, out=out)
    return out


def rebuild(*, pipeline_id: int | None = None, models: tuple[Any, Any] | None = None) -> int:
    """Recount the counters (of one pipeline, or all) from the stage history; returns the
    number of counter rows. Moves made meanwhile wait for it (PostgreSQL: the counters'
    table is locked; SQLite: one writer). ``models``: (StageChange, StageDay), for a
    migration's historical models."""
    change_model, day_model = models or _models()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute(
                    f"LOCK TABLE {connection.ops.quote_name(day_model._meta.db_table)} "
                    "IN EXCLUSIVE MODE"
                )
        days = day_model.objects.all()
        changes = change_model.objects.all()
        if pipeline_id is not None:
            days = days.filter(pipeline_id=pipeline_id)
            changes = changes.filter(pipeline_id=pipeline_id)
        days.delete()
        out = _recount(changes)
        names = [*KEY, *COUNTERS]
        rows_insert(day_model, names, [(*k, *v) for k, v in out.items() if any(v)])
        return len(out)


def differences(*, pipeline_id: int | None = None) -> list[dict[str, Any]]:
    """Counter rows that differ from a recount of the history (empty when they agree):
    for ``rapport funnel_rebuild --check``."""
    change_model, day_model = _models()
    changes = change_model.objects.all()
    days = day_model.objects.all()
    if pipeline_id is not None:
        changes = changes.filter(pipeline_id=pipeline_id)
        days = days.filter(pipeline_id=pipeline_id)
    expected = _recount(changes)
    stored: Deltas = {}
    for values in days.values_list(*KEY, *COUNTERS).iterator(chunk_size=20_000):
        stored[tuple(values[: len(KEY)])] = list(values[len(KEY) :])
    out = []
    for key in sorted(set(expected) | set(stored), key=str):
        want = expected.get(key, [0] * len(COUNTERS))
        have = stored.get(key, [0] * len(COUNTERS))
        if [_number(v) for v in want] != [_number(v) for v in have]:
            out.append(
                {
                    **dict(zip(KEY, key, strict=True)),
                    "expected": dict(zip(COUNTERS, want, strict=True)),
                    "stored": dict(zip(COUNTERS, have, strict=True)),
                }
            )
    return out


def _number(value: Any) -> decimal.Decimal:
    return decimal.Decimal(str(value)).quantize(decimal.Decimal("0.01"))
