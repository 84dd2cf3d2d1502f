"""Activities API: interactions, threads, tasks, calendar, notifications, timeline, ICS feeds.

Parse -> call a service or selector -> schema out; the rules live in the services.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from rapport.activities import selectors, services
from rapport.activities.models import Interaction, Task, Thread
from rapport.core.errors import FieldErrors
from rapport.core.pagination import keyset_page
from rapport.parties.api import _if_match

router = Router(tags=["activities"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 412: ErrorOut}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ref(Schema):
    id: int
    name: str


class ParticipantIn(Strict):
    person_id: int | None = None
    company_id: int | None = None
    user_id: int | None = None
    text: str = Field("", max_length=300, description="Free text, e.g. “secretary, +7 …”")


class InteractionWrite(Strict):
    kind: Literal["call", "email", "meeting", "planned", "note", "message"]
    status: Literal["planned", "done", "cancelled"] | None = None
    direction: Literal["", "in", "out"] = ""
    subject: str = Field("", max_length=300)
    body: str = ""
    at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    duration_seconds: int | None = Field(None, ge=0)
    result: str = Field("", max_length=300)
    place: str = Field("", max_length=300)
    recording_url: str = Field("", max_length=500)
    email_from: str = Field("", max_length=300)
    email_to: str = ""
    email_cc: str = ""
    responsible_id: int | None = None
    company_id: int | None = None
    person_id: int | None = None
    deal_id: int | None = None
    lead_id: int | None = None
    thread_id: int | None = None
    participants: list[ParticipantIn] = []


class InteractionPatch(Strict):
    status: Literal["planned", "done", "cancelled"] | None = None
    direction: Literal["", "in", "out"] | None = None
    subject: str | None = Field(None, max_length=300)
    body: str | None = None
    at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    duration_seconds: int | None = Field(None, ge=0)
    result: str | None = Field(None, max_length=300)
    place: str | None = Field(None, max_length=300)
    responsible_id: int | None = None


class ParticipantOut(Schema):
    person_id: int | None
    company_id: int | None
    user_id: int | None
    text: str


class InteractionOut(Schema):
    id: int
    kind: str
    status: str
    direction: str
    subject: str
    body: str
    at: dt.datetime
    ends_at: dt.datetime | None
    duration_seconds: int | None
    result: str
    place: str
    recording_url: str
    email_from: str
    email_to: str
    email_cc: str
    message_id: str
    responsible: Ref | None
    company_id: int | None
    person_id: int | None
    deal_id: int | None
    lead_id: int | None
    thread_id: int | None
    participants: list[ParticipantOut]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class InteractionPage(Schema):
    items: list[InteractionOut]
    next_cursor: str | None


class ThreadOut(Schema):
    id: int
    subject: str
    interactions: list[InteractionOut]


class TaskWrite(Strict):
    title: str = Field(max_length=300)
    description: str = ""
    priority: Literal[1, 2, 3, 4] = 2
    due_at: dt.datetime | None = None
    remind_at: dt.datetime | None = None
    remind_minutes_before: int | None = Field(None, ge=0)
    responsible_id: int | None = None
    coexecutor_ids: list[int] = []
    parent_id: int | None = None
    company_id: int | None = None
    person_id: int | None = None
    deal_id: int | None = None
    lead_id: int | None = None


class TaskPatch(Strict):
    title: str | None = Field(None, max_length=300)
    description: str | None = None
    status: Literal["open", "in_progress", "done", "cancelled"] | None = None
    priority: Literal[1, 2, 3, 4] | None = None
    due_at: dt.datetime | None = None
    remind_at: dt.datetime | None = None
    remind_minutes_before: int | None = Field(None, ge=0)
    responsible_id: int | None = None
    coexecutor_ids: list[int] | None = None


class TaskOut(Schema):
    id: int
    title: str
    description: str
    status: str
    priority: int
    due_at: dt.datetime | None
    remind_at: dt.datetime | None
    completed_at: dt.datetime | None
    overdue: bool
    responsible: Ref | None
    coexecutor_ids: list[int]
    parent_id: int | None
    subtasks_total: int
    subtasks_done: int
    company_id: int | None
    person_id: int | None
    deal_id: int | None
    lead_id: int | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class CalendarItemOut(Schema):
    kind: str
    id: int
    title: str
    start: dt.datetime
    end: dt.datetime
    overdue: bool


class NotificationOut(Schema):
    id: int
    kind: str
    title: str
    body: str
    url: str
    created_at: dt.datetime
    read_at: dt.datetime | None


class ReadIn(Strict):
    ids: list[int] | None = Field(None, description="Omit to mark all as read")


class ReadOut(Schema):
    marked: int


class TimelineEntryOut(Schema):
    kind: str
    at: dt.datetime
    id: int
    title: str


class FeedOut(Schema):
    id: int
    url: str | None = Field(None, description="Shown once, at creation")
    prefix: str
    created_at: dt.datetime


def _ref(user: Any) -> dict[str, Any] | None:
    return {"id": user.pk, "name": str(user)} if user is not None else None


def interaction_out(i: Interaction) -> dict[str, Any]:
    return {
        **{
            f: getattr(i, f)
            for f in (
                "id",
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
                "email_from",
                "email_to",
                "email_cc",
                "message_id",
                "company_id",
                "person_id",
                "deal_id",
                "lead_id",
                "thread_id",
                "version",
                "created_at",
                "updated_at",
            )
        },
        "responsible": _ref(i.responsible),
        "participants": [
            {
                "person_id": p.person_id,
                "company_id": p.company_id,
                "user_id": p.user_id,
                "text": p.text,
            }
            for p in i.participants.all()
        ],
    }


def task_out(t: Task) -> dict[str, Any]:
    subs = list(t.subtasks.filter(deleted_at__isnull=True).values_list("status", flat=True))
    return {
        **{
            f: getattr(t, f)
            for f in (
                "id",
                "title",
                "description",
                "status",
                "priority",
                "due_at",
                "remind_at",
                "completed_at",
                "parent_id",
                "company_id",
                "person_id",
                "deal_id",
                "lead_id",
                "version",
                "created_at",
                "updated_at",
            )
        },
        "overdue": t.is_overdue,
        "responsible": _ref(t.responsible),
        "coexecutor_ids": sorted(t.coexecutors.values_list("pk", flat=True)),
        "subtasks_total": len(subs),
        "subtasks_done": sum(1 for s in subs if s == "done"),
    }


def _size(size: int) -> int:
    return max(1, min(size, 200))


# --- interactions -----------------------------------------------------------------------------


class InteractionQuery(Schema):
    kind: str | None = None
    status: str | None = None
    responsible_id: int | None = None
    company_id: int | None = None
    person_id: int | None = None
    deal_id: int | None = None
    lead_id: int | None = None
    thread_id: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    cursor: str | None = None
    size: int = 50


@router.get("/interactions", response={200: InteractionPage, **ERRORS}, summary="List interactions")
def interactions_list(request: HttpRequest, params: Query[InteractionQuery]) -> Any:
    qs = selectors.interaction_list(user=request.user)  # type: ignore[arg-type]
    for name in (
        "kind",
        "status",
        "responsible_id",
        "company_id",
        "person_id",
        "deal_id",
        "lead_id",
        "thread_id",
    ):
        value = getattr(params, name)
        if value not in (None, ""):
            qs = qs.filter(**{name: value})
    if params.date_from:
        qs = qs.filter(at__date__gte=params.date_from)
    if params.date_to:
        qs = qs.filter(at__date__lte=params.date_to)
    page = keyset_page(
        qs.prefetch_related("participants"),
        sort="-id",
        cursor=params.cursor,
        size=_size(params.size),
    )
    return {"items": [interaction_out(i) for i in page.items], "next_cursor": page.next_cursor}


@router.post(
    "/interactions", response={201: InteractionOut, **WRITE_ERRORS}, summary="Log an interaction"
)
def interactions_create(request: HttpRequest, body: InteractionWrite) -> Any:
    data = body.model_dump(exclude_unset=True)
    data["participants"] = [p.model_dump() for p in body.participants]
    obj = services.interaction_log(actor=request.user, data=data)  # type: ignore[arg-type]
    return Status(201, interaction_out(obj))


@router.get(
    "/interactions/{interaction_id}",
    response={200: InteractionOut, **ERRORS},
    summary="One interaction",
)
def interactions_get(request: HttpRequest, response: HttpResponse, interaction_id: int) -> Any:
    obj = selectors.interaction_get(user=request.user, interaction_id=interaction_id)  # type: ignore[arg-type]
    response["ETag"] = f'"{obj.version}"'
    return interaction_out(obj)


@router.patch(
    "/interactions/{interaction_id}",
    response={200: InteractionOut, **WRITE_ERRORS},
    summary="Change an interaction (If-Match: version → 412 when stale)",
)
def interactions_update(request: HttpRequest, interaction_id: int, body: InteractionPatch) -> Any:
    obj = selectors.interaction_get(user=request.user, interaction_id=interaction_id)  # type: ignore[arg-type]
    obj = services.interaction_update(
        actor=request.user,  # type: ignore[arg-type]
        interaction=obj,
        data=body.model_dump(exclude_unset=True),
        version=_if_match(request),
    )
    return interaction_out(obj)


@router.get("/threads/{thread_id}", response={200: ThreadOut, **ERRORS}, summary="A thread")
def threads_get(request: HttpRequest, thread_id: int) -> Any:
    thread = Thread.objects.filter(pk=thread_id).first()
    items = list(
        selectors.interaction_list(user=request.user)  # type: ignore[arg-type]
        .filter(thread_id=thread_id)
        .prefetch_related("participants")
        .order_by("at", "id")
    )
    if thread is None or not items:
        raise Http404
    return {
        "id": thread.pk,
        "subject": thread.subject,
        "interactions": [interaction_out(i) for i in items],
    }


# --- tasks ------------------------------------------------------------------------------------


class TaskQuery(Schema):
    view: Literal["mine", "team", "overdue"] = "mine"
    status: str = "open"
    q: str = ""


@router.get("/tasks", response={200: list[TaskOut], **ERRORS}, summary="My, team or overdue tasks")
def tasks_list(request: HttpRequest, params: Query[TaskQuery]) -> Any:
    qs = selectors.task_list(
        user=request.user,  # type: ignore[arg-type]
        view=params.view,
        status=params.status,
        q=params.q[:200],
    )
    return [task_out(t) for t in qs.order_by("due_at", "id")[:500]]


@router.post("/tasks", response={201: TaskOut, **WRITE_ERRORS}, summary="Create a task")
def tasks_create(request: HttpRequest, body: TaskWrite) -> Any:
    task = services.task_create(actor=request.user, data=body.model_dump(exclude_unset=True))  # type: ignore[arg-type]
    return Status(201, task_out(task))


@router.get("/tasks/{task_id}", response={200: TaskOut, **ERRORS}, summary="One task")
def tasks_get(request: HttpRequest, response: HttpResponse, task_id: int) -> Any:
    task = selectors.task_get(user=request.user, task_id=task_id)  # type: ignore[arg-type]
    response["ETag"] = f'"{task.version}"'
    return task_out(task)


@router.patch(
    "/tasks/{task_id}",
    response={200: TaskOut, **WRITE_ERRORS},
    summary="Change a task (If-Match: version → 412 when stale)",
)
def tasks_update(request: HttpRequest, task_id: int, body: TaskPatch) -> Any:
    task = selectors.task_get(user=request.user, task_id=task_id)  # type: ignore[arg-type]
    task = services.task_update(
        actor=request.user,  # type: ignore[arg-type]
        task=task,
        data=body.model_dump(exclude_unset=True),
        version=_if_match(request),
    )
    return task_out(task)


@router.get(
    "/tasks/{task_id}/subtasks", response={200: list[TaskOut], **ERRORS}, summary="Subtasks"
)
def tasks_subtasks(request: HttpRequest, task_id: int) -> Any:
    task = selectors.task_get(user=request.user, task_id=task_id)  # type: ignore[arg-type]
    return [task_out(t) for t in selectors.subtasks(user=request.user, task=task)]  # type: ignore[arg-type]


# --- calendar, notifications, timeline --------------------------------------------------------


class CalendarQuery(Schema):
    start: dt.datetime
    end: dt.datetime
    user_id: int | None = None


@router.get("/calendar", response={200: list[CalendarItemOut], **ERRORS}, summary="Calendar range")
def calendar_range(request: HttpRequest, params: Query[CalendarQuery]) -> Any:
    if params.end <= params.start:
        raise FieldErrors.single("end", _("The end is before the start."))
    if params.end - params.start > dt.timedelta(days=93):
        raise FieldErrors.single("end", _("Ask for at most three months at a time."))
    start = params.start if timezone.is_aware(params.start) else timezone.make_aware(params.start)
    end = params.end if timezone.is_aware(params.end) else timezone.make_aware(params.end)
    items = selectors.calendar_items(
        user=request.user,  # type: ignore[arg-type]
        start=start,
        end=end,
        user_ids=[params.user_id] if params.user_id else None,
    )
    return [
        {
            "kind": i.kind,
            "id": i.obj.pk,
            "title": i.title,
            "start": i.start,
            "end": i.end,
            "overdue": i.overdue,
        }
        for i in items
    ]


@router.get(
    "/notifications", response={200: list[NotificationOut], **ERRORS}, summary="My notifications"
)
def notifications_list(request: HttpRequest, unread: bool = False) -> Any:
    qs = selectors.notifications(user=request.user, unread_only=unread)  # type: ignore[arg-type]
    return list(qs[:200])


@router.post(
    "/notifications/read", response={200: ReadOut, **ERRORS}, summary="Mark notifications read"
)
def notifications_read(request: HttpRequest, body: ReadIn) -> Any:
    return {"marked": services.notifications_mark_read(user=request.user, ids=body.ids)}  # type: ignore[arg-type]


@router.get(
    "/timeline/{object_type}/{object_id}",
    response={200: list[TimelineEntryOut], **ERRORS},
    summary="A card's timeline, newest first",
)
def timeline_get(
    request: HttpRequest, object_type: str, object_id: int, kind: str = "", limit: int = 50
) -> Any:
    if object_type not in ("company", "person", "deal", "lead"):
        raise Http404
    kinds = [k for k in kind.split(",") if k in selectors.TIMELINE_KINDS] or None
    entries = selectors.timeline(
        user=request.user,  # type: ignore[arg-type]
        object_type=object_type,
        object_id=object_id,
        kinds=kinds,
        limit=max(1, min(limit, 200)),
    )
    return [{"kind": e.kind, "at": e.at, "id": e.obj.pk, "title": _entry_title(e)} for e in entries]


def _entry_title(e: selectors.Entry) -> str:
    if e.kind == "change":
        return f"{e.obj.action}: {', '.join(k for k in e.obj.changes if k != 'version')}"
    if e.kind == "stage":
        return str(e.obj)
    return str(getattr(e.obj, "title", "") or e.obj)


@router.post("/calendar/feeds", response={201: FeedOut, **ERRORS}, summary="New private ICS feed")
def feeds_create(request: HttpRequest) -> Any:
    token, feed = services.feed_create(user=request.user)  # type: ignore[arg-type]
    return Status(
        201,
        {
            "id": feed.pk,
            "url": request.build_absolute_uri(f"/calendar/feed/{token}.ics"),
            "prefix": feed.prefix,
            "created_at": feed.created_at,
        },
    )


@router.delete(
    "/calendar/feeds/{feed_id}", response={204: None, **ERRORS}, summary="Revoke an ICS feed"
)
def feeds_revoke(request: HttpRequest, feed_id: int) -> Any:
    services.feed_revoke(user=request.user, feed_id=feed_id)  # type: ignore[arg-type]
    return Status(204, None)
