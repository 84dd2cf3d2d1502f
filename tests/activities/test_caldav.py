"""Two-way CalDAV sync against a real Radicale server started on 127.0.0.1 by the test.

The sync runs in the test's own thread and database transaction, so these tests run the same
on SQLite and PostgreSQL (rolled back per test; the Radicale storage is a temporary folder)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from rapport.activities import caldav_sync
from rapport.activities.models import (
    CalDavAccount,
    Interaction,
    SyncedItem,
    Task,
)
from rapport.activities.services import interaction_log, interaction_update, task_create
from rapport.core.models import AuditEntry

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Radicale CalDAV server (no authentication) on a free loopback port."""
    folder = tmp_path_factory.mktemp("radicale")
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [
            sys.executable,
            "-m",
            "radicale",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--storage-filesystem-folder",
            str(folder / "collections"),
            "--auth-type",
            "none",
            "--auth-delay",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            pytest.fail(f"Radicale exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("Radicale did not start in 20 s")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(autouse=True)
def _loopback_allowed(settings: Any) -> None:
    settings.CALDAV_ALLOW_LOOPBACK = True


@pytest.fixture
def account(bob: Any, radicale: str) -> CalDavAccount:
    """Bob's link to his own (fresh) principal on the test server."""
    return caldav_sync.caldav_connect(
        user=bob,
        data={
            "server_url": radicale,
            "username": f"bob-{uuid.uuid4().hex[:8]}",
            "password": "x",
            "calendar_name": "Rapport",
        },
    )


class Server:
    """Direct access to the account's calendar, as a phone or desktop client would edit it."""

    def __init__(self, account: CalDavAccount) -> None:
        import caldav

        self.client = caldav.DAVClient(
            url=account.server_url, username=account.username, password="x"
        )
        self.account = account

    def url(self, href: str) -> str:
        return str(self.client.url.join(href))

    def get(self, href: str) -> Any:
        r = self.client.request(self.url(href))
        assert r.status == 200, r.status
        return caldav_sync._component(r.raw)  # noqa: SLF001

    def put(self, href: str, comp: Any) -> None:
        cal = Calendar()
        cal.add("prodid", "-//Phone//EN")
        cal.add("version", "2.0")
        cal.add_component(comp)
        r = self.client.put(
            self.url(href), cal.to_ical().decode(), {"Content-Type": "text/calendar"}
        )
        assert r.status in (201, 204), r.status

    def edit(self, href: str, *, modified: dt.datetime, **props: Any) -> None:
        comp = self.get(href)
        for name, value in props.items():
            comp.pop(name, None)
            comp.add(name, value)
        comp.pop("last-modified", None)
        comp.add("last-modified", modified)
        self.put(href, comp)

    def delete(self, href: str) -> None:
        assert self.client.delete(self.url(href)).status in (200, 204)

    def calendar_path(self) -> str:
        self.account.refresh_from_db()
        return str(self.client.url.join(self.account.calendar_url).path)


def _meeting(user: Any, subject: str = "Demo at ACME", days: int = 1) -> Interaction:
    start = (timezone.now() + dt.timedelta(days=days)).replace(microsecond=0)
    return interaction_log(
        actor=user,
        data={
            "kind": "meeting",
            "status": "planned",
            "subject": subject,
            "place": "ACME office",
            "at": start,
            "ends_at": start + dt.timedelta(hours=1),
        },
    )


def _href(account: CalDavAccount, kind: str, obj: Any) -> str:
    return SyncedItem.objects.get(account=account, kind=kind, object_id=obj.pk).href


def _sync(account: CalDavAccount) -> caldav_sync.SyncReport:
    report = caldav_sync.sync_account(account)
    account.refresh_from_db()
    assert account.last_error == "", account.last_error
    return report


def test_a_meeting_made_in_rapport_appears_on_the_server(bob, account):
    # given
    meeting = _meeting(bob)
    # when
    report = _sync(account)
    # then
    assert report.pushed == 1
    event = Server(account).get(_href(account, "interaction", meeting))
    assert str(event["uid"]) == f"interaction-{meeting.pk}@rapport"
    assert str(event["summary"]) == "Demo at ACME"
    assert str(event["location"]) == "ACME office"
    assert event["dtstart"].dt == meeting.at
    assert event["dtend"].dt == meeting.ends_at
    assert account.last_sync_at is not None


def test_an_edit_on_the_server_comes_back_to_rapport(bob, account):
    meeting = _meeting(bob)
    _sync(account)
    href = _href(account, "interaction", meeting)
    moved = meeting.at + dt.timedelta(hours=3)
    # when: edited on the phone
    Server(account).edit(
        href,
        modified=timezone.now(),
        summary="Demo at ACME, 2nd floor",
        dtstart=moved,
        dtend=moved + dt.timedelta(minutes=30),
    )
    report = _sync(account)
    # then
    meeting.refresh_from_db()
    assert report.pulled == 1
    assert meeting.subject == "Demo at ACME, 2nd floor"
    assert meeting.at == moved
    assert meeting.ends_at == moved + dt.timedelta(minutes=30)
    assert meeting.version == 2
    entry = AuditEntry.objects.filter(object_type="interaction", object_id=meeting.pk).first()
    assert entry is not None
    assert entry.actor_id == bob.pk
    assert entry.changes["subject"] == ["Demo at ACME", "Demo at ACME, 2nd floor"]


def test_an_edit_in_rapport_is_sent_to_the_server(bob, account):
    meeting = _meeting(bob)
    _sync(account)
    interaction_update(actor=bob, interaction=meeting, data={"place": "Zoom"})
    assert _sync(account).pushed == 1
    event = Server(account).get(_href(account, "interaction", meeting))
    assert str(event["location"]) == "Zoom"


def test_a_deletion_on_the_server_cancels_the_meeting_in_rapport(bob, account):
    meeting = _meeting(bob)
    _sync(account)
    Server(account).delete(_href(account, "interaction", meeting))
    # when
    report = _sync(account)
    # then: cancelled, not deleted, and not sent back
    meeting.refresh_from_db()
    assert report.cancelled == 1
    assert meeting.status == "cancelled"
    assert meeting.deleted_at is None
    assert not SyncedItem.objects.filter(account=account).exists()
    assert _sync(account).changed == 0


def test_a_new_event_on_the_server_becomes_a_planned_meeting(bob, account):
    from icalendar import Event

    _sync(account)  # creates the calendar
    server = Server(account)
    start = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    ev = Event()
    ev.add("uid", "phone-123@example.com")
    ev.add("dtstamp", timezone.now())
    ev.add("dtstart", start)
    ev.add("duration", dt.timedelta(minutes=45))
    ev.add("summary", "Lunch with Ivan")
    server.put(server.calendar_path() + "phone-123.ics", ev)
    # when
    report = _sync(account)
    # then
    assert report.created == 1
    meeting = Interaction.objects.get(subject="Lunch with Ivan")
    assert (meeting.kind, meeting.status, meeting.responsible_id) == ("meeting", "planned", bob.pk)
    assert meeting.ends_at == start + dt.timedelta(minutes=45)
    assert _sync(account).changed == 0


def test_an_event_from_the_phone_keeps_its_uid_and_alarm_when_edited_in_rapport(bob, account):
    from icalendar import Alarm, Event

    _sync(account)
    server = Server(account)
    start = (timezone.now() + dt.timedelta(days=3)).replace(microsecond=0)
    ev = Event()
    ev.add("uid", "phone-9@example.com")
    ev.add("dtstamp", timezone.now())
    ev.add("dtstart", start)
    ev.add("dtend", start + dt.timedelta(hours=1))
    ev.add("summary", "Visit the plant")
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", "Reminder")
    alarm.add("trigger", dt.timedelta(minutes=-15))
    ev.add_component(alarm)
    href = server.calendar_path() + "phone-9.ics"
    server.put(href, ev)
    _sync(account)
    meeting = Interaction.objects.get(subject="Visit the plant")
    # when
    interaction_update(actor=bob, interaction=meeting, data={"place": "Plant gate 2"})
    assert _sync(account).pushed == 1
    # then
    event = server.get(href)
    assert str(event["uid"]) == "phone-9@example.com"
    assert str(event["location"]) == "Plant gate 2"
    assert [c.name for c in event.subcomponents] == ["VALARM"]
    assert _sync(account).changed == 0


def test_a_conflict_goes_to_the_later_edit_and_the_loser_stays_in_history(bob, account):
    later_on_server = _meeting(bob, "Kick-off")
    later_in_rapport = _meeting(bob, "Review", days=2)
    _sync(account)
    server = Server(account)
    # given: both edited on both sides since the last sync
    server.edit(
        _href(account, "interaction", later_in_rapport),
        modified=timezone.now() - dt.timedelta(minutes=5),
        summary="Review (phone)",
    )
    interaction_update(actor=bob, interaction=later_on_server, data={"subject": "Kick-off (CRM)"})
    interaction_update(actor=bob, interaction=later_in_rapport, data={"subject": "Review (CRM)"})
    server.edit(
        _href(account, "interaction", later_on_server),
        modified=timezone.now() + dt.timedelta(minutes=1),
        summary="Kick-off (phone)",
    )
    # when
    report = _sync(account)
    # then: the later write wins on both sides
    assert report.conflicts == 2
    later_on_server.refresh_from_db()
    later_in_rapport.refresh_from_db()
    assert later_on_server.subject == "Kick-off (phone)"
    assert later_in_rapport.subject == "Review (CRM)"
    assert str(server.get(_href(account, "interaction", later_on_server))["summary"]) == (
        "Kick-off (phone)"
    )
    assert str(server.get(_href(account, "interaction", later_in_rapport))["summary"]) == (
        "Review (CRM)"
    )
    # and each loser is kept in the record's history: field -> [lost, kept]
    lost_rapport = AuditEntry.objects.get(
        object_type="interaction",
        object_id=later_on_server.pk,
        changes__has_key="caldav_conflict",
    )
    assert lost_rapport.changes["subject"] == ["Kick-off (CRM)", "Kick-off (phone)"]
    lost_server = AuditEntry.objects.get(
        object_type="interaction",
        object_id=later_in_rapport.pk,
        changes__has_key="caldav_conflict",
    )
    assert lost_server.changes["subject"] == ["Review (phone)", "Review (CRM)"]
    assert _sync(account).changed == 0


def test_a_task_goes_to_the_server_and_its_completion_comes_back(bob, account):
    due = (timezone.now() + dt.timedelta(days=1)).replace(microsecond=0)
    task = task_create(actor=bob, data={"title": "Send the proposal", "due_at": due, "priority": 3})
    _sync(account)
    server = Server(account)
    href = _href(account, "task", task)
    todo = server.get(href)
    assert todo.name == "VTODO"
    assert str(todo["uid"]) == f"task-{task.pk}@rapport"
    assert todo["due"].dt == due
    assert str(todo["status"]) == "NEEDS-ACTION"
    assert int(todo["priority"]) == 3
    # when: ticked off on the phone
    server.edit(href, modified=timezone.now(), status="COMPLETED")
    report = _sync(account)
    # then
    task.refresh_from_db()
    assert report.pulled == 1
    assert task.status == "done"
    assert task.completed_at is not None
    assert _sync(account).changed == 0


def test_a_new_todo_on_the_server_becomes_a_task(bob, account):
    from icalendar import Todo

    _sync(account)
    server = Server(account)
    todo = Todo()
    todo.add("uid", "todo-1@example.com")
    todo.add("dtstamp", timezone.now())
    todo.add("summary", "Call back Ivan")
    todo.add("priority", 1)
    server.put(server.calendar_path() + "todo-1.ics", todo)
    assert _sync(account).created == 1
    task = Task.objects.get(title="Call back Ivan")
    assert (task.responsible_id, task.priority, task.status) == (bob.pk, 4, "open")


def test_a_second_sync_changes_nothing(bob, account):
    meeting = _meeting(bob)
    task_create(actor=bob, data={"title": "Prepare the demo"})
    first = _sync(account)
    assert first.pushed == 2
    etags = dict(SyncedItem.objects.values_list("href", "etag"))
    audits = AuditEntry.objects.count()
    # when
    second = _sync(account)
    # then
    assert second.changed == 0
    assert second.conflicts == 0
    assert dict(SyncedItem.objects.values_list("href", "etag")) == etags
    assert AuditEntry.objects.count() == audits
    meeting.refresh_from_db()
    assert meeting.version == 1


def test_a_meeting_moved_to_the_recycle_bin_leaves_the_server(bob, account):
    meeting = _meeting(bob)
    _sync(account)
    href = _href(account, "interaction", meeting)
    Interaction.objects.filter(pk=meeting.pk).update(deleted_at=timezone.now(), version=2)
    assert _sync(account).removed == 1
    r = Server(account).client.request(Server(account).url(href))
    assert r.status == 404


def test_a_wrong_server_is_reported_as_the_last_error(bob, radicale):
    account = caldav_sync.caldav_connect(
        user=bob,
        data={"server_url": f"http://127.0.0.1:{_free_port()}/", "username": "x", "password": "x"},
    )
    report = caldav_sync.sync_account(account)
    account.refresh_from_db()
    assert report.errors
    assert account.last_error
    assert account.lease_until is None


def test_addresses_inside_the_server_are_refused(settings):
    settings.CALDAV_ALLOW_LOOPBACK = False
    for url in ("http://127.0.0.1:5232/", "http://169.254.169.254/", "ftp://example.com/"):
        with pytest.raises(caldav_sync.CalDavError):
            caldav_sync.check_server_url(url)


def test_the_command_syncs_one_user(bob, account, capsys):
    _meeting(bob)
    call_command("caldav_sync", user=bob.username)
    assert "1 sent" in capsys.readouterr().out
    assert SyncedItem.objects.filter(account=account).count() == 1


# --- the section of the calendar page --------------------------------------------------------


def test_the_calendar_page_connects_syncs_and_never_shows_the_password(bob, radicale, client_for):
    c = client_for(bob)
    r = c.post(
        reverse("caldav-connect"),
        {
            "server_url": radicale,
            "username": "bob-page",
            "password": "s3cret-pass",
            "calendar_name": "CRM",
        },
    )
    assert r.status_code == 302
    account = CalDavAccount.objects.get(user=bob)
    assert account.last_sync_at is not None
    assert account.last_error == ""
    page = c.get(reverse("calendar")).content.decode()
    assert "bob-page" in page
    assert radicale in page
    assert "s3cret-pass" not in page
    # a blank password keeps the stored one
    c.post(reverse("caldav-connect"), {"server_url": radicale, "username": "bob-page"})
    account.refresh_from_db()
    assert account.password == "s3cret-pass"
    assert c.post(reverse("caldav-sync")).status_code == 302
    assert c.post(reverse("caldav-disconnect")).status_code == 302
    assert not CalDavAccount.objects.filter(user=bob).exists()


def test_the_caldav_actions_are_post_only_and_for_logged_in_users(bob, client, client_for):
    for name in ("caldav-connect", "caldav-disconnect", "caldav-sync"):
        assert client_for(bob).get(reverse(name)).status_code == 405
        assert client.post(reverse(name)).status_code == 302  # to the login page


def test_one_user_cannot_touch_another_users_account(bob, carol, account, client_for):
    client_for(carol).post(reverse("caldav-disconnect"))
    client_for(carol).post(reverse("caldav-sync"))
    assert CalDavAccount.objects.filter(user=bob).exists()
    account.refresh_from_db()
    assert account.last_sync_at is None
