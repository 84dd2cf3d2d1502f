"""Interactions on the timeline, tasks with subtasks, reminders and notifications."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from rapport.core.errors import FieldErrors


def test_a_call_logged_on_the_company_card_appears_on_its_timeline(alice, make_company, client_for):
    company = make_company(alice, "Acme")
    client = client_for(alice)
    r = client.post(
        reverse("timeline-log", args=["company", company.pk]),
        {
            "kind": "call",
            "status": "done",
            "direction": "out",
            "subject": "Price for racks",
            "duration_minutes": "5",
            "participant_text": "secretary, +7 495 000 00 00",
        },
        HTTP_HX_REQUEST="true",
    )
    assert r.status_code == 200
    html = r.content.decode()
    assert "Price for racks" in html
    assert "secretary, +7 495 000 00 00" in html
    page = client.get(reverse("company-detail", args=[company.pk]) + "?tab=timeline")
    assert "Price for racks" in page.content.decode()


def test_a_meeting_ending_before_it_starts_is_refused_with_the_field(alice, make_company):
    from rapport.activities.services import interaction_log

    company = make_company(alice, "Acme")
    with pytest.raises(FieldErrors) as exc:
        interaction_log(
            actor=alice,
            data={
                "kind": "meeting",
                "company_id": company.pk,
                "at": "2026-12-01T10:00",
                "ends_at": "2026-12-01T09:00",
            },
        )
    assert "ends_at" in exc.value.errors


def test_a_participant_outside_my_scope_is_refused(alice, carol, make_company, make_person):
    from rapport.activities.services import interaction_log

    mine = make_company(carol, "Carol Co")
    theirs = make_person(alice, "Ivan", "Secret")
    with pytest.raises(FieldErrors) as exc:
        interaction_log(
            actor=carol,
            data={
                "kind": "note",
                "company_id": mine.pk,
                "participants": [{"person_id": theirs.pk}],
            },
        )
    assert "participants" in exc.value.errors


def test_a_deal_interaction_lands_on_the_client_cards_too(alice, make_company, make_deal):
    from rapport.activities.selectors import timeline
    from rapport.activities.services import interaction_log

    company = make_company(alice, "Acme")
    deal = make_deal(alice, "Racks", company_id=company.pk)
    interaction_log(
        actor=alice, data={"kind": "note", "subject": "Sent the offer", "deal_id": deal.pk}
    )
    entries = timeline(user=alice, object_type="company", object_id=company.pk, kinds=["note"])
    assert [e.obj.subject for e in entries] == ["Sent the offer"]
    stages = timeline(user=alice, object_type="deal", object_id=deal.pk, kinds=["stage"])
    assert len(stages) == 1


def test_a_task_with_two_subtasks_shows_progress_when_one_is_done(alice, client_for):
    from rapport.activities.services import task_complete, task_create

    parent = task_create(actor=alice, data={"title": "Prepare the tender"})
    a = task_create(actor=alice, data={"title": "Collect documents", "parent_id": parent.pk})
    task_create(actor=alice, data={"title": "Price the bid", "parent_id": parent.pk})
    task_complete(actor=alice, task=a)
    page = client_for(alice).get(reverse("task-detail", args=[parent.pk])).content.decode()
    assert "1/2 · 50 %" in page


def test_a_reminder_after_the_due_time_is_refused_and_one_in_the_past_warns(alice):
    from rapport.activities.services import past_due_warning, task_create

    with pytest.raises(FieldErrors) as exc:
        task_create(
            actor=alice,
            data={"title": "Call", "due_at": "2026-12-01T10:00", "remind_at": "2026-12-01T11:00"},
        )
    assert "remind_at" in exc.value.errors
    late = task_create(actor=alice, data={"title": "Late", "due_at": "2020-01-01T10:00"})
    assert past_due_warning(late)


def test_assigning_a_task_to_someone_else_notifies_them(alice, dan, client_for):
    from rapport.activities.services import task_create

    task_create(actor=alice, data={"title": "Visit the client", "responsible_id": dan.pk})
    page = client_for(dan).get(reverse("notifications")).content.decode()
    assert "Visit the client" in page
    assert 'id="unread-count">1<' in page


def test_reminders_and_overdue_notices_go_out_exactly_once(alice):
    from rapport.activities.models import Notification
    from rapport.activities.services import reminders_due, task_create

    due = timezone.now() + dt.timedelta(minutes=30)
    task_create(
        actor=alice, data={"title": "Call back", "due_at": due, "remind_minutes_before": "45"}
    )
    assert reminders_due() == 1
    assert reminders_due() == 0  # a second worker, or the same after a restart, sends nothing
    later = due + dt.timedelta(minutes=1)
    assert reminders_due(now=later) == 1
    assert reminders_due(now=later) == 0
    kinds = sorted(Notification.objects.filter(user=alice).values_list("kind", flat=True))
    assert kinds == ["reminder", "task_overdue"]


def test_a_stalled_deal_gives_its_manager_one_notification_and_one_task(
    alice, pipelines, make_deal
):
    from rapport.activities.models import Notification, Task
    from rapport.core.events import outbox_dispatch
    from rapport.core.models import OutboxEvent
    from rapport.sales.services import deal_move, deals_mark_stalled

    deal = make_deal(alice, "Racks", pipeline=pipelines["strict"])
    deal = deal_move(actor=alice, deal=deal, stage=pipelines["strict_stages"][1])  # 48 h limit
    later = timezone.now() + dt.timedelta(hours=50)
    assert deals_mark_stalled(now=later) == 1
    assert deals_mark_stalled(now=later) == 0
    outbox_dispatch()
    OutboxEvent.objects.filter(name="deal.stalled").update(status="pending")  # a replay
    outbox_dispatch()
    assert Notification.objects.filter(user=alice, kind="deal_stalled").count() == 1
    task = Task.objects.get(deal=deal)
    assert "Racks" in task.title
    assert "Qualified" in task.title


def test_another_teams_task_is_404_and_absent_from_team_tasks(alice, carol, client_for):
    from rapport.activities.services import task_create

    task = task_create(actor=alice, data={"title": "Alice's secret"})
    client = client_for(carol)
    assert client.get(reverse("task-detail", args=[task.pk])).status_code == 404
    assert client.post(reverse("task-status", args=[task.pk])).status_code == 404
    assert "secret" not in client.get(reverse("task-list") + "?view=team").content.decode()
    assert client.get(reverse("timeline", args=["company", 999999])).status_code == 404


def test_the_week_calendar_shows_meetings_and_tasks_and_a_drag_reschedules(alice, client_for):
    from rapport.activities.models import Interaction
    from rapport.activities.services import interaction_log, task_create

    monday = timezone.localdate() - dt.timedelta(days=timezone.localdate().weekday())
    at = timezone.make_aware(dt.datetime.combine(monday, dt.time(10, 30)))
    meeting = interaction_log(
        actor=alice,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": "Tasting at Acme",
            "at": at,
            "ends_at": at + dt.timedelta(hours=1),
        },
    )
    task_create(
        actor=alice, data={"title": "Send the contract", "due_at": at + dt.timedelta(days=1)}
    )
    client = client_for(alice)
    page = client.get(reverse("calendar") + f"?view=week&date={monday}").content.decode()
    assert "Tasting at Acme" in page
    assert "Send the contract" in page
    moved = client.post(
        reverse("calendar-move"),
        {"kind": "interaction", "id": meeting.pk, "at": f"{monday + dt.timedelta(days=2)}T14:00"},
    )
    assert moved.json() == {"ok": True}
    meeting = Interaction.objects.get(pk=meeting.pk)
    local = timezone.localtime(meeting.at)
    assert (local.date(), local.hour, local.minute) == (monday + dt.timedelta(days=2), 14, 30)
    assert meeting.ends_at - meeting.at == dt.timedelta(hours=1)


def test_the_private_ics_feed_lists_my_meetings_and_stops_when_revoked(alice, client):
    from icalendar import Calendar

    from rapport.activities.models import CalendarFeed
    from rapport.activities.services import feed_create, feed_revoke, interaction_log

    interaction_log(
        actor=alice,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": "Board review",
            "at": timezone.now() + dt.timedelta(days=1),
        },
    )
    token, _feed = feed_create(user=alice)
    body = client.get(f"/calendar/feed/{token}.ics")
    assert body["Content-Type"].startswith("text/calendar")
    events = Calendar.from_ical(body.content).walk("VEVENT")
    assert [str(e["summary"]) for e in events] == ["Board review"]
    feed_revoke(user=alice, feed_id=CalendarFeed.objects.get(user=alice).pk)
    assert client.get(f"/calendar/feed/{token}.ics").status_code == 404
    assert client.get("/calendar/feed/cal_wrong.ics").status_code == 404


def test_the_work_desk_shows_todays_clients_and_a_chosen_clients_summary(
    alice, make_company, make_person, make_deal, client_for
):
    from rapport.activities.services import interaction_log, task_create
    from rapport.sales.services import deal_win

    company = make_company(alice, "Acme Foods")
    make_person(
        alice,
        "Olga",
        "Buyer",
        phones=[{"raw": "+7 495 123 45 67"}],
        employments=[{"company_id": company.pk}],
    )
    won = make_deal(alice, "First order", company_id=company.pk, amount="1000")
    deal_win(actor=alice, deal=won)
    make_deal(alice, "Second order", company_id=company.pk, amount="3000")
    noon = timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(12)))
    interaction_log(
        actor=alice,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": "Lunch",
            "at": noon,
            "company_id": company.pk,
        },
    )
    task_create(actor=alice, data={"title": "Chase the invoice", "due_at": "2020-01-01T09:00"})
    client = client_for(alice)
    desk = client.get("/").content.decode()
    assert "Acme Foods" in desk
    assert "Lunch" in desk
    assert "Chase the invoice" in desk
    part = client.get("/", {"client": f"company:{company.pk}"}, HTTP_HX_REQUEST="true")
    html = part.content.decode()
    assert "Buyer Olga" in html
    assert 'href="tel:+74951234567"' in html
    assert "2,000" in html or "2000" in html  # average of 1000 and 3000
    assert "1,000" in html or "1000" in html  # won in total
    assert "Lunch" in html  # the history filtered to this client


def test_the_desk_refuses_a_client_outside_my_scope(alice, carol, make_company, client_for):
    company = make_company(alice, "Acme Foods")
    assert client_for(carol).get("/", {"client": f"company:{company.pk}"}).status_code == 404


def test_interactions_list_groups_a_thread_and_hides_other_teams(
    alice, carol, make_company, client_for
):
    from rapport.activities.services import interaction_log

    company = make_company(alice, "Acme")
    first = interaction_log(
        actor=alice, data={"kind": "email", "subject": "Offer 42", "company_id": company.pk}
    )
    interaction_log(
        actor=alice,
        data={
            "kind": "call",
            "subject": "About offer 42",
            "company_id": company.pk,
            "thread_id": first.thread_id,
        },
    )
    page = client_for(alice).get(reverse("interaction-list"), {"group": "thread"}).content.decode()
    assert page.count('class="card thread"') == 1
    assert "About offer 42" in page
    assert "Offer 42" not in client_for(carol).get(reverse("interaction-list")).content.decode()


def test_the_task_list_shows_every_task_page_by_page_undated_last(alice, client_for):
    from rapport.activities.services import task_create

    base = timezone.now() - dt.timedelta(days=200)
    for n in range(120):
        task_create(
            actor=alice,
            data={"title": f"Dated {n:03d}", "due_at": base + dt.timedelta(hours=n)},
        )
    for n in range(3):
        task_create(actor=alice, data={"title": f"Undated {n}"})
    client = client_for(alice)
    page = client.get(reverse("task-list"), {"view": "mine"})
    html = page.content.decode()
    assert html.count("Dated 0") == 50  # the first 50 by due date
    assert "Dated 000" in html
    assert "Dated 049" in html
    assert "Dated 050" not in html
    titles: list[str] = []
    cursor = re.search(r'hx-get="\?[^"]*cursor=([\w=-]+)"', html)
    while cursor:
        more = client.get(
            reverse("task-list"),
            {"view": "mine", "cursor": cursor.group(1)},
            HTTP_HX_REQUEST="true",
        ).content.decode()
        assert "<html" not in more  # only the next rows
        titles += re.findall(r">((?:Un)?[Dd]ated \d+)</a>", more)
        cursor = re.search(r'hx-get="\?[^"]*cursor=([\w=-]+)"', more)
    assert titles == [f"Dated {n:03d}" for n in range(50, 120)] + [f"Undated {n}" for n in range(3)]
    overdue = client.get(reverse("task-list"), {"view": "overdue"}).content.decode()
    assert overdue.count("Dated 0") == 50
    assert "cursor=" in overdue


def test_a_mangled_page_cursor_shows_the_task_list_from_its_start(alice, client_for):
    from rapport.activities.services import task_create

    task_create(actor=alice, data={"title": "Still here"})
    page = client_for(alice).get(reverse("task-list"), {"cursor": "garbage"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Still here" in html
    assert "Invalid page cursor" in html


def test_a_late_subtask_is_listed_as_overdue_under_its_parents_name(alice, client_for):
    from rapport.activities.services import task_create

    later = timezone.now() + dt.timedelta(days=10)
    parent = task_create(actor=alice, data={"title": "Prepare the tender", "due_at": later})
    task_create(
        actor=alice,
        data={"title": "Collect documents", "parent_id": parent.pk, "due_at": "2020-01-01T09:00"},
    )
    client = client_for(alice)
    overdue = client.get(reverse("task-list"), {"view": "overdue"}).content.decode()
    assert "Collect documents" in overdue
    assert "Prepare the tender ›" in overdue
    mine = client.get(reverse("task-list"), {"view": "mine"}).content.decode()
    assert "Collect documents" not in mine  # shown as the parent's progress there
    assert "0/1" in mine
    desk = client.get("/").content.decode()
    assert re.search(r'id="overdue-count">\s*1 overdue\s*<', desk)
