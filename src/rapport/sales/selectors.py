"""Reads of the sales process, all through the user's scope: lists, board, funnel."""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import Team, User
from rapport.core.customfields import custom_field_filter
from rapport.core.errors import FieldErrors
from rapport.core.pagination import Page, keyset_page
from rapport.core.scopes import scope_q
from rapport.sales import stage_days
from rapport.sales.choices import DealStatus, LeadChannel, LeadStatus
from rapport.sales.models import Deal, Lead, LossReason, Pipeline, Stage, StageChange, StageDay


def pipelines(*, active_only: bool = True) -> QuerySet[Pipeline]:
    qs = Pipeline.objects.all()
    return qs.filter(is_active=True) if active_only else qs


def pipeline_get(pipeline_id: int) -> Pipeline:
    obj = Pipeline.objects.filter(pk=pipeline_id).first()
    if obj is None:
        raise Http404
    return obj


def stages_of(pipeline: Pipeline, *, active_only: bool = True) -> list[Stage]:
    qs = pipeline.stages.all()
    if active_only:
        qs = qs.filter(is_active=True)
    return list(qs.order_by("order", "id"))


def loss_reasons(*, active_only: bool = True) -> QuerySet[LossReason]:
    qs = LossReason.objects.all()
    return qs.filter(is_active=True) if active_only else qs


# --- deals ------------------------------------------------------------------------------------


@dataclass
class DealFilters:
    """Filters shared by the deal list, the board and the API (allowlisted names only)."""

    q: str = ""
    pipeline_id: int | None = None
    stage_id: int | None = None
    status: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    source: str = ""
    amount_min: decimal.Decimal | None = None
    amount_max: decimal.Decimal | None = None
    close_from: dt.date | None = None
    close_to: dt.date | None = None
    company_id: int | None = None
    person_id: int | None = None
    overdue: bool = False
    mine: bool = False
    custom: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


def deal_list(
    *, user: User, filters: DealFilters | None = None, action: str = "view"
) -> QuerySet[Deal]:
    """Deals ``user`` may ``action`` (view, or export for downloads), filtered."""
    f = filters or DealFilters()
    qs = Deal.objects.filter(scope_q(user, "deal", action), deleted_at__isnull=not f.deleted)
    if f.pipeline_id:
        qs = qs.filter(pipeline_id=f.pipeline_id)
    if f.stage_id:
        qs = qs.filter(stage_id=f.stage_id)
    if f.status:
        if f.status not in DealStatus.values:
            raise FieldErrors.single("status", _("Unknown status."))
        qs = qs.filter(status=f.status)
    if f.responsible_id:
        qs = qs.filter(responsible_id=f.responsible_id)
    if f.mine:
        # A subquery, not a join: a deal with several co-workers must count once.
        cowork = Deal.coworkers.through.objects.filter(user_id=user.pk).values("deal_id")
        qs = qs.filter(Q(responsible_id=user.pk) | Q(pk__in=cowork))
    if f.team_id:
        team = Team.objects.filter(pk=f.team_id).first()
        qs = qs.filter(team__path__startswith=team.path) if team else qs.none()
    if f.source:
        qs = qs.filter(source=f.source)
    if f.amount_min is not None:
        qs = qs.filter(amount__gte=f.amount_min)
    if f.amount_max is not None:
        qs = qs.filter(amount__lte=f.amount_max)
    if f.close_from:
        qs = qs.filter(expected_close__gte=f.close_from)
    if f.close_to:
        qs = qs.filter(expected_close__lte=f.close_to)
    if f.company_id:
        qs = qs.filter(company_id=f.company_id)
    if f.person_id:
        qs = qs.filter(Q(person_id=f.person_id) | Q(contact_id=f.person_id))
    if f.overdue:
        qs = qs.filter(status=DealStatus.OPEN, stage_deadline__lt=timezone.now())
    for name, value in f.custom.items():
        qs = qs.filter(custom_field_filter(object_type="deal", name=name, value=value))
    if f.q:
        qs = qs.filter(title__icontains=f.q)
    return qs.select_related("company", "person", "responsible", "stage", "pipeline")


def deal_get(*, user: User, deal_id: int, include_deleted: bool = False) -> Deal:
    """The deal if ``user`` may see it; 404 otherwise, exactly as if it did not exist."""
    qs = Deal.objects.filter(scope_q(user, "deal", "view"), pk=deal_id)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    obj = qs.select_related(
        "company", "person", "contact", "responsible", "team", "stage", "pipeline", "loss_reason"
    ).first()
    if obj is None:
        raise Http404
    return obj


def deal_history(*, user: User, deal: Deal) -> QuerySet[StageChange]:
    deal_get(user=user, deal_id=deal.pk, include_deleted=True)
    return deal.stage_changes.select_related("from_stage", "to_stage", "by").order_by("at", "id")


def deals_for_party(*, user: User, object_type: str, object_id: int) -> QuerySet[Deal]:
    f = (
        DealFilters(company_id=object_id)
        if object_type == "company"
        else DealFilters(person_id=object_id)
    )
    return deal_list(user=user, filters=f)


# --- board ------------------------------------------------------------------------------------


CARD_RELATED = ("company", "person", "responsible")
# What the board page's cards show (sales/_card.html), for ``board(..., fields=CARD_FIELDS)``:
# the rest of the deal and its client (custom fields, notes) is neither read nor decoded for
# 200 cards. The API's cards carry more and load whole deals.
CARD_FIELDS = (
    "id",
    "version",
    "title",
    "pipeline_id",
    "stage_id",
    "status",
    "amount",
    "currency",
    "stage_entered_at",
    "stage_deadline",
    "company__short_name",
    "person__last_name",
    "person__first_name",
    "person__middle_name",
    "responsible__username",
    "responsible__first_name",
    "responsible__last_name",
)


@dataclass
class Column:
    stage: Stage
    count: int
    total: decimal.Decimal
    page: Page[Deal]


def board(
    *,
    user: User,
    pipeline: Pipeline,
    filters: DealFilters | None = None,
    size: int | None = None,
    fields: tuple[str, ...] = (),
) -> list[Column]:
    """The open deals of a pipeline, a column per stage: count and sum of all, first N cards
    (``fields``: only these of each card, e.g. ``CARD_FIELDS``)."""
    f = filters or DealFilters()
    f.pipeline_id = pipeline.pk
    f.status = DealStatus.OPEN
    size = size or settings.BOARD_COLUMN_SIZE
    # A column's cards share its stage and pipeline: set them instead of joining them.
    qs = deal_list(user=user, filters=f).select_related(None).select_related(*CARD_RELATED)
    totals = {
        row["stage_id"]: row
        for row in qs.order_by().values("stage_id").annotate(n=Count("*"), s=Sum("amount"))
    }
    columns = []
    for stage in stages_of(pipeline):
        agg = totals.get(stage.pk, {})
        page = (
            keyset_page(_only(qs.filter(stage=stage), fields), sort="-id", cursor=None, size=size)
            if agg
            else Page(items=[], next_cursor=None)
        )
        for deal in page.items:
            deal.stage, deal.pipeline = stage, pipeline
        columns.append(
            Column(
                stage=stage,
                count=int(agg.get("n") or 0),
                total=agg.get("s") or decimal.Decimal(0),
                page=page,
            )
        )
    return columns


def board_column(
    *,
    user: User,
    stage: Stage,
    filters: DealFilters | None = None,
    cursor: str | None = None,
    size: int | None = None,
    fields: tuple[str, ...] = (),
) -> Page[Deal]:
    f = filters or DealFilters()
    f.pipeline_id = stage.pipeline_id
    f.stage_id = stage.pk
    f.status = DealStatus.OPEN
    qs = deal_list(user=user, filters=f).select_related(None).select_related(*CARD_RELATED)
    qs = _only(qs, fields)
    page = keyset_page(qs, sort="-id", cursor=cursor, size=size or settings.BOARD_COLUMN_SIZE)
    pipeline = Pipeline.objects.get(pk=stage.pipeline_id) if page.items else None
    for deal in page.items:
        deal.stage, deal.pipeline = stage, pipeline  # type: ignore[assignment]
    return page


def _only(qs: QuerySet[Deal], fields: tuple[str, ...]) -> QuerySet[Deal]:
    return qs.only(*fields) if fields else qs


def column_totals(
    *, user: User, stage: Stage, filters: DealFilters | None = None
) -> dict[str, Any]:
    f = filters or DealFilters()
    f.pipeline_id = stage.pipeline_id
    f.stage_id = stage.pk
    f.status = DealStatus.OPEN
    agg = deal_list(user=user, filters=f).order_by().aggregate(n=Count("*"), s=Sum("amount"))
    return {"count": agg["n"] or 0, "total": agg["s"] or decimal.Decimal(0)}


# --- leads ------------------------------------------------------------------------------------


@dataclass
class LeadFilters:
    q: str = ""
    status: str = ""
    channel: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    created_from: dt.date | None = None
    created_to: dt.date | None = None
    deleted: bool = False


def lead_list(
    *, user: User, filters: LeadFilters | None = None, action: str = "view"
) -> QuerySet[Lead]:
    """Leads ``user`` may ``action`` (view, or export for downloads), filtered."""
    f = filters or LeadFilters()
    qs = Lead.objects.filter(scope_q(user, "lead", action), deleted_at__isnull=not f.deleted)
    if f.status:
        if f.status not in LeadStatus.values:
            raise FieldErrors.single("status", _("Unknown status."))
        qs = qs.filter(status=f.status)
    if f.channel:
        if f.channel not in LeadChannel.values:
            raise FieldErrors.single("channel", _("Unknown channel."))
        qs = qs.filter(channel=f.channel)
    if f.responsible_id:
        qs = qs.filter(responsible_id=f.responsible_id)
    if f.team_id:
        team = Team.objects.filter(pk=f.team_id).first()
        qs = qs.filter(team__path__startswith=team.path) if team else qs.none()
    if f.created_from:
        qs = qs.filter(created_at__date__gte=f.created_from)
    if f.created_to:
        qs = qs.filter(created_at__date__lte=f.created_to)
    if f.q:
        qs = qs.filter(
            Q(name__icontains=f.q)
            | Q(company_name__icontains=f.q)
            | Q(email__icontains=f.q)
            | Q(phone__icontains=f.q)
        )
    return qs.select_related("responsible", "company", "person")


def lead_get(*, user: User, lead_id: int, include_deleted: bool = False) -> Lead:
    qs = Lead.objects.filter(scope_q(user, "lead", "view"), pk=lead_id)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    obj = qs.select_related("responsible", "team", "company", "person").first()
    if obj is None:
        raise Http404
    return obj


# --- funnel -----------------------------------------------------------------------------------


@dataclass
class FunnelStage:
    stage: Stage
    entered: int
    amount: decimal.Decimal
    conversion: float | None  # share of this stage's entries that reached the next stage
    lost: int
    lost_amount: decimal.Decimal
    avg_hours: float | None
    limit_hours: int | None
    over_limit: int


@dataclass
class Funnel:
    pipeline: Pipeline
    date_from: dt.date
    date_to: dt.date
    stages: list[FunnelStage]
    created: int
    won: int
    won_amount: decimal.Decimal
    lost: int
    lost_amount: decimal.Decimal
    overall: float | None  # won / deals that entered the first stage
    by_reason: list[dict[str, Any]]
    by_manager: list[dict[str, Any]]
    by_team: list[dict[str, Any]]
    by_source: list[dict[str, Any]]


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def funnel(*, user: User, pipeline: Pipeline, date_from: dt.date, date_to: dt.date) -> Funnel:
    """Entries per stage, conversion, losses by stage and reason, results by manager, team
    and source, time in stage against its limit — for moves made in the period.

    A stage's entries count each deal once, in the period it first entered the stage, at
    its amount then (so periods add up); lost amounts are the amounts recorded when the
    deals were lost, by the reason given then. Days are the company's (``TIME_ZONE``)."""
    if date_to < date_from:
        raise FieldErrors.single("date_to", _("The end of the period is before its start."))
    # The moves' side comes from the day counters (sales/stage_days.py), scoped like deals.
    counted = (
        StageDay.objects.filter(
            scope_q(user, "deal", "view", owner_field="responsible", team_field="team"),
            pipeline=pipeline,
            day__gte=date_from,
            day__lte=date_to,
        )
        .values("stage", "loss_reason")
        .annotate(**{name: Sum(name) for name in stage_days.COUNTERS})
        .order_by()
    )
    zero = dict.fromkeys(stage_days.COUNTERS, 0)
    per_stage: dict[int, dict[str, Any]] = {}
    per_reason: dict[int, list[Any]] = {}
    for row in counted:
        sums = per_stage.setdefault(row["stage"], dict(zero))
        for name in stage_days.COUNTERS:
            sums[name] += row[name] or 0
        if row["lost"]:
            reason = per_reason.setdefault(row["loss_reason"], [0, decimal.Decimal(0)])
            reason[0] += row["lost"]
            reason[1] += _money(row["lost_amount"])
    totals = dict(zero)
    for sums in per_stage.values():
        for name in stage_days.COUNTERS:
            totals[name] += sums[name]
    stages = stages_of(pipeline, active_only=False)
    rows: list[FunnelStage] = []
    for i, stage in enumerate(stages):
        sums = per_stage.get(stage.pk, zero)
        n = int(sums["entered"])
        nxt = per_stage.get(stages[i + 1].pk, zero)["entered"] if i + 1 < len(stages) else None
        if not stage.is_active and not n and not sums["lost"]:
            continue
        rows.append(
            FunnelStage(
                stage=stage,
                entered=n,
                amount=_money(sums["entered_amount"]),
                conversion=_ratio(int(nxt), n) if nxt is not None else None,
                lost=int(sums["lost"]),
                lost_amount=_money(sums["lost_amount"]),
                avg_hours=round(sums["timed_seconds"] / sums["timed"] / 3600, 1)
                if sums["timed"]
                else None,
                limit_hours=stage.time_limit_hours,
                over_limit=int(sums["over"]),
            )
        )
    won_n, created = int(totals["won"]), int(totals["created"])
    reasons = {r.pk: r.name for r in LossReason.objects.filter(pk__in=list(per_reason))}
    by_reason = sorted(
        (
            {"reason": reasons.get(pk, ""), "count": int(n), "amount": amount}
            for pk, (n, amount) in per_reason.items()
        ),
        key=lambda r: (-r["count"], r["reason"]),
    )
    first_entered = rows[0].entered if rows else created
    tz = timezone.get_default_timezone()
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    deals = Deal.objects.filter(
        scope_q(user, "deal", "view"), pipeline=pipeline, deleted_at__isnull=True
    ).filter(Q(status=DealStatus.OPEN) | Q(closed_at__gte=start, closed_at__lt=end))
    # One pass over the deals, grouped by manager, team and source; then each key's top 50.
    groups = list(
        deals.values("responsible", "team", "source")
        .annotate(
            open=Count("id", filter=Q(status=DealStatus.OPEN)),
            won=Count("id", filter=Q(status=DealStatus.WON)),
            lost=Count("id", filter=Q(status=DealStatus.LOST)),
            won_amount=Sum("won_amount", filter=Q(status=DealStatus.WON)),
        )
        .order_by()
    )

    def results(key: str) -> list[dict[str, Any]]:
        merged: dict[Any, dict[str, Any]] = {}
        for g in groups:
            row = merged.setdefault(
                g[key], {key: g[key], "open": 0, "won": 0, "lost": 0, "won_amount": None}
            )
            row["open"] += g["open"]
            row["won"] += g["won"]
            row["lost"] += g["lost"]
            if g["won_amount"] is not None:
                row["won_amount"] = (row["won_amount"] or 0) + g["won_amount"]
        return sorted(merged.values(), key=lambda r: (-r["won"], -r["open"]))[:50]

    return Funnel(
        pipeline=pipeline,
        date_from=date_from,
        date_to=date_to,
        stages=rows,
        created=created,
        won=won_n,
        won_amount=_money(totals["won_amount"]),
        lost=int(totals["lost"]),
        lost_amount=_money(totals["lost_amount"]),
        overall=_ratio(won_n, first_entered),
        by_reason=by_reason,
        by_manager=_named(results("responsible"), "responsible", User),
        by_team=_named(results("team"), "team", Team),
        by_source=[{**r, "name": r["source"]} for r in results("source")],
    )


def _money(value: Any) -> decimal.Decimal:
    """A sum of amounts as money (SQLite adds them up as floats)."""
    return decimal.Decimal(str(value or 0)).quantize(decimal.Decimal("0.01"))


def _named(
    rows: list[dict[str, Any]], key: str, model: type[User] | type[Team]
) -> list[dict[str, Any]]:
    ids = [r[key] for r in rows if r[key]]
    names = {o.pk: str(o) for o in model.objects.filter(pk__in=ids)}
    return [{**r, "name": names.get(r[key], "")} for r in rows]
