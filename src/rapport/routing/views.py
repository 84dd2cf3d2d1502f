"""Pages: the routing table (head of sales) and absences with the take-back page.

Each view parses the form, calls one service or selector and renders; with htmx the
routing table's reorder buttons get the table back as a fragment.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import Team, User
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.routing import selectors, services
from rapport.routing.models import (
    Absence,
    AbsenceKind,
    AbsenceStatus,
    RoutingMethod,
    RoutingRule,
)
from rapport.sales.choices import LeadChannel

RULE_TEXT_FIELDS = ("countries", "phone_prefixes", "places", "sources", "products")
HAND_OVER = ("hand_over_tasks", "hand_over_leads", "hand_over_deals")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101  (login_required)
    return user


def _head(request: HttpRequest) -> User:
    user = _user(request)
    if not selectors.is_head_of_sales(user):
        raise Http404
    return user


# --- routing table ----------------------------------------------------------------------------


def _rule_form_data(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    data: dict[str, Any] = {
        "name": post.get("name", ""),
        "is_active": "is_active" in post,
        "channels": post.getlist("channels"),
        "amount_min": post.get("amount_min", ""),
        "amount_max": post.get("amount_max", ""),
        "method": post.get("method", ""),
        "target_user_id": post.get("target_user_id", ""),
        "target_team_id": post.get("target_team_id", ""),
    }
    for name in RULE_TEXT_FIELDS:
        data[name] = post.get(name, "")
    return data


def _rule_initial(rule: RoutingRule | None) -> dict[str, Any]:
    if rule is None:
        return {"is_active": True, "channels": [], "method": RoutingMethod.ROUND_ROBIN}
    data: dict[str, Any] = {
        "name": rule.name,
        "is_active": rule.is_active,
        "channels": list(rule.channels or []),
        "amount_min": "" if rule.amount_min is None else rule.amount_min,
        "amount_max": "" if rule.amount_max is None else rule.amount_max,
        "method": rule.method,
        "target_user_id": rule.target_user_id or "",
        "target_team_id": rule.target_team_id or "",
    }
    for name in RULE_TEXT_FIELDS:
        data[name] = ", ".join(getattr(rule, name) or [])
    return data


def _rule_context(user: User, data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "data": data,
        "errors": errors,
        "channels": LeadChannel.choices,
        "methods": RoutingMethod.choices,
        "users": User.objects.filter(is_active=True).order_by("username"),
        "teams": Team.objects.order_by("path"),
        "target_user": str(data.get("target_user_id", "")),
        "target_team": str(data.get("target_team_id", "")),
    }


def _rule_rows(user: User) -> list[dict[str, Any]]:
    return [
        {"rule": r, "sentence": services.rule_sentence(r)}
        for r in selectors.routing_rule_list(user=user)
    ]


@login_required
def routing_rules(request: HttpRequest) -> HttpResponse:
    """The routing table as sentences, in order, and the form that adds a rule."""
    user = _head(request)
    errors: dict[str, list[str]] = {}
    data = _rule_initial(None)
    if request.method == "POST":
        data = _rule_form_data(request)
        try:
            services.routing_rule_save(actor=user, data=data)
        except FieldErrors as exc:
            errors = exc.errors
        else:
            messages.success(request, _("The rule was added at the end of the table."))
            return redirect("routing-rules")
    return render(
        request,
        "routing/rules.html",
        {"rows": _rule_rows(user), **_rule_context(user, data, errors)},
        status=422 if errors else 200,
    )


@login_required
def routing_rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _head(request)
    rule = selectors.routing_rule_get(user=user, rule_id=rule_id)
    errors: dict[str, list[str]] = {}
    data = _rule_initial(rule)
    if request.method == "POST":
        data = _rule_form_data(request)
        try:
            services.routing_rule_save(
                actor=user, rule=rule, data=data, version=_int(request.POST.get("version"))
            )
        except FieldErrors as exc:
            errors = exc.errors
        except StaleVersion as exc:
            errors = {"version": [str(exc)]}
        else:
            messages.success(request, _("The rule was saved."))
            return redirect("routing-rules")
    return render(
        request,
        "routing/rule_edit.html",
        {
            "rule": rule,
            "sentence": services.rule_sentence(rule),
            **_rule_context(user, data, errors),
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def routing_rule_move(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Up or down one place; htmx gets the table back, a plain form a redirect."""
    user = _head(request)
    rule = selectors.routing_rule_get(user=user, rule_id=rule_id)
    offset = -1 if request.POST.get("direction") == "up" else 1
    services.routing_rule_move(actor=user, rule=rule, offset=offset)
    if getattr(request, "htmx", False):
        return render(request, "routing/_rule_rows.html", {"rows": _rule_rows(user)})
    return redirect("routing-rules")


@login_required
@require_POST
def routing_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _head(request)
    rule = selectors.routing_rule_get(user=user, rule_id=rule_id)
    services.routing_rule_delete(actor=user, rule=rule)
    messages.success(request, _("The rule “%(name)s” was removed.") % {"name": rule.name})
    return redirect("routing-rules")


# --- absences ---------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _absence_form_data(request: HttpRequest, *, creating: bool) -> dict[str, Any]:
    post = request.POST
    data: dict[str, Any] = {
        "starts_at": post.get("starts_at", ""),
        "ends_at": post.get("ends_at", ""),
        "note": post.get("note", ""),
    }
    if "deputy_id" in post:
        data["deputy_id"] = post.get("deputy_id", "")
    if creating:
        data["user_id"] = post.get("user_id", "")
        data["kind"] = post.get("kind", "")
    if "hand_over_form" in post:
        for name in HAND_OVER:
            data[name] = name in post
    return data


def _local(value: Any) -> str:
    if not value:
        return ""
    return str(timezone.localtime(value).strftime("%Y-%m-%dT%H:%M"))


def _absence_initial(absence: Absence | None, user: User) -> dict[str, Any]:
    if absence is None:
        return {
            "user_id": user.pk,
            "kind": AbsenceKind.PLANNED,
            **dict.fromkeys(HAND_OVER, True),
        }
    return {
        "user_id": absence.user_id,
        "kind": absence.kind,
        "starts_at": _local(absence.starts_at),
        "ends_at": _local(absence.ends_at),
        "deputy_id": absence.deputy_id or "",
        "note": absence.note,
        **{name: getattr(absence, name) for name in HAND_OVER},
    }


def _absence_context(
    user: User, data: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "data": data,
        "errors": errors,
        "kinds": AbsenceKind.choices,
        "people": selectors.users_for_absences(user=user),
        "deputies": selectors.deputies(),
        "chosen_user": str(data.get("user_id", "")),
        "chosen_deputy": str(data.get("deputy_id", "")),
    }


@login_required
def absence_list(request: HttpRequest) -> HttpResponse:
    """My absences, my team's (managers) or all (administrators), and a form for a new one."""
    user = _user(request)
    errors: dict[str, list[str]] = {}
    data = _absence_initial(None, user)
    if request.method == "POST":
        data = _absence_form_data(request, creating=True)
        try:
            absence = services.absence_create(actor=user, data=data)
        except FieldErrors as exc:
            errors = exc.errors
        except PermissionDenied as exc:
            errors = {"user_id": [str(exc)]}
        else:
            messages.success(request, _("The absence was recorded."))
            return redirect("absence-detail", absence_id=absence.pk)
    status = request.GET.get("status", "")
    who = request.GET.get("who", "")
    absences = selectors.absence_list(
        user=user,
        status=status if status in AbsenceStatus.values else "",
        who="mine" if who == "mine" else "",
    )[:300]
    return render(
        request,
        "routing/absences.html",
        {
            "absences": absences,
            "statuses": AbsenceStatus.choices,
            "f_status": status,
            "f_who": who,
            "scope": selectors.absence_scope(user),
            **_absence_context(user, data, errors),
        },
        status=422 if errors else 200,
    )


@login_required
def absence_detail(request: HttpRequest, absence_id: int) -> HttpResponse:
    """One absence: change it while it may change, see what was handed over."""
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    errors: dict[str, list[str]] = {}
    data = _absence_initial(absence, user)
    if request.method == "POST":
        data = _absence_form_data(request, creating=False)
        try:
            absence = services.absence_update(
                actor=user,
                absence=absence,
                data=data,
                version=_int(request.POST.get("version")),
            )
        except FieldErrors as exc:
            errors = exc.errors
        except StaleVersion as exc:
            errors = {"version": [str(exc)]}
        except PermissionDenied:
            raise Http404 from None
        else:
            messages.success(request, _("The absence was saved."))
            return redirect("absence-detail", absence_id=absence.pk)
    may_manage = services.may_manage(user, absence)
    return render(
        request,
        "routing/absence_detail.html",
        {
            "absence": absence,
            "may_manage": may_manage,
            "editable": may_manage
            and absence.status in (AbsenceStatus.SCHEDULED, AbsenceStatus.ACTIVE),
            "started": absence.status != AbsenceStatus.SCHEDULED,
            "handovers": services.handovers_with_state(absence),
            **_absence_context(user, data, errors),
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def absence_cancel(request: HttpRequest, absence_id: int) -> HttpResponse:
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    try:
        absence = services.absence_cancel(actor=user, absence=absence)
    except PermissionDenied:
        raise Http404 from None
    except FieldErrors as exc:
        messages.error(request, " ".join(m for msgs in exc.errors.values() for m in msgs))
    else:
        if absence.status == AbsenceStatus.CANCELLED:
            messages.success(request, _("The absence was cancelled."))
        else:
            messages.success(request, _("The absence ended now."))
    return redirect("absence-detail", absence_id=absence.pk)


@login_required
def absence_take_back(request: HttpRequest, absence_id: int) -> HttpResponse:
    """What was handed over, with a checkbox per item still open and still with the deputy,
    and "take back all"."""
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    if not services.may_manage(user, absence):
        raise Http404
    result = None
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        ticked = request.POST.getlist("handover")
        ids = None if "all" in request.POST else [int(i) for i in ticked if i.isdigit()]
        if ids is not None and not ids:
            errors = {"handover_ids": [_("Tick the items to take back.")]}
        else:
            try:
                result = services.absence_take_back(actor=user, absence=absence, handover_ids=ids)
            except FieldErrors as exc:
                errors = exc.errors
    return render(
        request,
        "routing/take_back.html",
        {
            "absence": absence,
            "handovers": services.handovers_with_state(absence),
            "result": result,
            "errors": errors,
        },
        status=422 if errors else 200,
    )
