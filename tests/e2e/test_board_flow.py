"""The kanban board in a real browser: drag, refusals with reasons, the entry-fields dialog,
losing with a reason, and the funnel report."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def sales(manager: Any) -> dict[str, Any]:
    from rapport.parties.services import company_create
    from rapport.sales.models import LossReason, Pipeline, Stage
    from rapport.sales.services import deal_create

    pipeline = Pipeline.objects.create(name="New clients", kind="strict", order=1)
    stages = [
        Stage.objects.create(pipeline=pipeline, name="Lead", order=10, color="#8da2c0"),
        Stage.objects.create(pipeline=pipeline, name="Qualified", order=20, color="#4f7cff"),
        Stage.objects.create(
            pipeline=pipeline,
            name="Proposal",
            order=30,
            color="#7a5af8",
            required_fields=["amount"],
        ),
        Stage.objects.create(pipeline=pipeline, name="Contract", order=40, color="#12b76a"),
    ]
    LossReason.objects.get_or_create(name="Price too high")
    acme = company_create(actor=manager, data={"short_name": "Acme Logistics"}, force=True)
    deals = {
        title: deal_create(
            actor=manager,
            data={"title": title, "pipeline_id": pipeline.pk, "company_id": acme.pk, **extra},
        )
        for title, extra in (
            ("Warehouse racks", {"amount": "150000"}),
            ("Forklift lease", {"amount": "90000"}),
            ("Pallet wrap", {}),
        )
    }
    return {"pipeline": pipeline, "stages": stages, "deals": deals}


def _column(page: Any, name: str) -> Any:
    return page.locator("section.column", has=page.locator("h2", has_text=name))


def _card(page: Any, title: str) -> Any:
    return page.locator("article.kcard", has_text=title)


def drag(page: Any, source: Any, target: Any) -> None:
    """SortableJS with forceFallback follows real pointer moves: press, wiggle, glide, release."""
    box = source.bounding_box()
    goal = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + 12
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 4):
        page.mouse.move(x + step * 3, y + step * 3)
    page.mouse.move(
        goal["x"] + goal["width"] / 2, goal["y"] + min(goal["height"] / 2, 60), steps=15
    )
    page.mouse.up()


def _open_board(page: Any, login: Any, manager: Any, sales: dict[str, Any]) -> None:
    login(page, manager)
    page.goto(f"/board/{sales['pipeline'].pk}/")
    expect(page.locator("#board article.kcard").first).to_be_visible()


def test_dragging_a_card_to_the_next_stage_moves_counts_and_sums(
    page, login, manager, sales, screenshot
):
    _open_board(page, login, manager, sales)
    expect(_column(page, "Lead").locator(".col-count")).to_have_text("3")
    drag(page, _card(page, "Warehouse racks"), _column(page, "Qualified").locator(".cards"))
    qualified = _column(page, "Qualified")
    expect(qualified.locator("article.kcard", has_text="Warehouse racks")).to_be_visible()
    expect(qualified.locator(".col-count")).to_have_text("1")
    expect(qualified.locator(".col-total")).to_contain_text("150")
    expect(_column(page, "Lead").locator(".col-count")).to_have_text("2")
    deal = sales["deals"]["Warehouse racks"]
    deal.refresh_from_db()
    assert deal.stage_id == sales["stages"][1].pk
    screenshot(page, "board")


def test_a_jump_over_a_stage_is_refused_and_the_card_snaps_back(page, login, manager, sales):
    _open_board(page, login, manager, sales)
    drag(page, _card(page, "Forklift lease"), _column(page, "Proposal").locator(".cards"))
    expect(page.locator("#board-message")).to_contain_text("Qualified")
    expect(
        _column(page, "Lead").locator("article.kcard", has_text="Forklift lease")
    ).to_be_visible()
    expect(_column(page, "Proposal").locator(".col-count")).to_have_text("0")
    deal = sales["deals"]["Forklift lease"]
    deal.refresh_from_db()
    assert deal.stage_id == sales["stages"][0].pk


def test_missing_entry_fields_are_asked_for_in_a_dialog(page, login, manager, sales):
    from rapport.sales.services import deal_move

    deal = deal_move(actor=manager, deal=sales["deals"]["Pallet wrap"], stage=sales["stages"][1])
    _open_board(page, login, manager, sales)
    drag(page, _card(page, "Pallet wrap"), _column(page, "Proposal").locator(".cards"))
    dialog = page.locator("#req-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Amount")
    dialog.locator("input[name=req_amount]").fill("4200")
    dialog.get_by_role("button", name="Save and move").click()
    expect(dialog).to_be_hidden()
    proposal = _column(page, "Proposal")
    expect(proposal.locator("article.kcard", has_text="Pallet wrap")).to_be_visible()
    expect(proposal.locator(".col-total")).to_contain_text("4")
    deal.refresh_from_db()
    assert (deal.stage_id, str(deal.amount)) == (sales["stages"][2].pk, "4200.00")


def test_losing_a_deal_on_the_board_asks_for_the_reason(page, login, manager, sales):
    _open_board(page, login, manager, sales)
    drag(page, _card(page, "Forklift lease"), page.locator(".dropzone.lost"))
    dialog = page.locator("#lose-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("select[name=loss_reason_id]").select_option(label="Price too high")
    dialog.locator("textarea[name=comment]").fill("Went with a cheaper lessor")
    dialog.get_by_role("button", name="Mark as lost").click()
    expect(dialog).to_be_hidden()
    expect(_card(page, "Forklift lease")).to_have_count(0)
    expect(_column(page, "Lead").locator(".col-count")).to_have_text("2")
    deal = sales["deals"]["Forklift lease"]
    deal.refresh_from_db()
    assert (deal.status, deal.loss_comment) == ("lost", "Went with a cheaper lessor")


def test_the_funnel_report_shows_stages_and_charts(page, login, manager, sales, screenshot):
    from rapport.sales.models import LossReason
    from rapport.sales.services import deal_lose, deal_move

    stages = sales["stages"]
    deal_move(actor=manager, deal=sales["deals"]["Warehouse racks"], stage=stages[1])
    deal_lose(
        actor=manager,
        deal=sales["deals"]["Forklift lease"],
        reason_id=LossReason.objects.get(name="Price too high").pk,
    )
    login(page, manager)
    page.goto(f"/reports/funnel/?pipeline={sales['pipeline'].pk}")
    table = page.locator("#funnel-table")
    expect(table.locator("tbody tr").first).to_contain_text("Lead")
    expect(table.locator("tbody tr").first).to_contain_text("3")
    expect(page.locator("#funnel-chart svg")).to_be_visible()
    expect(page.locator("#loss-chart svg")).to_be_visible()
    expect(page.locator("#funnel-summary")).to_contain_text("1")
    screenshot(page, "funnel")
