"""Every write of interactions, tasks and notifications: audited, with outbox events.

Cards, the task pages, the API and the event handlers (stalled deals) call these.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.activities.models import (
    Direction,
    Interaction,
    InteractionKind,
    InteractionStatus,
    Notification,
    NotificationKind,
    Participant,
    Priority,
    Task,
    TaskStatus,
    Thread,
)
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.events import changes_payload, event_record
from rapport.core.ownership import parse_when, resolve_responsible, team_for
from rapport.core.scopes import scope_allows

LINKS = ("company", "person", "deal", "lead")
# What counts as contact with a client for the "no contact for N days" reminder.
CONTACT_KINDS = (
    InteractionKind.CALL,
    InteractionKind.EMAIL,
    InteractionKind.MEETING,
    InteractionKind.MESSAGE,
)


def _client_contacted(obj: Interaction) -> None:
    """A done call, email, meeting or message is the client's deals' last contact."""
    if obj.status != InteractionStatus.DONE or obj.kind not in CONTACT_KINDS or obj.at is None:
        return
    from rapport.sales.services import deals_contacted

    deals_contacted(
        company_id=obj.company_id, person_id=obj.person_id, deal_id=obj.deal_id, at=obj.at
    )


INTERACTION_FIELDS = [
    "kind",
    "status",
    "direction",
    "subject",
    "body",
    "at",
    "ends_at",
    "duration_seconds",
    "result",
    "place",
    "recording_url",
    "responsible",
    "company",
    "person",
    "deal",
    "lead",
]
TASK_FIELDS = [
    "title",
    "description",
    "status",
    "priority",
    "due_at",
    "remind_at",
    "responsible",
    "parent",
    "company",
    "person",
    "deal",
    "lead",
]


def _links(
    actor: User | None, data: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    """The cards a record belongs to, each visible to ``actor`` (404-like error otherwise)."""
    from rapport.core.selectors import record_get

    out: dict[str, Any] = {}
    for name in LINKS:
        key = f"{name}_id"
        if key not in data:
            continue
        value = data[key]
        if value in (None, ""):
            out[name] = None
            continue
        try:
            out[name] = (
                record_get(user=actor, object_type=name, object_id=int(value))
                if actor is not None
                else _model(name).objects.get(pk=int(value))
            )
        except (Http404, ObjectDoesNotExist, ValueError, TypeError):
            errors[key] = [_("No such record, or it is outside your access.")]
    return out


def _model(name: str) -> Any:
    from rapport.parties.models import Company, Person
    from rapport.sales.models import Deal, Lead

    return {"company": Company, "person": Person, "deal": Deal, "lead": Lead}[name]


def _fill_links(obj: Interaction | Task) -> None:
    """A deal or lead brings its client; a person at one company brings the company."""
    if obj.deal is not None:
        obj.company = obj.company or obj.deal.company
        obj.person = obj.person or obj.deal.contact or obj.deal.person
    if obj.lead is not None:
        obj.company = obj.company or obj.lead.company
        obj.person = obj.person or obj.lead.person


def _check(actor: User | None, object_type: str, action: str, obj: Interaction | Task) -> None:
    if actor is None:
        return
    if not scope_allows(
        actor, object_type, action, owner_id=obj.responsible_id, team_id=obj.team_id
    ):
        raise PermissionDenied(_("You may not %(action)s this record.") % {"action": _(action)})


# --- interactions -----------------------------------------------------------------------------


def _interaction_clean(
    data: dict[str, Any],
    actor: User | None,
    errors: dict[str, list[str]],
    existing: Interaction | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "kind" in data or existing is None:
        out["kind"] = str(data.get("kind") or "")
        if out["kind"] not in InteractionKind.values:
            errors["kind"] = [_("Choose what kind of interaction it is.")]
    if "status" in data or existing is None:
        default = InteractionStatus.PLANNED if out.get("kind") == "planned" else "done"
        out["status"] = str(data.get("status") or default)
        if out["status"] not in InteractionStatus.values:
            errors["status"] = [_("Unknown status.")]
    if "direction" in data:
        out["direction"] = str(data["direction"] or "")
        if out["direction"] not in Direction.values:
            errors["direction"] = [_("Unknown direction.")]
    for name, size in (("subject", 300), ("result", 300), ("place", 300), ("email_from", 300)):
        if name in data:
            out[name] = str(data[name] or "").strip()[:size]
    for name in ("body", "email_to", "email_cc"):
        if name in data:
            out[name] = str(data[name] or "").strip()
    if "recording_url" in data:
        url = str(data["recording_url"] or "").strip()
        if url and not url.startswith(("http://", "https://")):
            errors["recording_url"] = [_("Enter a web address starting with http:// or https://.")]
        out["recording_url"] = url[:500]
    if "at" in data or existing is None:
        out["at"] = parse_when(data.get("at"), "at", errors) or timezone.now()
    if "ends_at" in data:
        out["ends_at"] = parse_when(data["ends_at"], "ends_at", errors)
    if "duration_seconds" in data:
        raw = data["duration_seconds"]
        try:
            out["duration_seconds"] = int(raw) if raw not in (None, "") else None
            if out["duration_seconds"] is not None and out["duration_seconds"] < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["duration_seconds"] = [_("Enter the duration as a whole number of seconds.")]
    start = out.get("at", existing.at if existing else None)
    end = out.get("ends_at", existing.ends_at if existing else None)
    if start and end and end < start:
        errors["ends_at"] = [_("The end is before the start.")]
    if "responsible_id" in data or existing is None:
        out["responsible"] = resolve_responsible(
            actor, "interaction", data.get("responsible_id"), errors
        )
    out.update(_links(actor, data, errors))
    return out


def _participants(
    actor: User | None, items: list[dict[str, Any]], errors: dict[str, list[str]]
) -> list[Participant]:
    out: list[Participant] = []
    for item in items:
        text = str(item.get("text") or "").strip()[:300]
        found = _links(
            actor,
            {k: item[k] for k in ("company_id", "person_id") if item.get(k) not in (None, "")},
            errors,
        )
        user = None
        if item.get("user_id"):
            user = User.objects.filter(pk=item["user_id"], is_active=True).first()
            if user is None:
                errors["participants"] = [_("No active user with this id.")]
        if "company_id" in errors or "person_id" in errors:
            errors["participants"] = [_("A participant is outside your access.")]
            errors.pop("company_id", None)
            errors.pop("person_id", None)
            continue
        if not (text or found or user):
            continue
        out.append(
            Participant(
                person=found.get("person"), company=found.get("company"), user=user, text=text
            )
        )
    return out


@transaction.atomic
def interaction_log(*, actor: User | None, data: dict[str, Any]) -> Interaction:
    """Record a call, email, meeting, note or message (done or planned) on the client's cards."""
    if actor is not None and not scope_allows(
        actor, "interaction", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not log interactions."))
    errors: dict[str, list[str]] = {}
    fields = _interaction_clean(data, actor, errors, None)
    participants = _participants(actor, list(data.get("participants") or []), errors)
    thread = None
    if data.get("thread_id"):
        thread = Thread.objects.filter(pk=data["thread_id"]).first()
        if thread is None:
            errors["thread_id"] = [_("No such thread.")]
    if errors:
        raise FieldErrors(errors)
    obj = Interaction(**fields)
    _fill_links(obj)
    obj.team = team_for(obj.responsible, actor)
    obj.created_by = actor if actor and actor.pk else None
    obj.thread = thread or (Thread.objects.create(subject=obj.subject) if obj.subject else None)
    obj.save()
    for p in participants:
        p.interaction = obj
        p.save()
    audit_record(
        actor=actor,
        instance=obj,
        object_type="interaction",
        action="create",
        changes={
            k: [None, v]
            for k, v in snapshot(obj, INTERACTION_FIELDS).items()
            if v not in ("", None)
        },
    )
    _client_contacted(obj)
    event_record(
        name="interaction.logged",
        object_type="interaction",
        object_id=obj.pk,
        actor=actor,
        payload={
            "kind": obj.kind,
            "status": obj.status,
            **{f"{n}": getattr(obj, f"{n}_id") for n in LINKS},
        },
    )
    return obj


@transaction.atomic
def interaction_update(
    *,
    actor: User | None,
    interaction: Interaction,
    data: dict[str, Any],
    version: int | None = None,
) -> Interaction:
    obj = Interaction.objects.select_for_update().get(pk=interaction.pk)
    _check(actor, "interaction", "edit", obj)
    if version is not None and int(version) != obj.version:
        raise StaleVersion(current_version=obj.version)
    errors: dict[str, list[str]] = {}
    fields = _interaction_clean(data, actor, errors, obj)
    if errors:
        raise FieldErrors(errors)
    before = snapshot(obj, INTERACTION_FIELDS)
    for k, v in fields.items():
        setattr(obj, k, v)
    changes = diff(before, snapshot(obj, INTERACTION_FIELDS))
    if not changes:
        return obj
    changes["version"] = [obj.version, obj.version + 1]
    obj.version += 1
    obj.save()
    _client_contacted(obj)
    audit_record(
        actor=actor, instance=obj, object_type="interaction", action="update", changes=changes
    )
    event_record(
        name="interaction.updated",
        object_type="interaction",
        object_id=obj.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    return obj


# --- tasks ------------------------------------------------------------------------------------


def _task_clean(
    data: dict[str, Any], actor: User | None, errors: dict[str, list[str]], existing: Task | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "title" in data or existing is None:
        out["title"] = str(data.get("title") or "").strip()[:300]
        if not out["title"]:
            errors["title"] = [_("This field is required.")]
    if "description" in data:
        out["description"] = str(data["description"] or "").strip()
    if "priority" in data:
        try:
            out["priority"] = int(data["priority"] or Priority.NORMAL)
            if out["priority"] not in Priority.values:
                raise ValueError
        except (TypeError, ValueError):
            errors["priority"] = [_("Unknown priority.")]
    if "status" in data:
        out["status"] = str(data["status"] or "")
        if out["status"] not in TaskStatus.values:
            errors["status"] = [_("Unknown status.")]
    if "due_at" in data:
        out["due_at"] = parse_when(data["due_at"], "due_at", errors)
    if "remind_at" in data:
        out["remind_at"] = parse_when(data["remind_at"], "remind_at", errors)
    if "remind_minutes_before" in data and data["remind_minutes_before"] not in (None, ""):
        due = out.get("due_at", existing.due_at if existing else None)
        try:
            minutes = int(data["remind_minutes_before"])
            if minutes < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["remind_minutes_before"] = [_("Enter a number of minutes.")]
        else:
            if due is None:
                errors["remind_minutes_before"] = [_("Set the due time first.")]
            else:
                out["remind_at"] = due - dt.timedelta(minutes=minutes)
    due = out.get("due_at", existing.due_at if existing else None)
    remind = out.get("remind_at", existing.remind_at if existing else None)
    if due and remind and remind > due:
        errors["remind_at"] = [_("The reminder is after the due time.")]
    if "responsible_id" in data or existing is None:
        out["responsible"] = resolve_responsible(actor, "task", data.get("responsible_id"), errors)
    if "parent_id" in data:
        parent = None
        if data["parent_id"] not in (None, ""):
            parent = Task.objects.filter(pk=data["parent_id"], deleted_at__isnull=True).first()
            if parent is None or (
                actor is not None
                and not scope_allows(
                    actor, "task", "view", owner_id=parent.responsible_id, team_id=parent.team_id
                )
            ):
                errors["parent_id"] = [_("No such task, or it is outside your access.")]
                parent = None
            elif existing is not None and (
                parent.pk == existing.pk or parent.parent_id == existing.pk
            ):
                errors["parent_id"] = [_("A task cannot be its own subtask.")]
        out["parent"] = parent
    out.update(_links(actor, data, errors))
    return out


def past_due_warning(task: Task) -> str:
    """A task due in the past is allowed; the page shows this warning."""
    if task.due_at and task.is_open and task.due_at < timezone.now():
        return _("The due time is already in the past.")
    return ""


def _notify_assignee(task: Task, actor: User | None) -> None:
    if task.responsible_id and (actor is None or task.responsible_id != actor.pk):
        notify(
            user_id=task.responsible_id,
            kind=NotificationKind.TASK_ASSIGNED,
            key=f"task_assigned:{task.pk}:{task.responsible_id}:{task.version}",
            title=_("New task for you: %(title)s") % {"title": task.title},
            body=(_("From %(who)s") % {"who": actor}) if actor else "",
            url=f"/tasks/{task.pk}/",
        )


@transaction.atomic
def task_create(*, actor: User | None, data: dict[str, Any]) -> Task:
    if actor is not None and not scope_allows(
        actor, "task", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not create tasks."))
    errors: dict[str, list[str]] = {}
    fields = _task_clean(data, actor, errors, None)
    coexecutors = _users(data.get("coexecutor_ids"), errors)
    if errors:
        raise FieldErrors(errors)
    origin_key = data.get("origin_key")
    task = Task(**fields, origin_key=origin_key or None)
    parent = fields.get("parent")
    if parent is not None:
        for name in LINKS:
            if getattr(task, f"{name}_id") is None:
                setattr(task, name, getattr(parent, name))
    _fill_links(task)
    task.team = team_for(task.responsible, actor)
    task.created_by = actor if actor and actor.pk else None
    task.save()
    if coexecutors:
        task.coexecutors.set(coexecutors)
    audit_record(
        actor=actor,
        instance=task,
        object_type="task",
        action="create",
        changes={
            k: [None, v] for k, v in snapshot(task, TASK_FIELDS).items() if v not in ("", None)
        },
    )
    event_record(name="task.created", object_type="task", object_id=task.pk, actor=actor)
    _notify_assignee(task, actor)
    return task


def _users(ids: Any, errors: dict[str, list[str]]) -> list[User]:
    try:
        wanted = {int(i) for i in ids or []}
    except (TypeError, ValueError):
        errors["coexecutor_ids"] = [_("Give user ids.")]
        return []
    users = list(User.objects.filter(pk__in=wanted, is_active=True))
    if len(users) != len(wanted):
        errors["coexecutor_ids"] = [_("No active user with this id.")]
    return users


@transaction.atomic
def task_update(
    *, actor: User | None, task: Task, data: dict[str, Any], version: int | None = None
) -> Task:
    obj = Task.objects.select_for_update().get(pk=task.pk)
    _check(actor, "task", "edit", obj)
    if version is not None and int(version) != obj.version:
        raise StaleVersion(current_version=obj.version)
    errors: dict[str, list[str]] = {}
    fields = _task_clean(data, actor, errors, obj)
    coexecutors = _users(data["coexecutor_ids"], errors) if "coexecutor_ids" in data else None
    if errors:
        raise FieldErrors(errors)
    before = snapshot(obj, TASK_FIELDS)
    old_assignee = obj.responsible_id
    for k, v in fields.items():
        setattr(obj, k, v)
    if "responsible" in fields:
        obj.team = team_for(obj.responsible, actor)
    if "due_at" in fields or "remind_at" in fields:
        obj.reminded_at = (
            None if obj.remind_at and obj.remind_at > timezone.now() else obj.reminded_at
        )
        obj.overdue_notified_at = None
    finished = obj.status == TaskStatus.DONE and before["status"] != TaskStatus.DONE
    if finished:
        obj.completed_at = timezone.now()
    elif obj.status != TaskStatus.DONE:
        obj.completed_at = None
    changes = diff(before, snapshot(obj, TASK_FIELDS))
    if coexecutors is not None:
        old = sorted(obj.coexecutors.values_list("pk", flat=True))
        new = sorted(u.pk for u in coexecutors)
        if old != new:
            obj.coexecutors.set(coexecutors)
            changes["coexecutors"] = [old, new]
    if not changes:
        return obj
    changes["version"] = [obj.version, obj.version + 1]
    obj.version += 1
    obj.save()
    audit_record(actor=actor, instance=obj, object_type="task", action="update", changes=changes)
    event_record(
        name="task.updated",
        object_type="task",
        object_id=obj.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    if finished:
        event_record(name="task.done", object_type="task", object_id=obj.pk, actor=actor)
    if obj.responsible_id != old_assignee:
        _notify_assignee(obj, actor)
    return obj


def task_complete(*, actor: User | None, task: Task, version: int | None = None) -> Task:
    return task_update(actor=actor, task=task, data={"status": TaskStatus.DONE}, version=version)


# --- notifications ----------------------------------------------------------------------------


def notify(
    *, user_id: int, kind: str, key: str, title: str, body: str = "", url: str = ""
) -> Notification | None:
    """A notification for ``user_id`` unless one with ``key`` exists (exactly once)."""
    try:
        with transaction.atomic():
            note = Notification.objects.create(
                user_id=user_id, kind=kind, key=key[:160], title=title[:300], body=body, url=url
            )
            # The email (for those who asked for this kind) goes out from the worker.
            event_record(name="notification.created", object_type="notification", object_id=note.pk)
            return note
    except IntegrityError:
        return None


def notifications_mark_read(*, user: User, ids: list[int] | None = None) -> int:
    qs = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return qs.update(read_at=timezone.now())


def reminders_due(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Reminders whose time came and overdue tasks: one notification each, exactly once.

    The conditional update marks the task first; a second worker (or a restarted one)
    updates 0 rows and sends nothing. Catches up on everything missed while it was down."""
    now = now or timezone.now()
    sent = 0
    for pk in list(
        Task.objects.filter(
            remind_at__lte=now,
            reminded_at__isnull=True,
            status__in=["open", "in_progress"],
            deleted_at__isnull=True,
        ).values_list("pk", flat=True)[:limit]
    ):
        with transaction.atomic():
            if not Task.objects.filter(pk=pk, reminded_at__isnull=True).update(reminded_at=now):
                continue
            task = Task.objects.get(pk=pk)
            if task.responsible_id:
                notify(
                    user_id=task.responsible_id,
                    kind=NotificationKind.REMINDER,
                    key=f"reminder:{task.pk}:{task.remind_at:%Y%m%d%H%M%S}",
                    title=_("Reminder: %(title)s") % {"title": task.title},
                    url=f"/tasks/{task.pk}/",
                )
            event_record(name="reminder.due", object_type="task", object_id=task.pk)
            sent += 1
    for pk in list(
        Task.objects.filter(
            due_at__lt=now,
            overdue_notified_at__isnull=True,
            status__in=["open", "in_progress"],
            deleted_at__isnull=True,
        ).values_list("pk", flat=True)[:limit]
    ):
        with transaction.atomic():
            if not Task.objects.filter(pk=pk, overdue_notified_at__isnull=True).update(
                overdue_notified_at=now
            ):
                continue
            task = Task.objects.get(pk=pk)
            if task.responsible_id:
                notify(
                    user_id=task.responsible_id,
                    kind=NotificationKind.TASK_OVERDUE,
                    key=f"task_overdue:{task.pk}:{task.due_at:%Y%m%d%H%M%S}",
                    title=_("Overdue: %(title)s") % {"title": task.title},
                    url=f"/tasks/{task.pk}/",
                )
            event_record(name="task.overdue", object_type="task", object_id=task.pk)
            sent += 1
    return sent


# --- calendar ---------------------------------------------------------------------------------


@transaction.atomic
def reschedule(
    *, actor: User | None, kind: str, obj: Interaction | Task, start: dt.datetime
) -> Interaction | Task:
    """Move a calendar item to ``start``; a meeting keeps its length."""
    if isinstance(obj, Interaction):
        data: dict[str, Any] = {"at": start}
        if obj.ends_at:
            data["ends_at"] = start + (obj.ends_at - obj.at)
        return interaction_update(actor=actor, interaction=obj, data=data)
    data = {"due_at": start}
    if obj.remind_at and obj.due_at:
        data["remind_at"] = start - (obj.due_at - obj.remind_at)
    return task_update(actor=actor, task=obj, data=data)


def feed_create(*, user: User) -> tuple[str, Any]:
    """A new private ICS address for ``user``; the token is shown once, stored hashed."""
    import hashlib
    import secrets

    from rapport.activities.models import CalendarFeed

    token = "cal_" + secrets.token_urlsafe(24)
    feed = CalendarFeed.objects.create(
        user=user, digest=hashlib.sha256(token.encode()).hexdigest(), prefix=token[:10]
    )
    audit_record(
        actor=user,
        instance=user,
        object_type="user",
        action="update",
        changes={"calendar_feed": [None, token[:10] + "…"]},
    )
    return token, feed


def feed_revoke(*, user: User, feed_id: int) -> None:
    from rapport.activities.models import CalendarFeed

    feed = CalendarFeed.objects.filter(pk=feed_id, user=user, revoked_at__isnull=True).first()
    if feed is None:
        raise Http404
    feed.revoked_at = timezone.now()
    feed.save(update_fields=["revoked_at"])
    audit_record(
        actor=user,
        instance=user,
        object_type="user",
        action="update",
        changes={"calendar_feed": [feed.prefix + "…", None]},
    )


def ics_for(*, user: User, items: list[Any]) -> bytes:
    """The user's calendar as iCalendar (RFC 5545) text."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//Rapport CRM//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"Rapport · {user}")
    stamp = timezone.now()
    for it in items:
        ev = Event()
        ev.add("uid", f"{it.kind}-{it.obj.pk}@rapport")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", it.start)
        ev.add("dtend", it.end)
        ev.add("summary", it.title)
        place = getattr(it.obj, "place", "")
        if place:
            ev.add("location", place)
        text = getattr(it.obj, "body", "") or getattr(it.obj, "description", "")
        if text:
            ev.add("description", text)
        ev.add("last-modified", it.obj.updated_at)
        ev.add("sequence", it.obj.version)
        cal.add_component(ev)
    return bytes(cal.to_ical())
