"""An administrator builds the rule "when a deal is created with amount > 100 000, assign the
head of sales and notify him" in the browser; a big deal is created; the worker runs; the head
of sales owns the deal and has the notification."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e

from playwright.sync_api import expect  # noqa: E402
from tests.e2e.conftest import PASSWORD  # noqa: E402


@pytest.fixture
def people(e2e_org: dict[str, Any], manager: Any) -> dict[str, Any]:
    from rapport.accounts.models import default_permissions
    from rapport.accounts.services import role_save, user_create
    from rapport.sales.models import Pipeline, Stage

    admin_role = role_save(
        actor=None,
        name="Administrator",
        permissions=default_permissions("all", "all"),
        is_admin=True,
    )
    head_role = role_save(
        actor=None, name="Head of sales", permissions=default_permissions("all", "all")
    )
    admin = user_create(
        actor=None,
        username="anna",
        password=PASSWORD,
        first_name="Anna",
        last_name="Admin",
        team=e2e_org["office"],
        role=admin_role,
    )
    head = user_create(
        actor=None,
        username="helga",
        password=PASSWORD,
        first_name="Helga",
        last_name="Head",
        team=e2e_org["office"],
        role=head_role,
    )
    pipeline = Pipeline.objects.create(name="New clients", kind="free", order=1)
    Stage.objects.create(pipeline=pipeline, name="New", order=10)
    return {"admin": admin, "head": head, "manager": manager, "pipeline": pipeline}


def settle(page: Any) -> None:
    """Wait until no htmx request is in flight (the builder re-renders on each change)."""
    page.wait_for_timeout(50)
    page.wait_for_function("!document.querySelector('.htmx-request')")


def switch_user(page: Any, login: Any, user: Any) -> None:
    page.context.clear_cookies()
    login(page, user)


def test_a_rule_built_in_the_browser_assigns_big_deals_to_the_head_of_sales(
    browser: Any, page: Any, login: Any, people: dict[str, Any], screenshot: Any, live_server: Any
) -> None:
    from rapport.core.events import outbox_dispatch
    from rapport.sales.models import Deal

    head = people["head"]
    login(page, people["admin"])
    page.goto("/settings/automations/")
    page.get_by_role("link", name="New rule").click()
    page.fill("#rule-name", "Big deals go to the head of sales")
    expect(page.locator("#trigger")).to_have_value("deal.created")
    # if: amount > 100 000 (the row is added without leaving the page)
    page.get_by_role("button", name="Add a condition").click()
    settle(page)
    page.select_option("select[name=cond_0_field]", "amount")
    page.select_option("select[name=cond_0_op]", "gt")
    page.fill("input[name=cond_0_value]", "100000")
    # then: assign the head of sales …
    page.select_option("select[name=act_0_type]", "assign")
    settle(page)
    expect(page.locator("select[name=act_0_mode]")).to_be_visible()
    page.select_option("select[name=act_0_mode]", "user")
    page.select_option("select[name=act_0_user_id]", str(head.pk))
    # … and notify him
    page.get_by_role("button", name="Add an action").click()
    settle(page)
    page.select_option("select[name=act_1_type]", "notify")
    settle(page)
    expect(page.locator("input[name=act_1_title]")).to_be_visible()
    page.select_option("select[name=act_1_who]", "user")
    page.select_option("select[name=act_1_user_id]", str(head.pk))
    page.fill("input[name=act_1_title]", "Big deal: {{ record.title }}")
    # what was typed survives every re-render
    expect(page.locator("input[name=cond_0_value]")).to_have_value("100000")
    screenshot(page, "automation-rule")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#rules")).to_contain_text("Big deals go to the head of sales")
    expect(page.locator("#rules")).to_contain_text("amount > 100000")

    # a manager creates a big deal and a small one
    switch_user(page, login, people["manager"])
    for title, amount in (("Warehouse racks", "250000"), ("Pallet wrap", "900")):
        page.goto("/deals/new/")
        page.fill("#id_title", title)
        page.select_option("#id_pipeline_id", str(people["pipeline"].pk))
        page.fill("#id_amount", amount)
        page.locator("form").get_by_role("button", name="Save").click()
        page.wait_for_url(lambda url: "/deals/new/" not in url)
    outbox_dispatch()  # the worker's turn

    big = Deal.objects.get(title="Warehouse racks")
    small = Deal.objects.get(title="Pallet wrap")
    assert big.responsible_id == head.pk
    assert small.responsible_id == people["manager"].pk

    # the head of sales sees the notification and the deal is his
    switch_user(page, login, head)
    expect(page.locator("#unread-count")).to_have_text("1")
    page.goto("/notifications/")
    expect(page.locator("main")).to_contain_text("Big deal: Warehouse racks")
    page.goto(f"/deals/{big.pk}/")
    expect(page.locator("main")).to_contain_text("Helga")

    # the administrator reads the log: one run done, one whose conditions did not hold
    switch_user(page, login, people["admin"])
    page.goto("/settings/automations/log/")
    expect(page.locator("#runs")).to_contain_text("Warehouse racks")
    expect(page.locator("#runs")).to_contain_text("conditions not met")
