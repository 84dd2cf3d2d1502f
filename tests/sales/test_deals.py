"""Deals through the services: each pipeline kind's rules, closing, bad input, audit, events."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from django.db import transaction
from django.utils import timezone

from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.models import AuditEntry, OutboxEvent
from rapport.sales.models import Deal, StageChange
from rapport.sales.selectors import DealFilters, board, deal_list, funnel
from rapport.sales.services import (
    StageRequirementsMissing,
    deal_create,
    deal_lose,
    deal_move,
    deal_reopen,
    deal_update,
    deal_win,
)


def _events(deal, name=None):
    qs = OutboxEvent.objects.filter(object_type="deal", object_id=deal.pk)
    if name:
        qs = qs.filter(name=name)
    return list(qs.order_by("id").values_list("name", flat=True))


def _history(deal):
    return list(StageChange.objects.filter(deal=deal).order_by("at", "id"))


def _then_fail(call):
    """Run a service inside the caller's transaction, which then fails."""
    with transaction.atomic():
        call()
        raise RuntimeError("the caller failed afterwards")


@pytest.fixture
def strict(pipelines):
    lead, qualified, proposal, contract = pipelines["strict_stages"]
    return {
        "pipeline": pipelines["strict"],
        "lead": lead,
        "qualified": qualified,
        "proposal": proposal,
        "contract": contract,
    }


# --- strict pipelines -------------------------------------------------------------------------


def test_a_strict_deal_starts_at_the_first_stage(alice, strict, make_deal):
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    assert deal.stage == strict["lead"]
    assert deal.status == "open"
    with pytest.raises(FieldErrors) as exc:
        make_deal(alice, "Jump start", pipeline=strict["pipeline"], stage_id=strict["qualified"].pk)
    assert list(exc.value.errors) == ["stage_id"]
    assert "Lead" in exc.value.errors["stage_id"][0]
    assert not Deal.objects.filter(title="Jump start").exists()


def test_a_strict_pipeline_refuses_a_skipped_stage_naming_it(alice, strict, make_deal):
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    with pytest.raises(FieldErrors) as exc:
        deal_move(actor=alice, deal=deal, stage=strict["proposal"], version=deal.version)
    assert list(exc.value.errors) == ["stage_id"]
    assert "Qualified" in exc.value.errors["stage_id"][0]
    with pytest.raises(FieldErrors) as exc:
        deal_move(actor=alice, deal=deal, stage=strict["contract"], version=deal.version)
    message = exc.value.errors["stage_id"][0]
    assert "Qualified" in message
    assert "Proposal" in message
    deal.refresh_from_db()
    assert deal.stage == strict["lead"]
    assert len(_history(deal)) == 1
    assert _events(deal, "deal.stage_changed") == []


def test_a_strict_pipeline_allows_the_next_stage_and_moving_back(
    alice, strict, make_deal, make_company
):
    company = make_company(alice, "Nordwind LLC")
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    deal = deal_move(
        actor=alice,
        deal=deal,
        stage=strict["proposal"],
        version=deal.version,
        fields={"amount": "100", "company_id": company.pk},
    )
    # back over two stages at once is allowed
    deal = deal_move(actor=alice, deal=deal, stage=strict["lead"], version=deal.version)
    deal.refresh_from_db()
    assert deal.stage == strict["lead"]
    assert [c.to_stage_id for c in _history(deal)] == [
        strict["lead"].pk,
        strict["qualified"].pk,
        strict["proposal"].pk,
        strict["lead"].pk,
    ]


def test_entry_conditions_are_refused_listing_the_missing_fields(alice, strict, make_deal):
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    with pytest.raises(StageRequirementsMissing) as exc:
        deal_move(actor=alice, deal=deal, stage=strict["proposal"], version=deal.version)
    assert exc.value.missing == ["amount", "company"]
    assert set(exc.value.errors) == {"amount", "company"}
    assert "Proposal" in str(exc.value)
    assert "amount" in str(exc.value)
    assert "company" in str(exc.value)
    deal.refresh_from_db()
    assert deal.stage == strict["qualified"]


def test_filling_the_missing_fields_in_the_move_enters_the_stage_in_one_step(
    alice, strict, make_deal, make_company
):
    company = make_company(alice, "Nordwind LLC")
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    changes_before = len(_history(deal))
    # when
    deal = deal_move(
        actor=alice,
        deal=deal,
        stage=strict["proposal"],
        version=deal.version,
        fields={"amount": "1 250,50", "company_id": company.pk},
    )
    # then
    deal.refresh_from_db()
    assert deal.stage == strict["proposal"]
    assert deal.amount == decimal.Decimal("1250.50")
    assert deal.company == company
    assert len(_history(deal)) == changes_before + 1
    assert _history(deal)[-1].to_stage == strict["proposal"]


def test_a_bad_value_in_the_move_fields_refuses_the_whole_move(
    alice, strict, make_deal, make_company
):
    company = make_company(alice, "Nordwind LLC")
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    with pytest.raises(FieldErrors) as exc:
        deal_move(
            actor=alice,
            deal=deal,
            stage=strict["proposal"],
            version=deal.version,
            fields={"amount": "-1", "company_id": company.pk},
        )
    assert "amount" in exc.value.errors
    deal.refresh_from_db()
    assert deal.stage == strict["qualified"]
    assert deal.amount is None
    assert deal.company is None


def test_winning_in_a_strict_pipeline_only_from_the_last_stage(
    alice, strict, make_deal, make_company
):
    company = make_company(alice, "Nordwind LLC")
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"], amount="900")
    with pytest.raises(FieldErrors) as exc:
        deal_win(actor=alice, deal=deal, version=deal.version)
    assert "Contract" in exc.value.errors["stage_id"][0]
    deal.refresh_from_db()
    assert deal.status == "open"
    for stage in ("qualified", "proposal", "contract"):
        deal = deal_move(
            actor=alice,
            deal=deal,
            stage=strict[stage],
            version=deal.version,
            fields={"company_id": company.pk} if stage == "proposal" else None,
        )
    deal = deal_win(actor=alice, deal=deal, version=deal.version)
    assert deal.status == "won"


def test_losing_a_strict_deal_is_allowed_from_any_stage(alice, strict, make_deal, pipelines):
    deal = make_deal(alice, "Nordwind", pipeline=strict["pipeline"])
    deal = deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    assert deal.status == "lost"


# --- free and stageless pipelines ---------------------------------------------------------------


def test_a_free_pipeline_allows_any_move(alice, pipelines, make_deal):
    new, talks, offer = pipelines["free_stages"]
    deal = make_deal(alice, "Repeat order")
    assert deal.stage == new
    deal = deal_move(actor=alice, deal=deal, stage=offer, version=deal.version)
    deal = deal_move(actor=alice, deal=deal, stage=new, version=deal.version)
    deal = deal_move(actor=alice, deal=deal, stage=talks.pk, version=deal.version)
    deal.refresh_from_db()
    assert deal.stage == talks
    deal = deal_win(actor=alice, deal=deal, amount="10", version=deal.version)
    assert deal.status == "won"


def test_a_free_deal_may_start_at_any_stage(alice, pipelines, make_deal):
    offer = pipelines["free_stages"][2]
    deal = make_deal(alice, "Straight to offer", stage_id=offer.pk)
    assert deal.stage == offer


def test_a_stageless_deal_has_no_stages_but_is_won_or_lost(alice, pipelines, make_deal):
    deal = make_deal(alice, "Long project", pipeline=pipelines["stageless"])
    assert deal.stage is None
    with pytest.raises(FieldErrors) as exc:
        deal_move(actor=alice, deal=deal, stage=pipelines["free_stages"][0], version=deal.version)
    assert list(exc.value.errors) == ["stage_id"]
    deal = deal_win(actor=alice, deal=deal, amount="5000", version=deal.version)
    assert deal.status == "won"
    assert deal.won_amount == decimal.Decimal("5000.00")
    other = make_deal(alice, "Another project", pipeline=pipelines["stageless"])
    other = deal_lose(
        actor=alice, deal=other, reason_id=pipelines["rival"].pk, version=other.version
    )
    assert other.status == "lost"
    assert other.stage is None


def test_a_stage_of_another_pipeline_is_refused(alice, pipelines, make_deal):
    deal = make_deal(alice, "Repeat order")
    foreign = pipelines["strict_stages"][0]
    with pytest.raises(FieldErrors) as exc:
        deal_move(actor=alice, deal=deal, stage=foreign, version=deal.version)
    assert list(exc.value.errors) == ["stage_id"]
    assert "another pipeline" in exc.value.errors["stage_id"][0]
    deal.refresh_from_db()
    assert deal.stage == pipelines["free_stages"][0]
    with pytest.raises(FieldErrors) as exc:
        make_deal(alice, "Crossed", stage_id=foreign.pk)
    assert list(exc.value.errors) == ["stage_id"]


# --- closing and reopening ---------------------------------------------------------------------


def test_losing_requires_a_reason_from_the_list(alice, pipelines, make_deal):
    deal = make_deal(alice, "Repeat order")
    for reason in (None, "", 999999):
        with pytest.raises(FieldErrors) as exc:
            deal_lose(actor=alice, deal=deal, reason_id=reason, version=deal.version)
        assert list(exc.value.errors) == ["loss_reason_id"]
    deal.refresh_from_db()
    assert deal.status == "open"
    deal = deal_lose(
        actor=alice,
        deal=deal,
        reason_id=pipelines["price"].pk,
        comment="  went with the cheaper offer ",
        version=deal.version,
    )
    deal.refresh_from_db()
    assert deal.status == "lost"
    assert deal.loss_reason == pipelines["price"]
    assert deal.loss_comment == "went with the cheaper offer"
    assert deal.closed_at is not None


def test_winning_records_the_actual_amount_given_or_planned(alice, make_deal):
    planned = make_deal(alice, "Planned", amount="700")
    planned = deal_win(actor=alice, deal=planned, version=planned.version)
    assert planned.won_amount == decimal.Decimal("700.00")
    assert _history(planned)[-1].amount == decimal.Decimal("700.00")
    given = make_deal(alice, "Given", amount="700")
    given = deal_win(actor=alice, deal=given, amount="650.5", version=given.version)
    given.refresh_from_db()
    assert given.won_amount == decimal.Decimal("650.50")
    assert given.amount == decimal.Decimal("700.00")
    assert _history(given)[-1].amount == decimal.Decimal("650.50")


def test_winning_without_any_amount_is_refused(alice, make_deal):
    deal = make_deal(alice, "No amount")
    with pytest.raises(FieldErrors) as exc:
        deal_win(actor=alice, deal=deal, version=deal.version)
    assert list(exc.value.errors) == ["amount"]
    with pytest.raises(FieldErrors) as exc:
        deal_win(actor=alice, deal=deal, amount="-3", version=deal.version)
    assert list(exc.value.errors) == ["amount"]
    deal.refresh_from_db()
    assert deal.status == "open"
    assert deal.won_amount is None


def test_a_closed_deal_is_neither_moved_nor_closed_again(alice, pipelines, make_deal):
    deal = make_deal(alice, "Closed", amount="10")
    deal = deal_win(actor=alice, deal=deal, version=deal.version)
    with pytest.raises(FieldErrors):
        deal_move(actor=alice, deal=deal, stage=pipelines["free_stages"][1], version=deal.version)
    with pytest.raises(FieldErrors):
        deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    with pytest.raises(FieldErrors):
        deal_win(actor=alice, deal=deal, version=deal.version)
    assert len(_history(deal)) == 2


def test_reopening_a_lost_deal_returns_it_to_its_stage(alice, pipelines, make_deal):
    talks = pipelines["free_stages"][1]
    deal = make_deal(alice, "Second chance", stage_id=talks.pk)
    deal = deal_lose(
        actor=alice, deal=deal, reason_id=pipelines["rival"].pk, comment="x", version=deal.version
    )
    deal = deal_reopen(actor=alice, deal=deal, version=deal.version)
    deal.refresh_from_db()
    assert deal.status == "open"
    assert deal.stage == talks
    assert deal.loss_reason is None
    assert deal.loss_comment == ""
    assert deal.closed_at is None
    last = _history(deal)[-1]
    assert (last.from_status, last.to_status) == ("lost", "open")
    assert _events(deal)[-1] == "deal.reopened"
    # and it can be won afterwards
    deal = deal_win(actor=alice, deal=deal, amount="5", version=deal.version)
    assert deal.status == "won"


# --- bad input ---------------------------------------------------------------------------------


def test_negative_amount_unknown_currency_and_bad_date_are_refused_by_field(alice, make_deal):
    with pytest.raises(FieldErrors) as exc:
        make_deal(alice, "Broken", amount="-10", currency="XYZ", expected_close="31.12.2030")
    assert set(exc.value.errors) == {"amount", "currency", "expected_close"}
    assert "XYZ" in exc.value.errors["currency"][0]
    assert not Deal.objects.filter(title="Broken").exists()
    assert OutboxEvent.objects.filter(name="deal.created").count() == 0


def test_currency_is_case_insensitive_and_amount_accepts_a_comma(alice, make_deal):
    deal = make_deal(alice, "Euro", amount="1 000,5", currency="eur")
    assert deal.currency == "EUR"
    assert deal.amount == decimal.Decimal("1000.50")


def test_editing_with_bad_values_changes_nothing(alice, make_deal):
    deal = make_deal(alice, "Solid", amount="10", currency="USD")
    with pytest.raises(FieldErrors) as exc:
        deal_update(
            actor=alice,
            deal=deal,
            data={"amount": "-1", "currency": "???", "expected_close": "tomorrow"},
            version=deal.version,
        )
    assert set(exc.value.errors) == {"amount", "currency", "expected_close"}
    deal.refresh_from_db()
    assert (deal.amount, deal.currency, deal.version) == (decimal.Decimal("10.00"), "USD", 1)


def test_stage_and_status_are_not_edited_as_fields(alice, pipelines, make_deal):
    deal = make_deal(alice, "Solid")
    with pytest.raises(FieldErrors) as exc:
        deal_update(
            actor=alice,
            deal=deal,
            data={"stage_id": pipelines["free_stages"][2].pk, "status": "won"},
            version=deal.version,
        )
    assert set(exc.value.errors) == {"stage_id", "status"}


def test_a_stale_move_is_refused_and_changes_nothing(alice, pipelines, make_deal):
    new, talks, offer = pipelines["free_stages"]
    deal = make_deal(alice, "Contested")
    seen = deal.version
    # someone else moves it meanwhile
    deal_move(actor=alice, deal=deal, stage=talks, version=seen)
    history = len(_history(deal))
    events = OutboxEvent.objects.count()
    audits = AuditEntry.objects.count()
    # when the first user drops the card they saw
    with pytest.raises(StaleVersion) as exc:
        deal_move(actor=alice, deal=deal, stage=offer, version=seen)
    # then
    assert exc.value.current_version == seen + 1
    deal.refresh_from_db()
    assert deal.stage == talks
    assert deal.version == seen + 1
    assert len(_history(deal)) == history
    assert OutboxEvent.objects.count() == events
    assert AuditEntry.objects.count() == audits
    for call in (
        lambda: deal_win(actor=alice, deal=deal, amount="1", version=seen),
        lambda: deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=seen),
        lambda: deal_update(actor=alice, deal=deal, data={"title": "X"}, version=seen),
    ):
        with pytest.raises(StaleVersion):
            call()
    deal.refresh_from_db()
    assert (deal.status, deal.title) == ("open", "Contested")


# --- scopes ------------------------------------------------------------------------------------


def test_a_rep_cannot_touch_his_managers_deal(alice, bob, pipelines, make_deal):
    deal = make_deal(alice, "Alice's deal", amount="10")
    talks = pipelines["free_stages"][1]
    for call in (
        lambda: deal_move(actor=bob, deal=deal, stage=talks, version=deal.version),
        lambda: deal_update(actor=bob, deal=deal, data={"title": "Mine"}, version=deal.version),
        lambda: deal_win(actor=bob, deal=deal, version=deal.version),
        lambda: deal_lose(
            actor=bob, deal=deal, reason_id=pipelines["price"].pk, version=deal.version
        ),
    ):
        with pytest.raises(PermissionDenied):
            call()
    deal.refresh_from_db()
    assert (deal.title, deal.stage, deal.status) == (
        "Alice's deal",
        pipelines["free_stages"][0],
        "open",
    )


def test_a_manager_moves_her_reps_deal(alice, bob, pipelines, make_deal):
    deal = make_deal(bob, "Bob's deal")
    deal = deal_move(
        actor=alice, deal=deal, stage=pipelines["free_stages"][1], version=deal.version
    )
    assert deal.stage == pipelines["free_stages"][1]


def test_another_team_does_not_see_the_deals_anywhere(alice, carol, pipelines, make_deal):
    deal = make_deal(alice, "Team A secret", pipeline=pipelines["strict"], amount="100")
    deal_lose(actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version)
    make_deal(alice, "Team A open", pipeline=pipelines["strict"], amount="200")
    # carol's own deal is visible to her
    make_deal(carol, "Carol's", pipeline=pipelines["strict"], amount="5")
    assert [d.title for d in deal_list(user=carol)] == ["Carol's"]
    assert deal_list(user=carol, filters=DealFilters(q="Team A")).count() == 0
    columns = board(user=carol, pipeline=pipelines["strict"])
    assert [c.count for c in columns] == [1, 0, 0, 0]
    assert columns[0].total == decimal.Decimal("5.00")
    assert [d.title for d in columns[0].page.items] == ["Carol's"]
    today = timezone.localdate()
    report = funnel(user=carol, pipeline=pipelines["strict"], date_from=today, date_to=today)
    assert report.created == 1
    assert report.lost == 0
    assert report.stages[0].entered == 1
    assert report.by_reason == []
    # alice sees all three
    assert deal_list(user=alice).count() == 2
    mine = funnel(user=alice, pipeline=pipelines["strict"], date_from=today, date_to=today)
    assert (mine.created, mine.lost) == (2, 1)


# --- audit and events --------------------------------------------------------------------------


def test_every_write_is_audited_and_announced(alice, pipelines, make_deal):
    talks = pipelines["free_stages"][1]
    won = make_deal(alice, "Won one", amount="10")
    won = deal_move(actor=alice, deal=won, stage=talks, version=won.version)
    won = deal_win(actor=alice, deal=won, version=won.version)
    lost = make_deal(alice, "Lost one")
    deal_lose(actor=alice, deal=lost, reason_id=pipelines["rival"].pk, version=lost.version)

    assert _events(won) == ["deal.created", "deal.stage_changed", "deal.won"]
    assert _events(lost) == ["deal.created", "deal.lost"]
    moved = OutboxEvent.objects.get(object_id=won.pk, name="deal.stage_changed")
    assert moved.payload["from_stage"] == pipelines["free_stages"][0].pk
    assert moved.payload["to_stage"] == talks.pk
    assert moved.actor == alice
    audits = list(AuditEntry.objects.filter(object_type="deal", object_id=won.pk).order_by("id"))
    assert [a.action for a in audits] == ["create", "update", "update"]
    assert audits[1].changes["stage"] == [pipelines["free_stages"][0].pk, talks.pk]
    assert audits[2].changes["status"] == ["open", "won"]
    assert all(a.actor == alice for a in audits)
    lost_audit = AuditEntry.objects.filter(object_type="deal", object_id=lost.pk).latest("id")
    assert lost_audit.changes["loss_reason"] == [None, pipelines["rival"].pk]


def test_a_failure_after_a_move_rolls_back_the_event_and_the_history(alice, pipelines, make_deal):
    deal = make_deal(alice, "Fragile")
    talks = pipelines["free_stages"][1]
    # when something later in the same transaction fails
    with pytest.raises(RuntimeError):
        _then_fail(lambda: deal_move(actor=alice, deal=deal, stage=talks, version=deal.version))
    # then the move, its history row, audit and event are all gone
    deal.refresh_from_db()
    assert deal.stage == pipelines["free_stages"][0]
    assert deal.version == 1
    assert len(_history(deal)) == 1
    assert _events(deal) == ["deal.created"]
    assert AuditEntry.objects.filter(object_type="deal", object_id=deal.pk).count() == 1


def test_a_failure_after_creating_a_deal_leaves_no_event(alice, pipelines):
    with pytest.raises(RuntimeError):
        _then_fail(
            lambda: deal_create(
                actor=alice, data={"title": "Ghost", "pipeline_id": pipelines["free"].pk}
            )
        )
    assert not Deal.objects.filter(title="Ghost").exists()
    assert OutboxEvent.objects.filter(name="deal.created").count() == 0
    assert StageChange.objects.count() == 0


def test_a_failure_after_winning_or_losing_rolls_back_the_event(alice, pipelines, make_deal):
    deal = make_deal(alice, "Fragile", amount="10")
    with pytest.raises(RuntimeError):
        _then_fail(lambda: deal_win(actor=alice, deal=deal, version=deal.version))
    with pytest.raises(RuntimeError):
        _then_fail(
            lambda: deal_lose(
                actor=alice, deal=deal, reason_id=pipelines["price"].pk, version=deal.version
            )
        )
    deal.refresh_from_db()
    assert deal.status == "open"
    assert _events(deal) == ["deal.created"]


# --- the stage history -------------------------------------------------------------------------


def test_the_history_records_time_spent_and_an_overrun_limit(alice, strict, make_deal):
    deal = make_deal(alice, "Slow", pipeline=strict["pipeline"])
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    assert deal.stage_deadline is not None
    # as if the deal had entered "Qualified" 50 hours ago (the limit is 48)
    entered = timezone.now() - dt.timedelta(hours=50)
    Deal.objects.filter(pk=deal.pk).update(
        stage_entered_at=entered, stage_deadline=entered + dt.timedelta(hours=48)
    )
    # when
    deal = deal_move(actor=alice, deal=deal, stage=strict["lead"], version=deal.version)
    # then
    change = _history(deal)[-1]
    assert change.from_stage == strict["qualified"]
    assert change.by == alice
    assert 50 * 3600 - 60 <= change.seconds_in_previous <= 50 * 3600 + 60
    assert change.limit_exceeded is True
    # and a deal that kept within the limit is not marked
    deal = deal_move(actor=alice, deal=deal, stage=strict["qualified"], version=deal.version)
    deal = deal_move(actor=alice, deal=deal, stage=strict["lead"], version=deal.version)
    assert _history(deal)[-1].limit_exceeded is False


def test_time_before_winning_is_recorded(alice, make_deal):
    deal = make_deal(alice, "Quick win", amount="1")
    Deal.objects.filter(pk=deal.pk).update(stage_entered_at=timezone.now() - dt.timedelta(hours=3))
    deal = deal_win(actor=alice, deal=deal, version=deal.version)
    seconds = _history(deal)[-1].seconds_in_previous
    assert 3 * 3600 - 60 <= seconds <= 3 * 3600 + 60
