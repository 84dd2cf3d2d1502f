"""Reads of interactions, tasks and notifications, always through the user's scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from rapport.accounts.models import User
from rapport.activities.models import Interaction, Notification, Task, TaskStatus
from rapport.core.models import AuditEntry
from rapport.core.scopes import scope_q

OPEN = [TaskStatus.OPEN, TaskStatus.IN_PROGRESS]


def interaction_list(*, user: User, action: str = "view") -> QuerySet[Interaction]:
    """Interactions ``user`` may ``action`` (view, or export for downloads)."""
    return Interaction.objects.filter(
        scope_q(user, "interaction", action), deleted_at__isnull=True
    ).select_related("responsible", "company", "person", "deal")


def interaction_get(*, user: User, interaction_id: int) -> Interaction:
    obj = interaction_list(user=user).filter(pk=interaction_id).first()
    if obj is None:
        raise Http404
    return obj


def task_list(
    *,
    user: User,
    view: str = "mine",
    status: str = "open",
    q: str = "",
    action: str = "view",
) -> QuerySet[Task]:
    """``view``: mine (assignee or co-executor), team (the user's scope), overdue (mine);
    ``action``: view, or export for downloads (the export permission's scope)."""
    qs = _tasks(user=user, view=view, status=status, q=q, action=action)
    return qs.select_related("responsible", "company", "person", "deal", "parent").annotate(
        n_sub=Count("subtasks", filter=Q(subtasks__deleted_at__isnull=True), distinct=True),
        n_sub_done=Count(
            "subtasks",
            filter=Q(subtasks__status=TaskStatus.DONE, subtasks__deleted_at__isnull=True),
            distinct=True,
        ),
    )


def overdue_count(*, user: User) -> int:
    """How many of the user's tasks (assignee or co-executor) are past due and still open."""
    return _tasks(user=user, view="overdue").count()


def _tasks(
    *, user: User, view: str, status: str = "open", q: str = "", action: str = "view"
) -> QuerySet[Task]:
    now = timezone.now()

    def by_status(tasks: QuerySet[Task]) -> QuerySet[Task]:
        if view == "overdue":
            return tasks.filter(status__in=OPEN, due_at__lt=now)
        if status == "open":
            return tasks.filter(status__in=OPEN)
        return tasks.filter(status=status) if status else tasks

    qs = by_status(Task.objects.filter(scope_q(user, "task", action), deleted_at__isnull=True))
    if view in ("mine", "overdue"):
        # The ids of the user's tasks (task_mine_idx) united with those where the user is a
        # co-executor: each task once without DISTINCT, and no scan of every top-level task
        # (SQLite otherwise picks the parent index for the task list's "parent IS NULL").
        own = by_status(Task.objects.filter(responsible=user)).order_by().values("pk")
        qs = qs.filter(pk__in=own.union(_cotask_ids([user.pk]).order_by()))
    if q:
        qs = qs.filter(title__icontains=q)
    return qs


def _cotask_ids(user_ids: list[int]) -> QuerySet[Any]:
    """Ids of the tasks where any of ``user_ids`` is a co-executor."""
    return Task.coexecutors.through.objects.filter(user_id__in=user_ids).values("task_id")


def task_get(*, user: User, task_id: int) -> Task:
    obj = (
        Task.objects.filter(scope_q(user, "task", "view"), pk=task_id, deleted_at__isnull=True)
        .select_related("responsible", "company", "person", "deal", "lead", "parent")
        .first()
    )
    if obj is None:
        # A co-executor sees the task even outside the role's scope.
        obj = Task.objects.filter(pk=task_id, coexecutors=user, deleted_at__isnull=True).first()
    if obj is None:
        raise Http404
    return obj


def subtasks(*, user: User, task: Task) -> QuerySet[Task]:
    return (
        task.subtasks.filter(deleted_at__isnull=True)
        .select_related("responsible")
        .order_by("due_at", "id")
    )


def notifications(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    qs = Notification.objects.filter(user=user)
    return qs.filter(read_at__isnull=True) if unread_only else qs


def unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


@dataclass
class Entry:
    """One line of a card's timeline."""

    kind: str  # interaction kind, "task", "stage", "change"
    at: dt.datetime
    obj: Any


TIMELINE_KINDS = (
    "call",
    "email",
    "meeting",
    "planned",
    "note",
    "message",
    "task",
    "stage",
    "change",
)


def timeline(
    *,
    user: User,
    object_type: str,
    object_id: int,
    kinds: list[str] | None = None,
    person_id: int | None = None,
    limit: int = 50,
) -> list[Entry]:
    """Interactions, tasks, stage changes and field changes of a card, newest first.

    Each source is read through the user's scope and cut at ``limit``, then merged."""
    from rapport.core.selectors import record_get

    record_get(user=user, object_type=object_type, object_id=object_id)
    wanted = set(kinds or TIMELINE_KINDS)
    link = {f"{object_type}_id": object_id}
    entries: list[Entry] = []
    inter_kinds = [
        k for k in ("call", "email", "meeting", "planned", "note", "message") if k in wanted
    ]
    if inter_kinds:
        qs = interaction_list(user=user).filter(kind__in=inter_kinds, **link)
        if person_id:
            qs = qs.filter(Q(person_id=person_id) | Q(participants__person_id=person_id)).distinct()
        entries += [Entry(i.kind, i.at, i) for i in qs.prefetch_related("participants")[:limit]]
    if "task" in wanted:
        tq = Task.objects.filter(
            scope_q(user, "task", "view"), deleted_at__isnull=True, **link
        ).select_related("responsible")
        if person_id:
            tq = tq.filter(person_id=person_id)
        entries += [Entry("task", t.due_at or t.created_at, t) for t in tq.order_by("-id")[:limit]]
    if "stage" in wanted and object_type == "deal":
        from rapport.sales.models import StageChange

        entries += [
            Entry("stage", c.at, c)
            for c in StageChange.objects.filter(deal_id=object_id)
            .select_related("from_stage", "to_stage", "by")
            .order_by("-at")[:limit]
        ]
    if "change" in wanted:
        entries += [
            Entry("change", e.at, e)
            for e in AuditEntry.objects.filter(object_type=object_type, object_id=object_id)
            .select_related("actor")
            .order_by("-at")[:limit]
        ]
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


@dataclass
class CalendarItem:
    """A meeting, planned interaction or task with a due time, placed on the calendar."""

    kind: str  # "interaction" or "task"
    obj: Any
    start: dt.datetime
    end: dt.datetime
    title: str
    overdue: bool = False


def calendar_items(
    *, user: User, start: dt.datetime, end: dt.datetime, user_ids: list[int] | None = None
) -> list[CalendarItem]:
    """What falls in [start, end) for the given users (default: ``user``), within scope."""
    owners = user_ids or [user.pk]
    items: list[CalendarItem] = []
    inter = (
        interaction_list(user=user)
        .filter(
            responsible_id__in=owners,
            at__lt=end,
            at__gte=start - dt.timedelta(days=1),
        )
        .filter(Q(kind__in=["meeting", "planned"]) | Q(status="planned"))
        .exclude(status="cancelled")
    )
    for i in inter[:1000]:
        finish = i.ends_at or i.at + dt.timedelta(hours=1)
        if finish <= start:
            continue
        items.append(
            CalendarItem("interaction", i, i.at, finish, i.subject or i.get_kind_display())
        )
    # Not cancelled, spelled as the other statuses so that task_mine_idx
    # (responsible, status, due_at) answers the range; the owners' tasks united with those
    # they co-execute (an OR with a subquery makes PostgreSQL scan every task).
    live = [s for s in TaskStatus.values if s != TaskStatus.CANCELLED]
    in_range = {"due_at__gte": start, "due_at__lt": end, "status__in": live}
    own = Task.objects.filter(responsible_id__in=owners, **in_range).order_by().values("pk")
    tasks = Task.objects.filter(
        scope_q(user, "task", "view"),
        deleted_at__isnull=True,
        pk__in=own.union(_cotask_ids(owners).order_by()),
        **in_range,
    )
    # the desk names each task's client: read with the task, not one query each
    for t in tasks.select_related("company", "person")[:1000]:
        assert t.due_at is not None  # noqa: S101 - filtered above
        items.append(
            CalendarItem(
                "task", t, t.due_at, t.due_at + dt.timedelta(minutes=30), t.title, t.is_overdue
            )
        )
    items.sort(key=lambda it: (it.start, it.title))
    return items


def feed_user(token: str) -> User | None:
    """The owner of a live calendar feed token, or None."""
    import hashlib

    from rapport.activities.models import CalendarFeed

    digest = hashlib.sha256(token.encode()).hexdigest()
    feed = (
        CalendarFeed.objects.filter(digest=digest, revoked_at__isnull=True)
        .select_related("user")
        .first()
    )
    if feed is None or not feed.user.is_active:
        return None
    return feed.user


def client_summary(*, user: User, object_type: str, object_id: int) -> dict[str, Any]:
    """What the work desk shows for a chosen client: deal figures and contact people."""
    from django.db.models import Avg, Sum

    from rapport.core.selectors import record_get
    from rapport.sales.selectors import deals_for_party

    record = record_get(user=user, object_type=object_type, object_id=object_id)
    deals = deals_for_party(user=user, object_type=object_type, object_id=object_id)
    agg = deals.order_by().aggregate(
        n=Count("id"),
        avg=Avg("amount"),
        won=Sum("won_amount", filter=Q(status="won")),
        open=Count("id", filter=Q(status="open")),
    )
    people: list[Any] = []
    if object_type == "company":
        from rapport.parties.selectors import company_people

        people = [e.person for e in company_people(user=user, company=record)[:20]]
    else:
        people = [record]
    return {
        "record": record,
        "object_type": object_type,
        "deals_count": agg["n"] or 0,
        "deals_avg": agg["avg"],
        "won_total": agg["won"] or 0,
        "open_count": agg["open"] or 0,
        "open_deals": list(deals.filter(status="open").order_by("-id")[:10]),
        "people": people,
        "client_since": getattr(record, "client_since", None),
    }
