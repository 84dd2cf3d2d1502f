"""The funnel's day counters: kept move by move, they always equal a recount of the stage
history; periods add up; a reassigned deal takes its counts to its new manager; the loss
reason is the one given when the deal was lost; operators can check and recount them."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.core.errors import FieldErrors, StaleVersion
from rapport.sales import stage_days
from rapport.sales.models import Deal, StageChange, StageDay
from rapport.sales.selectors import funnel
from rapport.sales.services import (
    deal_create,
    deal_lose,
    deal_move,
    deal_reopen,
    deal_update,
    deal_win,
)


def _week() -> dict[str, dt.date]:
    today = timezone.localdate()
    return {"date_from": today - dt.timedelta(days=7), "date_to": today}


operations = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(["strict", "free", "stageless"])),
    st.tuples(st.just("move"), st.integers(min_value=0, max_value=3)),
    st.tuples(st.just("win"), st.sampled_from([None, "250"])),
    st.tuples(st.just("lose"), st.booleans()),
    st.tuples(st.just("reopen"), st.none()),
    st.tuples(st.just("reassign"), st.sampled_from(["alice", "bob", "carol"])),
    st.tuples(st.just("amount"), st.sampled_from(["10", "999.99", None])),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(st.tuples(operations, st.integers(min_value=0, max_value=2)), max_size=20))
def test_counters_kept_move_by_move_equal_a_recount_of_the_history(
    alice, bob, carol, pipelines, ops
):
    users = {"alice": alice, "bob": bob, "carol": carol}
    deals: list[Deal] = []
    for (name, arg), which in ops:
        if name == "create" or not deals:
            kind = arg if name == "create" else "free"
            deals.append(
                deal_create(
                    actor=alice,
                    data={"title": "Walk", "pipeline_id": pipelines[kind].pk, "amount": "100"},
                )
            )
            continue
        deal = Deal.objects.select_related("pipeline").get(pk=deals[which % len(deals)].pk)
        stages = {"strict": pipelines["strict_stages"], "free": pipelines["free_stages"]}.get(
            deal.pipeline.kind, []
        )
        try:
            if name == "move" and stages:
                deal_move(actor=alice, deal=deal, stage=stages[arg % len(stages)], version=None)
            elif name == "win":
                deal_win(actor=alice, deal=deal, amount=arg)
            elif name == "lose":
                reason = pipelines["price"] if arg else pipelines["rival"]
                deal_lose(actor=alice, deal=deal, reason_id=reason.pk)
            elif name == "reopen":
                deal_reopen(actor=alice, deal=deal)
            elif name == "reassign":
                deal_update(actor=alice, deal=deal, data={"responsible_id": users[arg].pk})
            elif name == "amount":
                deal_update(actor=alice, deal=deal, data={"amount": arg})
        except (FieldErrors, StaleVersion):
            pass  # refused: it must have left the counters alone too
    assert stage_days.differences() == []
    created = sum(StageDay.objects.values_list("created", flat=True))
    assert created == Deal.objects.count()  # every deal created so far, once


def _at(deal: Deal, when: dt.datetime) -> None:
    StageChange.objects.filter(deal=deal).update(at=when)


def test_a_months_entries_add_up_to_the_quarters(alice, pipelines, make_deal):
    lead, qualified = pipelines["strict_stages"][:2]
    tz = timezone.get_default_timezone()
    for month in (1, 2, 3):
        for _ in range(month):  # 1 deal in January, 2 in February, 3 in March
            deal = make_deal(alice, f"Month {month}", pipeline=pipelines["strict"])
            deal_move(actor=alice, deal=deal, stage=qualified, version=deal.version)
            _at(deal, dt.datetime(2025, month, 15, 12, tzinfo=tz))
    stage_days.rebuild()

    def entered(date_from: dt.date, date_to: dt.date) -> list[int]:
        report = funnel(
            user=alice, pipeline=pipelines["strict"], date_from=date_from, date_to=date_to
        )
        return [r.entered for r in report.stages]

    months = [
        entered(dt.date(2025, 1, 1), dt.date(2025, 1, 31)),
        entered(dt.date(2025, 2, 1), dt.date(2025, 2, 28)),
        entered(dt.date(2025, 3, 1), dt.date(2025, 3, 31)),
    ]
    quarter = entered(dt.date(2025, 1, 1), dt.date(2025, 3, 31))
    assert months == [[1, 1, 0, 0], [2, 2, 0, 0], [3, 3, 0, 0]]
    assert quarter == [sum(m[i] for m in months) for i in range(4)] == [6, 6, 0, 0]


def test_a_deal_reassigned_to_another_rep_moves_to_his_funnel(alice, bob, carol, pipelines):
    deal = deal_create(
        actor=alice,
        data={
            "title": "Handed over",
            "pipeline_id": pipelines["strict"].pk,
            "amount": "500",
            "responsible_id": bob.pk,
        },
    )
    qualified = pipelines["strict_stages"][1]
    deal = deal_move(actor=alice, deal=deal, stage=qualified, version=deal.version)
    assert [r.entered for r in funnel(user=bob, pipeline=pipelines["strict"], **_week()).stages][
        :2
    ] == [1, 1]
    # when the deal goes to Carol (another team)
    deal_update(actor=None, deal=deal, data={"responsible_id": carol.pk})
    # then Bob's funnel no longer counts it, Carol's does, the manager of team A no longer sees it
    bobs = funnel(user=bob, pipeline=pipelines["strict"], **_week())
    carols = funnel(user=carol, pipeline=pipelines["strict"], **_week())
    alices = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    assert [r.entered for r in bobs.stages] == [0, 0, 0, 0]
    assert [r.entered for r in carols.stages] == [1, 1, 0, 0]
    assert carols.stages[0].amount == decimal.Decimal("500.00")
    assert [r.entered for r in alices.stages] == [0, 0, 0, 0]
    assert stage_days.differences() == []


def test_lost_by_reason_keeps_the_reason_given_each_time(alice, pipelines, make_deal):
    deal = make_deal(alice, "Lost twice", amount="100")
    deal = deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    deal = deal_reopen(actor=alice, deal=deal, version=deal.version)
    deal_lose(actor=alice, deal=deal, reason_id=pipelines["rival"].pk, version=deal.version)
    report = funnel(user=alice, pipeline=pipelines["free"], **_week())
    assert sorted((r["reason"], r["count"]) for r in report.by_reason) == [
        ("Chose a competitor", 1),
        ("Price too high", 1),
    ]
    changes = StageChange.objects.filter(deal=deal, to_status="lost").order_by("id")
    assert [c.loss_reason_id for c in changes] == [pipelines["price"].pk, pipelines["rival"].pk]


def test_operators_can_check_and_recount_the_counters(alice, pipelines, make_deal, capsys):
    deal = make_deal(alice, "Counted", pipeline=pipelines["strict"], amount="70")
    deal_move(actor=alice, deal=deal, stage=pipelines["strict_stages"][1], version=deal.version)
    call_command("funnel_rebuild", "--check")
    assert "agree" in capsys.readouterr().out
    # someone edits the counters by hand
    StageDay.objects.filter(entered__gt=0).update(entered=5)
    with pytest.raises(CommandError, match="differ"):
        call_command("funnel_rebuild", "--check")
    listed = capsys.readouterr().out
    assert '"entered": 5' in listed
    assert '"entered": 1' in listed
    # when recounted
    call_command("funnel_rebuild", "--pipeline", str(pipelines["strict"].pk))
    # then
    assert stage_days.differences() == []
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    assert [r.entered for r in report.stages] == [1, 1, 0, 0]


def test_a_recount_of_one_pipeline_leaves_the_others_alone(alice, pipelines, make_deal):
    make_deal(alice, "Strict one", pipeline=pipelines["strict"])
    make_deal(alice, "Free one", pipeline=pipelines["free"])
    before: Any = sorted(StageDay.objects.values_list("pipeline_id", "stage", "created"))
    stage_days.rebuild(pipeline_id=pipelines["free"].pk)
    assert sorted(StageDay.objects.values_list("pipeline_id", "stage", "created")) == before
