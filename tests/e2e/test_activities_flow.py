"""Activities in a real browser: the timeline's quick log, tasks with subtasks, the week
calendar's drag to reschedule, and the work desk."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def client_co(manager: Any) -> Any:
    from rapport.parties.services import company_create, person_create

    company = company_create(actor=manager, data={"short_name": "Volga Foods"}, force=True)
    person_create(
        actor=manager,
        force=True,
        data={
            "first_name": "Anna",
            "last_name": "Volkova",
            "phones": [{"raw": "+7 495 765 43 21"}],
            "employments": [{"company_id": company.pk, "position": "Buyer"}],
        },
    )
    return company


def test_a_call_logged_on_the_card_appears_on_the_timeline(
    page, login, manager, client_co, screenshot
):
    login(page, manager)
    page.goto(f"/companies/{client_co.pk}/?tab=timeline")
    form = page.locator("#quick-log")
    form.locator("select[name=kind]").select_option("call")
    form.locator("select[name=direction]").select_option("out")
    form.locator("input[name=subject]").fill("Asked for the autumn price list")
    form.locator("textarea[name=body]").fill("Wants 20 pallets in October")
    form.get_by_role("button", name="Save to the timeline").click()
    entries = page.locator("#timeline-entries")
    expect(entries).to_contain_text("Asked for the autumn price list")
    expect(entries).to_contain_text("Wants 20 pallets in October")
    screenshot(page, "timeline")


def test_a_task_with_two_subtasks_shows_progress_after_one_is_done(page, login, manager):
    login(page, manager)
    page.goto("/tasks/new/")
    page.fill("#id_title", "Prepare the tender")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("h1")).to_have_text("Prepare the tender")
    for title in ("Collect documents", "Price the bid"):
        page.get_by_role("link", name="Add a subtask").click()
        page.fill("#id_title", title)
        page.get_by_role("button", name="Save").click()
        page.get_by_role("link", name="Prepare the tender").click()
    expect(page.locator("#subtasks li.subtask")).to_have_count(2)
    page.get_by_role("button", name="Mark “Collect documents” done").click()
    expect(page.locator("#progress")).to_contain_text("1/2")
    expect(page.locator("#progress")).to_contain_text("50 %")


def _drag(page: Any, source: Any, target: Any) -> None:
    box, goal = source.bounding_box(), target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 4):
        page.mouse.move(x + step * 3, y + step * 3)
    page.mouse.move(goal["x"] + goal["width"] / 2, goal["y"] + goal["height"] / 2, steps=15)
    page.mouse.up()


def test_dragging_a_meeting_in_the_week_view_reschedules_it(page, login, manager, client_co):
    from django.utils import timezone

    from rapport.activities.models import Interaction
    from rapport.activities.services import interaction_log

    monday = timezone.localdate() - dt.timedelta(days=timezone.localdate().weekday())
    at = timezone.make_aware(dt.datetime.combine(monday, dt.time(10)))
    meeting = interaction_log(
        actor=manager,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": "Tasting",
            "at": at,
            "ends_at": at + dt.timedelta(hours=1),
            "company_id": client_co.pk,
        },
    )
    login(page, manager)
    page.goto(f"/calendar/?view=week&date={monday}")
    item = page.locator(".citem", has_text="Tasting")
    expect(item).to_be_visible()
    target_at = f"{monday + dt.timedelta(days=2)}T15:00"
    _drag(page, item, page.locator(f'.slot[data-at="{target_at}"]'))
    expect(page.locator(f'.slot[data-at="{target_at}"] .citem', has_text="Tasting")).to_be_visible()
    page.wait_for_function("() => document.getElementById('cal-message').hidden")
    for _ in range(20):
        meeting = Interaction.objects.get(pk=meeting.pk)
        if timezone.localtime(meeting.at).hour == 15:
            break
        page.wait_for_timeout(100)
    local = timezone.localtime(meeting.at)
    assert (local.date(), local.hour) == (monday + dt.timedelta(days=2), 15)


def test_the_work_desk_shows_a_chosen_clients_people_and_history(
    page, login, manager, client_co, screenshot
):
    from django.utils import timezone

    from rapport.activities.services import interaction_log

    soon = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(16)))
    interaction_log(
        actor=manager,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": "Contract review",
            "at": soon,
            "company_id": client_co.pk,
        },
    )
    login(page, manager)
    page.goto("/")
    expect(page.locator("#events-today")).to_contain_text("1")
    page.locator("#desk-clients").get_by_role("link", name="Volga Foods").click()
    people = page.locator("#desk-people")
    expect(people).to_contain_text("Volkova Anna")
    expect(people.locator("a[href^='tel:']")).to_have_attribute("href", "tel:+74957654321")
    expect(page.locator("#desk-client")).to_contain_text("Contract review")
    screenshot(page, "work-desk")
