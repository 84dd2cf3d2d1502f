"""Pages for tasks, notifications and the timeline of a card (with quick-add forms)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import DateTimeField, QuerySet, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.accounts.selectors import user_list
from rapport.activities import selectors, services
from rapport.activities.forms import QuickLogForm, TaskForm
from rapport.activities.models import (
    Interaction,
    InteractionKind,
    InteractionStatus,
    Task,
    TaskStatus,
)
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.exports import check_export_size, export_response
from rapport.core.pagination import keyset_page
from rapport.core.scopes import can, scope_allows

RECORD_TYPES = ("company", "person", "deal", "lead")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - login_required ran first
    return user


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _apply_errors(form: Any, exc: FieldErrors) -> None:
    for field, errs in exc.errors.items():
        for err in errs:
            form.add_error(field if field in form.fields else None, err)


def _managers(user: User) -> list[tuple[int, str]]:
    return [(u.pk, str(u)) for u in user_list(user=user).filter(is_active=True)]


# --- timeline on cards -----------------------------------------------------------------------


def timeline_context(request: HttpRequest, object_type: str, object_id: int) -> dict[str, Any]:
    """What the Timeline tab of a company, person, deal or lead card shows."""
    user = _user(request)
    kinds = [k for k in request.GET.getlist("kind") if k in selectors.TIMELINE_KINDS]
    person_id = _int(request.GET.get("person"))
    return {
        "entries": selectors.timeline(
            user=user,
            object_type=object_type,
            object_id=object_id,
            kinds=kinds or None,
            person_id=person_id,
        ),
        "timeline_kinds": selectors.TIMELINE_KINDS,
        "chosen_kinds": kinds,
        "log_form": QuickLogForm(initial={"kind": "call", "status": "done"}),
        "task_form": _task_form(user, None),
        "timeline_type": object_type,
        "timeline_id": object_id,
        "can_log": can(user, "interaction", "create"),
        "can_task": can(user, "task", "create"),
    }


@login_required
def timeline(request: HttpRequest, object_type: str, object_id: int) -> HttpResponse:
    if object_type not in RECORD_TYPES:
        raise Http404
    return render(
        request, "activities/_timeline.html", timeline_context(request, object_type, object_id)
    )


@login_required
@require_POST
def quick_log(request: HttpRequest, object_type: str, object_id: int) -> HttpResponse:
    """Log an interaction on a card; htmx swaps the timeline, a plain post redirects back."""
    if object_type not in RECORD_TYPES:
        raise Http404
    user = _user(request)
    from rapport.core.selectors import record_get

    record_get(user=user, object_type=object_type, object_id=object_id)
    form = QuickLogForm(request.POST)
    status = 200
    if form.is_valid():
        try:
            services.interaction_log(
                actor=user, data={**form.to_service(), f"{object_type}_id": object_id}
            )
            form = QuickLogForm(initial={"kind": form.cleaned_data["kind"], "status": "done"})
        except FieldErrors as exc:
            _apply_errors(form, exc)
            status = 422
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
            status = 403
    else:
        status = 422
    if not getattr(request, "htmx", False):
        if status != 200:
            messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
        return redirect(f"/{_path(object_type)}/{object_id}/?tab=timeline")
    context = timeline_context(request, object_type, object_id)
    context["log_form"] = form
    return render(request, "activities/_timeline.html", context, status=status)


@login_required
@require_POST
def quick_task(request: HttpRequest, object_type: str, object_id: int) -> HttpResponse:
    if object_type not in RECORD_TYPES:
        raise Http404
    user = _user(request)
    from rapport.core.selectors import record_get

    record_get(user=user, object_type=object_type, object_id=object_id)
    form = _task_form(user, request.POST)
    status = 200
    if form.is_valid():
        try:
            services.task_create(
                actor=user, data={**form.to_service(), f"{object_type}_id": object_id}
            )
            form = _task_form(user, None)
        except FieldErrors as exc:
            _apply_errors(form, exc)
            status = 422
        except PermissionDenied as exc:
            form.add_error(None, str(exc))
            status = 403
    else:
        status = 422
    if not getattr(request, "htmx", False):
        return redirect(f"/{_path(object_type)}/{object_id}/?tab=timeline")
    context = timeline_context(request, object_type, object_id)
    context["task_form"] = form
    return render(request, "activities/_timeline.html", context, status=status)


def _path(object_type: str) -> str:
    return {"company": "companies", "person": "people", "deal": "deals", "lead": "leads"}[
        object_type
    ]


# --- tasks ------------------------------------------------------------------------------------


def _task_form(user: User, data: Any, initial: dict[str, Any] | None = None) -> TaskForm:
    form = TaskForm(data, initial=initial or {"responsible_id": user.pk})
    managers = _managers(user)
    for name in ("responsible_id", "coexecutor_ids"):
        field = form.fields[name]
        if hasattr(field, "choices"):
            field.choices = managers
    return form


def _task_params(request: HttpRequest) -> tuple[str, str, str]:
    """The task list's view (mine, team, overdue), status and search text, as the page reads
    them."""
    view = request.GET.get("view", "mine")
    if view not in ("mine", "team", "overdue"):
        view = "mine"
    status = request.GET.get("status", "open")
    if status not in ("open", "", *TaskStatus.values):
        status = "open"
    return view, status, request.GET.get("q", "")


# Where tasks without a due date sort in the list: after every dated one.
UNDATED = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


def _task_rows(user: User, request: HttpRequest, *, action: str = "view") -> QuerySet[Task]:
    """The tasks the list shows, due first: top-level ones (their subtasks appear as
    progress), except in "overdue", where a late subtask is listed itself (under its
    parent's name) even when the parent is not late."""
    view, status, q = _task_params(request)
    qs = selectors.task_list(user=user, view=view, status=status, q=q, action=action)
    if view != "overdue":
        qs = qs.filter(parent__isnull=True)
    return qs.order_by("due_at", "id")


@login_required
def task_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    view, status, _q = _task_params(request)
    # Pages of 50 by due date (undated last), "Show more" for the next.
    undated = Value(UNDATED, output_field=DateTimeField())
    rows = _task_rows(user, request).annotate(due_key=Coalesce("due_at", undated))
    try:
        page = keyset_page(rows, sort="due_key", cursor=request.GET.get("cursor"), size=50)
    except FieldErrors as exc:  # a cursor mangled in the address: the list from its start
        messages.error(request, str(exc))
        page = keyset_page(rows, sort="due_key", cursor=None, size=50)
    params = request.GET.copy()
    params.pop("cursor", None)
    context = {
        "tasks": page.items,
        "next_cursor": page.next_cursor,
        "params": params.urlencode(),
        # where "Done" comes back to: the list from its start, not from the page's cursor
        "back": f"{request.path}?{params.urlencode()}",
    }
    if request.headers.get("HX-Request") and request.GET.get("cursor"):
        return render(request, "activities/_task_rows.html", context)
    return render(
        request,
        "activities/task_list.html",
        {
            **context,
            "view": view,
            "status": status,
            "statuses": TaskStatus.choices,
            "q": request.GET.get("q", ""),
            "can_create": can(user, "task", "create"),
            "can_export": can(user, "task", "export"),
            "export_params": _export_params(request),
        },
    )


def _task_edit(request: HttpRequest, task: Task | None) -> HttpResponse:
    user = _user(request)
    initial: dict[str, Any] = {"responsible_id": user.pk}
    parent_id = _int(request.GET.get("parent") or request.POST.get("parent_id"))
    if task is not None:
        initial = {
            "title": task.title,
            "description": task.description,
            "responsible_id": task.responsible_id,
            "coexecutor_ids": list(task.coexecutors.values_list("pk", flat=True)),
            "due_at": task.due_at,
            "priority": task.priority,
            "remind_at": task.remind_at,
        }
    form = _task_form(user, request.POST or None, initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.to_service()
            try:
                if task is None:
                    if parent_id:
                        data["parent_id"] = parent_id
                    saved = services.task_create(actor=user, data=data)
                else:
                    saved = services.task_update(
                        actor=user, task=task, data=data, version=_int(request.POST.get("version"))
                    )
                warning = services.past_due_warning(saved)
                if warning:
                    messages.warning(request, warning)
                messages.success(request, _("Saved."))
                return redirect("task-detail", saved.pk)
            except StaleVersion:
                form.add_error(
                    None,
                    _("Someone else changed this task meanwhile; your values are still here."),
                )
                status = 409
            except FieldErrors as exc:
                _apply_errors(form, exc)
                status = 422
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
                status = 403
        else:
            status = 422
    return render(
        request,
        "activities/task_form.html",
        {"form": form, "task": task, "parent_id": parent_id},
        status=status,
    )


@login_required
def task_create(request: HttpRequest) -> HttpResponse:
    if not can(_user(request), "task", "create"):
        raise Http404
    return _task_edit(request, None)


@login_required
def task_edit(request: HttpRequest, task_id: int) -> HttpResponse:
    return _task_edit(request, selectors.task_get(user=_user(request), task_id=task_id))


@login_required
def task_detail(request: HttpRequest, task_id: int) -> HttpResponse:
    user = _user(request)
    task = selectors.task_get(user=user, task_id=task_id)
    subs = list(selectors.subtasks(user=user, task=task))
    done = sum(1 for s in subs if s.status == TaskStatus.DONE)
    return render(
        request,
        "activities/task_detail.html",
        {
            "task": task,
            "subtasks": subs,
            "done": done,
            "progress": round(100 * done / len(subs)) if subs else None,
            "coexecutors": list(task.coexecutors.all()),
            "can_edit": scope_allows(
                user, "task", "edit", owner_id=task.responsible_id, team_id=task.team_id
            ),
            "statuses": TaskStatus.choices,
            "warning": services.past_due_warning(task),
        },
    )


@login_required
@require_POST
def task_status(request: HttpRequest, task_id: int) -> HttpResponse:
    user = _user(request)
    task = selectors.task_get(user=user, task_id=task_id)
    try:
        services.task_update(
            actor=user,
            task=task,
            data={"status": request.POST.get("status", TaskStatus.DONE)},
            version=_int(request.POST.get("version")),
        )
    except (FieldErrors, PermissionDenied, StaleVersion) as exc:
        messages.error(request, str(exc))
    back = request.POST.get("next") or ""
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("task-detail", task.parent_id or task.pk)


# --- notifications ----------------------------------------------------------------------------


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "activities/notifications.html",
        {"notifications": selectors.notifications(user=user)[:100]},
    )


@login_required
@require_POST
def notifications_read(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    ids = [i for i in (_int(v) for v in request.POST.getlist("id")) if i]
    services.notifications_mark_read(user=user, ids=ids or None)
    target = request.POST.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return redirect(target)
    return redirect("notifications")


def unread_notifications(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the bell's unread count on every page."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_notifications": selectors.unread_count(user=user)}


# --- calendar ---------------------------------------------------------------------------------

HOURS = range(7, 21)


def _range(view: str, day: dt.date) -> tuple[dt.date, dt.date]:
    if view == "day":
        return day, day + dt.timedelta(days=1)
    if view == "week":
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7)
    first = day.replace(day=1)
    start = first - dt.timedelta(days=first.weekday())
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    end = nxt + dt.timedelta(days=(7 - nxt.weekday()) % 7)
    return start, end


def _aware(day: dt.date, hour: int = 0) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@login_required
def calendar(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    view = request.GET.get("view", "week")
    if view not in ("day", "week", "month"):
        view = "week"
    try:
        day = dt.date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        day = timezone.localdate()
    owners: list[int] = [user.pk]
    who = request.GET.get("who", "me")
    team_members = list(user_list(user=user).filter(is_active=True))
    if who == "team" and user.team_id:
        owners = [u.pk for u in team_members if u.team_id in user.team_subtree_ids()] or owners
    elif who.isdigit() and any(u.pk == int(who) for u in team_members):
        owners = [int(who)]
    start, end = _range(view, day)
    items = selectors.calendar_items(
        user=user, start=_aware(start), end=_aware(end), user_ids=owners
    )
    days = [start + dt.timedelta(days=i) for i in range((end - start).days)]
    by_day: dict[dt.date, list[Any]] = {d: [] for d in days}
    for it in items:
        local = timezone.localtime(it.start)
        by_day.setdefault(local.date(), []).append(it)
    grid = [
        {
            "day": d,
            "items": by_day.get(d, []),
            "slots": [
                {
                    "hour": h,
                    "at": f"{d.isoformat()}T{h:02d}:00",
                    "items": [
                        it
                        for it in by_day.get(d, [])
                        if timezone.localtime(it.start).hour == h
                        or (h == HOURS[0] and timezone.localtime(it.start).hour < h)
                        or (h == HOURS[-1] and timezone.localtime(it.start).hour > h)
                    ],
                }
                for h in HOURS
            ],
        }
        for d in days
    ]
    step = {"day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}.get(view)
    prev_day = day - step if step else (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    next_day = day + step if step else (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    from rapport.activities.models import CalendarFeed

    return render(
        request,
        "activities/calendar.html",
        {
            "view": view,
            "day": day,
            "today": timezone.localdate(),
            "grid": grid,
            "weeks": [grid[i : i + 7] for i in range(0, len(grid), 7)],
            "hours": list(HOURS),
            "prev": prev_day,
            "next": next_day,
            "who": who,
            "members": team_members,
            "feeds": CalendarFeed.objects.filter(user=user, revoked_at__isnull=True),
            "new_feed": request.session.pop("new_calendar_feed", None),
            "query": f"view={view}&who={who}",
        },
    )


@login_required
@require_POST
def calendar_move(request: HttpRequest) -> HttpResponse:
    """Drag to reschedule: JSON in, JSON out (the page moves the item or snaps it back)."""
    user = _user(request)
    kind = request.POST.get("kind")
    obj_id = _int(request.POST.get("id"))
    try:
        start = timezone.make_aware(dt.datetime.fromisoformat(request.POST.get("at", "")))
    except ValueError:
        return JsonResponse({"ok": False, "message": _("Pick a time on the calendar.")}, status=422)
    obj: Any
    if kind == "task":
        obj = selectors.task_get(user=user, task_id=obj_id or 0)
    elif kind == "interaction":
        obj = selectors.interaction_get(user=user, interaction_id=obj_id or 0)
    else:
        raise Http404
    if kind == "interaction":
        start = start.replace(minute=timezone.localtime(obj.at).minute)
    try:
        services.reschedule(actor=user, kind=kind, obj=obj, start=start)
    except (FieldErrors, PermissionDenied, StaleVersion) as exc:
        text = (
            " ".join(m for v in exc.errors.values() for m in v)
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        return JsonResponse({"ok": False, "message": text}, status=422)
    return JsonResponse({"ok": True})


@login_required
@require_POST
def calendar_plan(request: HttpRequest) -> HttpResponse:
    """Click an empty slot: plan a meeting there."""
    user = _user(request)
    p = request.POST
    data: dict[str, Any] = {
        "kind": "meeting",
        "status": "planned",
        "subject": p.get("subject", "").strip(),
        "at": p.get("at"),
        "place": p.get("place", ""),
    }
    minutes = _int(p.get("minutes")) or 60
    try:
        start = timezone.make_aware(dt.datetime.fromisoformat(p.get("at", "")))
        data["ends_at"] = start + dt.timedelta(minutes=minutes)
    except ValueError:
        pass
    if _int(p.get("company_id")):
        data["company_id"] = _int(p.get("company_id"))
    try:
        if not data["subject"]:
            raise FieldErrors.single("subject", _("Say what the meeting is about."))
        services.interaction_log(actor=user, data=data)
        messages.success(request, _("Meeting planned."))
    except (FieldErrors, PermissionDenied) as exc:
        text = (
            " ".join(m for v in exc.errors.values() for m in v)
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        messages.error(request, text)
    back = p.get("next") or ""
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("calendar")


@login_required
@require_POST
def calendar_feed_create(request: HttpRequest) -> HttpResponse:
    token, _feed = services.feed_create(user=_user(request))
    request.session["new_calendar_feed"] = request.build_absolute_uri(f"/calendar/feed/{token}.ics")
    return redirect("calendar")


@login_required
@require_POST
def calendar_feed_revoke(request: HttpRequest, feed_id: int) -> HttpResponse:
    services.feed_revoke(user=_user(request), feed_id=feed_id)
    messages.success(request, _("The calendar address no longer works."))
    return redirect("calendar")


def calendar_feed(request: HttpRequest, token: str) -> HttpResponse:
    """The private ICS feed: the token in the address is the only credential."""
    user = selectors.feed_user(token)
    if user is None:
        raise Http404
    now = timezone.now()
    items = selectors.calendar_items(
        user=user, start=now - dt.timedelta(days=30), end=now + dt.timedelta(days=365)
    )
    response = HttpResponse(
        services.ics_for(user=user, items=items), content_type="text/calendar; charset=utf-8"
    )
    response["Cache-Control"] = "private, max-age=300"
    return response


# --- the work desk ----------------------------------------------------------------------------


def desk_context(request: HttpRequest) -> dict[str, Any]:
    """The manager's start page: today's calendar, overdue work, today's clients, one client."""
    user = _user(request)
    today = timezone.localdate()
    start = _aware(today)
    items = selectors.calendar_items(user=user, start=start, end=start + dt.timedelta(days=1))
    overdue = list(selectors.task_list(user=user, view="overdue").order_by("due_at")[:20])
    clients: dict[tuple[str, int], Any] = {}
    for it in items + [
        selectors.CalendarItem("task", t, t.due_at or start, start, t.title) for t in overdue
    ]:
        obj = it.obj
        for kind in ("company", "person"):
            target = getattr(obj, kind, None)
            if target is not None and (kind, target.pk) not in clients:
                clients[(kind, target.pk)] = target
                break
    chosen = request.GET.get("client", "")
    summary = None
    history: list[Any] = []
    if ":" in chosen:
        kind, _sep, raw = chosen.partition(":")
        if kind in ("company", "person") and raw.isdigit():
            summary = selectors.client_summary(user=user, object_type=kind, object_id=int(raw))
            history = selectors.timeline(user=user, object_type=kind, object_id=int(raw), limit=20)
    from rapport.parties.views import local_time

    people = []
    if summary:
        for p in summary["people"]:
            points = list(p.contact_points.all())
            people.append(
                {
                    "person": p,
                    "phone": next((c for c in points if c.channel == "phone"), None),
                    "email": next((c for c in points if c.channel == "email"), None),
                    "local_time": local_time(p.time_zone),
                }
            )
    return {
        "today": today,
        "items": items,
        "overdue": overdue,
        "events_today": len(items),
        # every overdue task, not only the 20 listed (today's late ones are among them)
        "overdue_count": selectors.overdue_count(user=user),
        "clients": [
            {"key": f"{k}:{pk}", "obj": obj, "kind": k} for (k, pk), obj in clients.items()
        ],
        "chosen": chosen,
        "summary": summary,
        "summary_people": people,
        "history": history,
    }


# --- interactions list ------------------------------------------------------------------------


def _interaction_rows(
    user: User, request: HttpRequest, *, action: str = "view"
) -> tuple[QuerySet[Interaction], list[str]]:
    """The interactions the list shows for its filters (kind, status, manager, dates, subject),
    newest first, and messages about filters that were ignored."""
    g = request.GET
    errors: list[str] = []
    qs = selectors.interaction_list(user=user, action=action)
    kind = g.get("kind", "")
    if kind in InteractionKind.values:
        qs = qs.filter(kind=kind)
    status = g.get("status", "")
    if status in InteractionStatus.values:
        qs = qs.filter(status=status)
    if _int(g.get("responsible")):
        qs = qs.filter(responsible_id=_int(g.get("responsible")))
    for name, lookup in (("date_from", "at__date__gte"), ("date_to", "at__date__lte")):
        try:
            if g.get(name):
                qs = qs.filter(**{lookup: dt.date.fromisoformat(g[name])})
        except ValueError:
            errors.append(_("Enter a date as YYYY-MM-DD."))
    if g.get("q"):
        qs = qs.filter(subject__icontains=g["q"][:200])
    return qs.order_by("-at", "-id"), errors


# --- exports -----------------------------------------------------------------------------------

EXPORT_CHUNK = 2000


def _export_params(request: HttpRequest) -> str:
    """The list's query string without the format: what an export link carries."""
    params = request.GET.copy()
    params.pop("format", None)
    return params.urlencode()


def _name(obj: Any) -> str | None:
    return str(obj) if obj is not None else None


def task_export_table(qs: QuerySet[Any]) -> tuple[list[str], Any]:
    """Header and rows of a tasks spreadsheet; co-executors are read per chunk."""
    header = [
        _("Id"),
        _("Title"),
        _("Description"),
        _("Status"),
        _("Priority"),
        _("Due"),
        _("Completed"),
        _("Assignee"),
        _("Co-executors"),
        _("Company"),
        _("Person"),
        _("Deal"),
        _("Subtasks"),
        _("Subtasks done"),
        _("Created"),
    ]
    qs = qs.prefetch_related("coexecutors")

    def rows() -> Any:
        for t in qs.iterator(chunk_size=EXPORT_CHUNK):
            yield [
                t.pk,
                t.title,
                t.description,
                t.get_status_display(),
                t.get_priority_display(),
                t.due_at,
                t.completed_at,
                _name(t.responsible),
                ", ".join(str(u) for u in t.coexecutors.all()) or None,
                _name(t.company),
                _name(t.person),
                _name(t.deal),
                getattr(t, "n_sub", None),
                getattr(t, "n_sub_done", None),
                t.created_at,
            ]

    return header, rows()


def interaction_export_table(qs: QuerySet[Any]) -> tuple[list[str], Any]:
    """Header and rows of an interactions spreadsheet."""
    header = [
        _("Id"),
        _("When"),
        _("Kind"),
        _("Direction"),
        _("Status"),
        _("Subject"),
        _("Text"),
        _("Result"),
        _("Duration, minutes"),
        _("Place"),
        _("From"),
        _("To"),
        _("Company"),
        _("Person"),
        _("Deal"),
        _("Responsible manager"),
        _("Created"),
    ]

    def rows() -> Any:
        for i in qs.iterator(chunk_size=EXPORT_CHUNK):
            yield [
                i.pk,
                i.at,
                i.get_kind_display(),
                i.get_direction_display() if i.direction else None,
                i.get_status_display(),
                i.subject,
                i.body,
                i.result,
                round(i.duration_seconds / 60, 1) if i.duration_seconds is not None else None,
                i.place,
                i.email_from,
                i.email_to,
                _name(i.company),
                _name(i.person),
                _name(i.deal),
                _name(i.responsible),
                i.created_at,
            ]

    return header, rows()


def _export(
    request: HttpRequest, *, object_type: str, list_name: str, name: str, title: str
) -> HttpResponseBase:
    """A list's current filters as XLSX (or ``format=csv``) through the export scope. A refused
    export (too many rows) goes back to the list with the reason."""
    user = _user(request)
    if not can(user, object_type, "export"):
        raise Http404
    qs: QuerySet[Any]
    if object_type == "task":
        qs = _task_rows(user, request, action="export")
    else:
        qs = _interaction_rows(user, request, action="export")[0]
    try:
        count = qs.count()
        check_export_size(count)
        table = task_export_table if object_type == "task" else interaction_export_table
        header, rows = table(qs)
        return export_response(
            name=name,
            fmt=request.GET.get("format", ""),
            header=header,
            rows=rows,
            count=count,
            title=title,
        )
    except FieldErrors as exc:
        messages.error(request, str(exc))
        return redirect(f"{reverse(list_name)}?{_export_params(request)}")


@login_required
def task_export(request: HttpRequest) -> HttpResponseBase:
    return _export(
        request, object_type="task", list_name="task-list", name="tasks", title=_("Tasks")
    )


@login_required
def interaction_export(request: HttpRequest) -> HttpResponseBase:
    return _export(
        request,
        object_type="interaction",
        list_name="interaction-list",
        name="interactions",
        title=_("Interactions"),
    )


@login_required
def interaction_list(request: HttpRequest) -> HttpResponse:
    """Every interaction the user may see, filtered; optionally grouped by thread."""
    user = _user(request)
    g = request.GET
    qs, errors = _interaction_rows(user, request)
    for error in errors:
        messages.error(request, error)
    rows = list(qs.select_related("thread")[:300])
    grouped = g.get("group") == "thread"
    threads: list[dict[str, Any]] = []
    if grouped:
        by: dict[Any, list[Any]] = {}
        for i in rows:
            by.setdefault(i.thread_id or f"single-{i.pk}", []).append(i)
        threads = [
            {"thread": items[0].thread, "items": sorted(items, key=lambda i: i.at)}
            for items in by.values()
        ]
    return render(
        request,
        "activities/interaction_list.html",
        {
            "rows": rows,
            "threads": threads,
            "grouped": grouped,
            "f": g,
            "kinds": InteractionKind.choices,
            "statuses": InteractionStatus.choices,
            "managers": user_list(user=user).filter(is_active=True),
            "can_export": can(user, "interaction", "export"),
            "export_params": _export_params(request),
        },
    )
