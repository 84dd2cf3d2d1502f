"""Whatever users do to a deal, in whatever order, its stage history tells the same story as
the deal: the last change ends where the deal is, each change starts where the previous one
ended, times in stage are the gaps between changes, and refused operations leave no trace."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.core.errors import FieldErrors, StaleVersion
from rapport.sales.models import Deal, Stage, StageChange
from rapport.sales.services import deal_create, deal_lose, deal_move, deal_reopen, deal_win

operations = st.one_of(
    st.tuples(st.just("move"), st.integers(min_value=0, max_value=4)),  # 4: another pipeline
    st.tuples(st.just("win"), st.sampled_from([None, "250", "-1"])),
    st.tuples(st.just("lose"), st.booleans()),  # with or without a reason
    st.tuples(st.just("reopen"), st.none()),
    st.tuples(st.just("stale_move"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("time_passes"), st.integers(min_value=1, max_value=72)),
)


def _let_time_pass(deal: Deal, hours: int) -> None:
    """Shift the deal's whole past back by ``hours``, as if that much time had gone by."""
    delta = dt.timedelta(hours=hours)
    for change in StageChange.objects.filter(deal=deal):
        StageChange.objects.filter(pk=change.pk).update(at=change.at - delta)
    row = Deal.objects.get(pk=deal.pk)
    Deal.objects.filter(pk=deal.pk).update(
        stage_entered_at=row.stage_entered_at - delta,
        stage_deadline=row.stage_deadline - delta if row.stage_deadline else None,
    )


def _apply(op: tuple[str, Any], deal: Deal, ctx: dict[str, Any]) -> None:
    name, arg = op
    actor, stages = ctx["actor"], ctx["stages"]
    if name == "move":
        target = stages[arg] if arg < len(stages) else ctx["foreign"]
        deal_move(actor=actor, deal=deal, stage=target, version=deal.version)
    elif name == "stale_move":
        target = stages[arg] if arg < len(stages) else ctx["foreign"]
        deal_move(actor=actor, deal=deal, stage=target, version=deal.version - 1)
    elif name == "win":
        deal_win(actor=actor, deal=deal, amount=arg, version=deal.version)
    elif name == "lose":
        reason = ctx["reason"].pk if arg else None
        deal_lose(actor=actor, deal=deal, reason_id=reason, version=deal.version)
    elif name == "reopen":
        deal_reopen(actor=actor, deal=deal, version=deal.version)
    else:
        _let_time_pass(deal, arg)


def _check_history(deal: Deal) -> None:
    changes = list(StageChange.objects.filter(deal=deal).order_by("at", "id"))
    assert changes, "a deal always has its creation in the history"
    first = changes[0]
    assert (first.from_stage_id, first.from_status) == (None, "")
    assert first.seconds_in_previous is None
    last = changes[-1]
    assert (last.to_stage_id, last.to_status) == (deal.stage_id, deal.status)
    assert deal.stage_entered_at == last.at
    limits = dict(
        Stage.objects.filter(pipeline=deal.pipeline).values_list("pk", "time_limit_hours")
    )
    for prev, cur in zip(changes, changes[1:], strict=False):
        assert (cur.from_stage_id, cur.from_status) == (prev.to_stage_id, prev.to_status)
        assert (cur.from_stage_id, cur.from_status) != (cur.to_stage_id, cur.to_status)
        assert cur.pipeline_id == deal.pipeline_id
        assert cur.at >= prev.at
        assert cur.seconds_in_previous is not None
        assert cur.seconds_in_previous >= 0
        gap = cur.at - prev.at
        assert cur.seconds_in_previous == int(gap.total_seconds())
        limit = limits.get(prev.to_stage_id) if prev.to_status == "open" else None
        assert cur.limit_exceeded == bool(limit and gap > dt.timedelta(hours=limit))
        if cur.to_status == "won":
            assert cur.amount is not None
    if deal.status == "won":
        assert last.amount == deal.won_amount
    if deal.status == "lost":
        assert deal.loss_reason_id is not None
    if deal.pipeline.kind == "stageless":
        assert deal.stage_id is None
        assert all(c.to_stage_id is None for c in changes)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(["strict", "free", "stageless"]),
    amount=st.sampled_from([None, "100"]),
    with_company=st.booleans(),
    ops=st.lists(operations, max_size=12),
)
def test_random_operations_never_leave_the_history_inconsistent(
    alice, pipelines, make_company, kind, amount, with_company, ops
):
    # given a fresh deal for this example
    pipeline = pipelines[kind]
    stages = {"strict": pipelines["strict_stages"], "free": pipelines["free_stages"]}.get(kind, [])
    foreign = pipelines["free_stages"][0] if kind == "strict" else pipelines["strict_stages"][0]
    data: dict[str, Any] = {"title": "Random walk", "pipeline_id": pipeline.pk, "amount": amount}
    if with_company:
        data["company_id"] = make_company(alice, "Walker Ltd").pk
    deal = deal_create(actor=alice, data=data)
    ctx = {"actor": alice, "stages": stages, "foreign": foreign, "reason": pipelines["price"]}
    _check_history(deal)
    for op in ops:
        before = Deal.objects.get(pk=deal.pk)
        rows_before = StageChange.objects.filter(deal=deal).count()
        # when
        try:
            _apply(op, before, ctx)
            refused = False
        except (FieldErrors, StaleVersion):
            refused = True
        # then
        after = Deal.objects.select_related("pipeline").get(pk=deal.pk)
        added = StageChange.objects.filter(deal=deal).count() - rows_before
        changed = (after.stage_id, after.status) != (before.stage_id, before.status)
        if refused:
            assert op[0] != "time_passes"
            assert added == 0
            assert (after.stage_id, after.status, after.version) == (
                before.stage_id,
                before.status,
                before.version,
            )
        else:
            assert added == (1 if changed else 0)
            assert after.version == before.version + (1 if changed else 0)
        if op[0] == "stale_move":
            assert refused
        _check_history(after)
