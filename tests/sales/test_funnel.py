"""The funnel report: entries, conversion, losses, results and time in stage for a period."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from django.utils import timezone

from rapport.core.errors import FieldErrors
from rapport.sales import stage_days
from rapport.sales.models import Deal, StageChange
from rapport.sales.selectors import funnel
from rapport.sales.services import deal_lose, deal_move, deal_win

HOUR = dt.timedelta(hours=1)


def _stayed(deal, hours, limit_hours=None):
    """As if the deal had entered its current stage ``hours`` ago."""
    entered = timezone.now() - hours * HOUR
    Deal.objects.filter(pk=deal.pk).update(
        stage_entered_at=entered,
        stage_deadline=entered + limit_hours * HOUR if limit_hours else None,
    )


def _week():
    today = timezone.localdate()
    return {"date_from": today - dt.timedelta(days=7), "date_to": today}


@pytest.fixture
def season(alice, bob, pipelines, make_deal, make_company):
    """Four strict deals this week: A won from Contract, B stuck in Proposal after overrunning
    "Qualified", C lost in Qualified (price), D lost in Lead (rival)."""
    lead, qualified, proposal, contract = pipelines["strict_stages"]
    company = make_company(alice, "Nordwind LLC")
    bobs = make_company(bob, "Bob's client")
    strict = pipelines["strict"]

    def move(deal, stage, **kw):
        return deal_move(actor=alice, deal=deal, stage=stage, version=deal.version, **kw)

    a = make_deal(alice, "A", pipeline=strict, amount="1000", company_id=company.pk)
    b = make_deal(bob, "B", pipeline=strict, amount="400", company_id=bobs.pk)
    c = make_deal(alice, "C", pipeline=strict, amount="300")
    d = make_deal(alice, "D", pipeline=strict, amount="200")
    a, b, c = move(a, qualified), move(b, qualified), move(c, qualified)
    _stayed(a, 10, limit_hours=48)
    _stayed(b, 60, limit_hours=48)
    _stayed(c, 20, limit_hours=48)
    a, b = move(a, proposal), move(b, proposal)
    a = move(a, contract)
    deal_win(actor=alice, deal=a, amount="900", version=a.version)
    deal_lose(actor=alice, deal=c, reason_id=pipelines["price"].pk, version=c.version)
    deal_lose(actor=alice, deal=d, reason_id=pipelines["rival"].pk, version=d.version)
    return {"a": a, "b": b, "c": c, "d": d}


def test_the_funnel_counts_entries_and_conversion_per_stage(alice, pipelines, season):
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    rows = {r.stage.name: r for r in report.stages}
    assert [r.stage.name for r in report.stages] == ["Lead", "Qualified", "Proposal", "Contract"]
    assert [r.entered for r in report.stages] == [4, 3, 2, 1]
    assert rows["Lead"].conversion == 0.75
    assert rows["Qualified"].conversion == pytest.approx(0.6667)
    assert rows["Proposal"].conversion == 0.5
    assert rows["Contract"].conversion is None
    assert rows["Lead"].amount == decimal.Decimal("1900.00")
    assert rows["Proposal"].amount == decimal.Decimal("1400.00")
    assert report.created == 4
    assert report.overall == 0.25


def test_the_funnel_shows_where_and_why_deals_are_lost(alice, pipelines, season):
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    rows = {r.stage.name: r for r in report.stages}
    assert (rows["Lead"].lost, rows["Lead"].lost_amount) == (1, decimal.Decimal("200.00"))
    assert (rows["Qualified"].lost, rows["Qualified"].lost_amount) == (
        1,
        decimal.Decimal("300.00"),
    )
    assert (rows["Proposal"].lost, rows["Contract"].lost) == (0, 0)
    assert (report.lost, report.lost_amount) == (2, decimal.Decimal("500.00"))
    assert sorted((r["reason"], r["count"], r["amount"]) for r in report.by_reason) == [
        ("Chose a competitor", 1, decimal.Decimal("200.00")),
        ("Price too high", 1, decimal.Decimal("300.00")),
    ]


def test_the_funnel_counts_won_deals_at_their_actual_amount(alice, pipelines, season):
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    assert report.won == 1
    assert report.won_amount == decimal.Decimal("900.00")


def test_the_funnel_averages_time_in_stage_against_its_limit(alice, pipelines, season):
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    qualified = next(r for r in report.stages if r.stage.name == "Qualified")
    # A stayed 10 h, B 60 h (over the 48 h limit), C 20 h before it was lost
    assert qualified.avg_hours == pytest.approx(30.0, abs=0.1)
    assert qualified.limit_hours == 48
    assert qualified.over_limit == 1
    contract = next(r for r in report.stages if r.stage.name == "Contract")
    assert contract.over_limit == 0


def test_the_funnel_reports_results_by_manager_and_source(alice, bob, pipelines, season):
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    by_manager = {r["name"]: (r["open"], r["won"], r["lost"]) for r in report.by_manager}
    assert by_manager == {"Alice": (0, 1, 2), "Bob": (1, 0, 0)}
    won = next(r for r in report.by_manager if r["name"] == "Alice")
    assert won["won_amount"] == decimal.Decimal("900.00")
    assert sum(r["open"] + r["won"] + r["lost"] for r in report.by_team) == 4


def test_a_rep_sees_the_funnel_of_his_own_deals_only(bob, pipelines, season):
    report = funnel(user=bob, pipeline=pipelines["strict"], **_week())
    assert [r.entered for r in report.stages] == [1, 1, 1, 0]
    assert (report.created, report.won, report.lost) == (1, 0, 0)
    assert report.by_reason == []


def test_a_deal_coming_back_to_a_stage_is_counted_once(alice, pipelines, make_deal):
    lead, qualified = pipelines["strict_stages"][:2]
    deal = make_deal(alice, "Back and forth", pipeline=pipelines["strict"])
    for stage in (qualified, lead, qualified):
        deal = deal_move(actor=alice, deal=deal, stage=stage, version=deal.version)
    report = funnel(user=alice, pipeline=pipelines["strict"], **_week())
    assert [r.entered for r in report.stages] == [1, 1, 0, 0]


def test_moves_outside_the_period_are_not_counted(alice, pipelines, make_deal):
    lead, qualified = pipelines["strict_stages"][:2]
    tz = timezone.get_current_timezone()
    date_from, date_to = dt.date(2024, 3, 1), dt.date(2024, 3, 31)
    deals = {}
    for title in ("before", "first moment", "last moment", "after"):
        deal = make_deal(alice, title, pipeline=pipelines["strict"])
        deals[title] = deal_move(actor=alice, deal=deal, stage=qualified, version=deal.version)
    at = {
        "before": dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=tz),
        "first moment": dt.datetime(2024, 3, 1, 0, 0, 0, tzinfo=tz),
        "last moment": dt.datetime(2024, 3, 31, 23, 59, 59, tzinfo=tz),
        "after": dt.datetime(2024, 4, 1, 0, 0, 0, tzinfo=tz),
    }
    for title, when in at.items():
        StageChange.objects.filter(deal=deals[title]).update(at=when)
    stage_days.rebuild()  # history edited around the services: the counters are recounted
    # when
    report = funnel(user=alice, pipeline=pipelines["strict"], date_from=date_from, date_to=date_to)
    # then
    assert report.created == 2
    assert [r.entered for r in report.stages] == [2, 2, 0, 0]
    single_day = funnel(
        user=alice, pipeline=pipelines["strict"], date_from=date_to, date_to=date_to
    )
    assert single_day.created == 1
    empty = funnel(
        user=alice,
        pipeline=pipelines["strict"],
        date_from=dt.date(2023, 1, 1),
        date_to=dt.date(2023, 12, 31),
    )
    assert empty.created == 0
    assert [r.entered for r in empty.stages] == [0, 0, 0, 0]
    assert [r.conversion for r in empty.stages] == [None, None, None, None]
    assert empty.overall is None


def test_a_period_ending_before_it_starts_is_refused(alice, pipelines):
    today = timezone.localdate()
    with pytest.raises(FieldErrors) as exc:
        funnel(
            user=alice,
            pipeline=pipelines["strict"],
            date_from=today,
            date_to=today - dt.timedelta(days=1),
        )
    assert list(exc.value.errors) == ["date_to"]


def test_the_funnel_of_a_stageless_pipeline_counts_results(alice, pipelines, make_deal):
    won = make_deal(alice, "Won project", pipeline=pipelines["stageless"], amount="10")
    deal_win(actor=alice, deal=won, version=won.version)
    lost = make_deal(alice, "Lost project", pipeline=pipelines["stageless"], amount="20")
    deal_lose(actor=alice, deal=lost, reason_id=pipelines["price"].pk, version=lost.version)
    report = funnel(user=alice, pipeline=pipelines["stageless"], **_week())
    assert report.stages == []
    assert (report.created, report.won, report.lost) == (2, 1, 1)
    assert report.won_amount == decimal.Decimal("10.00")
    assert report.overall == 0.5


def test_a_retired_stage_stays_in_the_funnel_while_it_has_entries(
    admin_user, alice, pipelines, make_deal
):
    from rapport.sales.services import stage_delete

    talks = pipelines["free_stages"][1]
    deal = make_deal(alice, "Through talks", stage_id=talks.pk)
    deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    stage_delete(actor=admin_user, stage=talks)
    report = funnel(user=alice, pipeline=pipelines["free"], **_week())
    assert [(r.stage.name, r.entered) for r in report.stages] == [
        ("New", 0),
        ("Talks", 1),
        ("Offer", 0),
    ]


def test_a_deal_coming_back_to_a_stage_counts_its_amount_once(alice, pipelines, make_deal):
    new, talks, _offer = pipelines["free_stages"]
    deal = make_deal(alice, "Back and forth", amount="100")
    for stage in (talks, new, talks):
        deal = deal_move(actor=alice, deal=deal, stage=stage, version=deal.version)
    report = funnel(user=alice, pipeline=pipelines["free"], **_week())
    talks_row = next(r for r in report.stages if r.stage.name == "Talks")
    assert (talks_row.entered, talks_row.amount) == (1, decimal.Decimal("100.00"))


def test_a_stage_amount_is_the_deals_amount_when_it_first_entered(alice, pipelines, make_deal):
    from rapport.sales.services import deal_update

    new, talks, _offer = pipelines["free_stages"]
    deal = make_deal(alice, "Grew in talks", amount="100")
    deal = deal_move(actor=alice, deal=deal, stage=talks, version=deal.version)
    deal = deal_move(actor=alice, deal=deal, stage=new, version=deal.version)
    deal = deal_update(actor=alice, deal=deal, data={"amount": "250"}, version=deal.version)
    deal = deal_move(actor=alice, deal=deal, stage=talks, version=deal.version)
    other = make_deal(alice, "Small one", amount="40")
    deal_move(actor=alice, deal=other, stage=talks, version=other.version)
    report = funnel(user=alice, pipeline=pipelines["free"], **_week())
    rows = {r.stage.name: r for r in report.stages}
    # each deal once per stage, at what it was worth when it first got there
    assert (rows["Talks"].entered, rows["Talks"].amount) == (2, decimal.Decimal("140.00"))
    assert (rows["New"].entered, rows["New"].amount) == (2, decimal.Decimal("140.00"))


def test_lost_amounts_are_the_amounts_recorded_when_the_deals_were_lost(
    alice, pipelines, make_deal
):
    from rapport.sales.services import deal_reopen, deal_update

    new = pipelines["free_stages"][0]
    deal = make_deal(alice, "Lost, then revived bigger", amount="300")
    deal = deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    deal = deal_reopen(actor=alice, deal=deal, version=deal.version)
    deal_update(actor=alice, deal=deal, data={"amount": "5000"}, version=deal.version)
    report = funnel(user=alice, pipeline=pipelines["free"], **_week())
    row = next(r for r in report.stages if r.stage.pk == new.pk)
    assert (row.lost, row.lost_amount) == (1, decimal.Decimal("300.00"))
    assert (report.lost, report.lost_amount) == (1, decimal.Decimal("300.00"))
    assert [(r["count"], r["amount"]) for r in report.by_reason] == [(1, decimal.Decimal(300))]
