"""Deals that outstay their stage's time limit: flagged once per stay, shown as overdue."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from rapport.core.models import OutboxEvent
from rapport.sales import jobs
from rapport.sales.models import Deal
from rapport.sales.selectors import DealFilters, board, deal_list
from rapport.sales.services import deal_lose, deal_move, deal_win, deals_mark_stalled, stage_save


def _stalled_events(deal):
    return OutboxEvent.objects.filter(name="deal.stalled", object_id=deal.pk)


def _later(hours):
    return timezone.now() + dt.timedelta(hours=hours)


@pytest.fixture
def qualified_deal(alice, pipelines, make_deal):
    """A strict deal just moved into "Qualified" (48-hour limit)."""
    deal = make_deal(alice, "Waiting for a call", pipeline=pipelines["strict"])
    return deal_move(
        actor=alice, deal=deal, stage=pipelines["strict_stages"][1], version=deal.version
    )


def test_a_deal_within_its_limit_is_not_flagged(qualified_deal):
    assert deals_mark_stalled(now=_later(47)) == 0
    assert not _stalled_events(qualified_deal).exists()


def test_a_deal_past_its_limit_is_flagged_once_per_stay(alice, qualified_deal):
    # when the sweep runs after the limit, twice
    assert deals_mark_stalled(now=_later(49)) == 1
    assert deals_mark_stalled(now=_later(50)) == 0
    # then exactly one event, for the responsible manager, naming the stage
    event = _stalled_events(qualified_deal).get()
    assert event.payload["stage_name"] == "Qualified"
    assert event.payload["responsible"] == alice.pk
    assert event.payload["days_in_stage"] == 2
    qualified_deal.refresh_from_db()
    assert qualified_deal.stalled_at is not None


def test_a_new_stay_in_a_limited_stage_is_flagged_again_once(alice, pipelines, qualified_deal):
    lead, qualified = pipelines["strict_stages"][:2]
    deals_mark_stalled(now=_later(49))
    deal = deal_move(actor=alice, deal=qualified_deal, stage=lead, version=qualified_deal.version)
    assert deal.stalled_at is None
    deal = deal_move(actor=alice, deal=deal, stage=qualified, version=deal.version)
    # the new stay has its own deadline
    assert deals_mark_stalled(now=_later(47)) == 0
    assert deals_mark_stalled(now=_later(49)) == 1
    assert deals_mark_stalled(now=_later(60)) == 0
    assert _stalled_events(deal).count() == 2


def test_moving_to_another_limited_stage_starts_its_own_timer(admin_user, alice, pipelines):
    from rapport.sales.services import deal_create

    free = pipelines["free"]
    first = stage_save(
        actor=admin_user, pipeline=free, data={"name": "Call back", "time_limit_hours": 2}
    )
    second = stage_save(
        actor=admin_user, pipeline=free, data={"name": "Send offer", "time_limit_hours": 24}
    )
    deal = deal_create(
        actor=alice, data={"title": "Timers", "pipeline_id": free.pk, "stage_id": first.pk}
    )
    assert deals_mark_stalled(now=_later(3)) == 1
    deal = deal_move(actor=alice, deal=deal, stage=second, version=deal.version)
    assert deals_mark_stalled(now=_later(3)) == 0
    assert deals_mark_stalled(now=_later(25)) == 1
    assert deals_mark_stalled(now=_later(26)) == 0
    assert [e.payload["stage_name"] for e in _stalled_events(deal).order_by("id")] == [
        "Call back",
        "Send offer",
    ]


def test_closed_deals_and_stages_without_limit_are_ignored(alice, pipelines, make_deal):
    qualified = pipelines["strict_stages"][1]
    lost = make_deal(alice, "Lost", pipeline=pipelines["strict"])
    lost = deal_move(actor=alice, deal=lost, stage=qualified, version=lost.version)
    deal_lose(actor=alice, deal=lost, reason_id=pipelines["price"].pk, version=lost.version)
    won = make_deal(alice, "Won", amount="10")
    deal_win(actor=alice, deal=won, version=won.version)
    make_deal(alice, "No limit in Lead", pipeline=pipelines["strict"])
    make_deal(alice, "Stageless", pipeline=pipelines["stageless"])
    assert deals_mark_stalled(now=_later(24 * 365)) == 0
    assert not OutboxEvent.objects.filter(name="deal.stalled").exists()


def test_a_deal_closed_after_its_limit_ran_out_is_not_flagged(alice, pipelines, qualified_deal):
    deal_lose(
        actor=alice,
        deal=qualified_deal,
        reason_id=pipelines["rival"].pk,
        version=qualified_deal.version,
    )
    assert deals_mark_stalled(now=_later(100)) == 0


def test_the_worker_job_flags_deals_whose_deadline_passed(qualified_deal):
    Deal.objects.filter(pk=qualified_deal.pk).update(stage_deadline=_later(-1))
    assert jobs.deals_stalled() == 1
    assert jobs.deals_stalled() == 0
    assert _stalled_events(qualified_deal).count() == 1


def test_overdue_deals_are_found_by_the_list_and_the_board(alice, pipelines, make_deal):
    qualified = pipelines["strict_stages"][1]
    late = make_deal(alice, "Late", pipeline=pipelines["strict"], amount="100")
    late = deal_move(actor=alice, deal=late, stage=qualified, version=late.version)
    punctual = make_deal(alice, "Punctual", pipeline=pipelines["strict"], amount="50")
    deal_move(actor=alice, deal=punctual, stage=qualified, version=punctual.version)
    # as if "Late" had entered the stage three days ago
    Deal.objects.filter(pk=late.pk).update(stage_entered_at=_later(-72), stage_deadline=_later(-24))
    # when
    overdue = deal_list(user=alice, filters=DealFilters(overdue=True))
    columns = board(user=alice, pipeline=pipelines["strict"], filters=DealFilters(overdue=True))
    # then
    assert [d.title for d in overdue] == ["Late"]
    assert overdue[0].is_overdue
    assert overdue[0].days_in_stage == 3
    assert [(c.stage.name, c.count) for c in columns] == [
        ("Lead", 0),
        ("Qualified", 1),
        ("Proposal", 0),
        ("Contract", 0),
    ]
    assert [d.title for d in columns[1].page.items] == ["Late"]
    assert {d.title for d in deal_list(user=alice)} == {"Late", "Punctual"}


def test_a_closed_deal_is_never_overdue(alice, pipelines, make_deal):
    qualified = pipelines["strict_stages"][1]
    deal = make_deal(alice, "Late but lost", pipeline=pipelines["strict"])
    deal = deal_move(actor=alice, deal=deal, stage=qualified, version=deal.version)
    Deal.objects.filter(pk=deal.pk).update(stage_deadline=_later(-1))
    deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    assert deal_list(user=alice, filters=DealFilters(overdue=True)).count() == 0
