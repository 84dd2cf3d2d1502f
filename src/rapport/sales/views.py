"""Sales pages: leads, deals, the kanban board, the funnel, pipeline settings.

Each view parses input, calls a selector or service, renders. The board talks JSON with
its small script (moves, won/lost zones, the entry-fields dialog); everything else is
plain forms with htmx where a fragment is enough.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.accounts.selectors import team_list, user_list
from rapport.core.customfields import custom_fields_display, definitions_for
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.exports import (
    check_export_size,
    custom_field_columns,
    export_response,
)
from rapport.core.pagination import keyset_page
from rapport.core.scopes import can, scope_allows
from rapport.core.selectors import attachments_for, audit_for_object
from rapport.parties.selectors import company_list, person_list
from rapport.sales import selectors, services
from rapport.sales.choices import DealStatus, LeadChannel, LeadStatus
from rapport.sales.forms import DealForm, LeadForm, PipelineForm, StageForm
from rapport.sales.models import Deal, Lead, Pipeline, Stage


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101 - login_required ran first
    return user


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _decimal(value: str | None) -> decimal.Decimal | None:
    try:
        return decimal.Decimal(value.replace(",", ".").replace(" ", "")) if value else None
    except decimal.InvalidOperation:
        return None


def _is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _admin(request: HttpRequest) -> User:
    user = _user(request)
    if not user.is_rapport_admin:
        raise Http404
    return user


def _deal_filters(request: HttpRequest) -> selectors.DealFilters:
    from rapport.parties.selectors import custom_filters_from

    g = request.GET
    return selectors.DealFilters(
        q=g.get("q", "").strip()[:200],
        pipeline_id=_int(g.get("pipeline")),
        stage_id=_int(g.get("stage")),
        status=g.get("status", ""),
        responsible_id=_int(g.get("responsible")),
        team_id=_int(g.get("team")),
        source=g.get("source", "").strip(),
        amount_min=_decimal(g.get("amount_min")),
        amount_max=_decimal(g.get("amount_max")),
        close_from=_date(g.get("close_from")),
        close_to=_date(g.get("close_to")),
        overdue=g.get("overdue") == "1",
        mine=g.get("mine") == "1",
        custom=custom_filters_from(g),
    )


def _filter_context(user: User) -> dict[str, Any]:
    return {
        "managers": user_list(user=user).filter(is_active=True),
        "teams": team_list(user=user),
        "pipelines": selectors.pipelines(),
        "statuses": DealStatus.choices,
    }


# --- deals ------------------------------------------------------------------------------------

# Only non-null columns: keyset paging cannot step past a NULL sort value.
DEAL_SORTS = {"id": "id", "title": "title"}


def _deal_sort(request: HttpRequest) -> str:
    sort_key = request.GET.get("sort", "-id")
    return sort_key if sort_key.lstrip("-") in DEAL_SORTS else "-id"


@login_required
def deal_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    error = ""
    sort_key = _deal_sort(request)
    try:
        qs = selectors.deal_list(user=user, filters=_deal_filters(request))
        page = keyset_page(qs, sort=sort_key, cursor=request.GET.get("cursor"), size=50)
    except FieldErrors as exc:
        error = str(exc)
        page = keyset_page(Deal.objects.none(), sort="-id", cursor=None, size=50)
    params = request.GET.copy()
    params.pop("cursor", None)
    context = {
        "deals": page.items,
        "next_cursor": page.next_cursor,
        "params": params.urlencode(),
        "f": request.GET,
        "sort": sort_key,
        "error": error,
        "can_create": can(user, "deal", "create"),
        "can_export": can(user, "deal", "export"),
        "export_params": _export_params(request),
        "custom_filters": [
            (d, request.GET.get(f"cf_{d.name}", "")) for d in definitions_for("deal")
        ],
        **_filter_context(user),
    }
    if _is_htmx(request) and request.GET.get("cursor"):
        return render(request, "sales/_deal_rows.html", context)
    return render(request, "sales/deal_list.html", context)


# --- exports -----------------------------------------------------------------------------------

EXPORT_CHUNK = 2000


def _export_params(request: HttpRequest) -> str:
    """The list's query string without paging and format: what an export link carries."""
    params = request.GET.copy()
    for key in ("cursor", "format"):
        params.pop(key, None)
    return params.urlencode()


def _name(obj: Any) -> str | None:
    return str(obj) if obj is not None else None


def deal_export_table(qs: QuerySet[Deal]) -> tuple[list[str], Any]:
    """Header and rows of a deals spreadsheet; co-workers are read per chunk."""
    cf_header, cf_cells = custom_field_columns("deal")
    header = [
        _("Id"),
        _("Title"),
        _("Company"),
        _("Person"),
        _("Contact person"),
        _("Pipeline"),
        _("Stage"),
        _("Status"),
        _("Amount"),
        _("Currency"),
        _("Expected close date"),
        _("Won amount"),
        _("Loss reason"),
        _("Closed"),
        _("Responsible manager"),
        _("Co-workers"),
        _("Team"),
        _("Source"),
        _("Created"),
        *cf_header,
    ]
    qs = qs.select_related("contact", "team", "loss_reason").prefetch_related("coworkers")

    def rows() -> Any:
        for d in qs.iterator(chunk_size=EXPORT_CHUNK):
            yield [
                d.pk,
                d.title,
                _name(d.company),
                _name(d.person),
                _name(d.contact),
                d.pipeline.name,
                d.stage.name if d.stage else None,
                d.get_status_display(),
                d.amount,
                d.currency,
                d.expected_close,
                d.won_amount,
                _name(d.loss_reason),
                d.closed_at,
                _name(d.responsible),
                ", ".join(str(u) for u in d.coworkers.all()) or None,
                _name(d.team),
                d.source,
                d.created_at,
                *cf_cells(d.custom_fields),
            ]

    return header, rows()


def deal_export_response(
    *, user: User, filters: selectors.DealFilters, sort: str, fmt: str
) -> HttpResponseBase:
    """The filtered deals ``user`` may export, as a download; raises FieldErrors for a bad
    filter and ExportTooLarge above EXPORT_MAX_ROWS; 404 without the export permission."""
    if not can(user, "deal", "export"):
        raise Http404
    qs = selectors.deal_list(user=user, filters=filters, action="export")
    qs = qs.order_by(sort, "-id" if sort.startswith("-") else "id")
    count = qs.count()
    check_export_size(count)
    header, rows = deal_export_table(qs)
    return export_response(
        name="deals", fmt=fmt, header=header, rows=rows, count=count, title=_("Deals")
    )


def lead_export_table(qs: QuerySet[Lead]) -> tuple[list[str], Any]:
    """Header and rows of a leads spreadsheet."""
    cf_header, cf_cells = custom_field_columns("lead")
    header = [
        _("Id"),
        _("Name"),
        _("Phone"),
        _("Email"),
        _("Company name"),
        _("City or address"),
        _("Product or service"),
        _("Request"),
        _("Amount"),
        _("Currency"),
        _("Channel"),
        _("Status"),
        _("Rejection reason"),
        _("Source"),
        "utm_source",
        "utm_medium",
        "utm_campaign",
        _("Company"),
        _("Person"),
        _("Responsible manager"),
        _("Team"),
        _("Created"),
        _("Converted"),
        *cf_header,
    ]
    qs = qs.select_related("team")

    def rows() -> Any:
        for lead in qs.iterator(chunk_size=EXPORT_CHUNK):
            yield [
                lead.pk,
                lead.name,
                lead.phone,
                lead.email,
                lead.company_name,
                lead.address,
                lead.interest,
                lead.text,
                lead.amount,
                lead.currency,
                lead.get_channel_display(),
                lead.get_status_display(),
                lead.reject_reason,
                lead.source,
                lead.utm_source,
                lead.utm_medium,
                lead.utm_campaign,
                _name(lead.company),
                _name(lead.person),
                _name(lead.responsible),
                _name(lead.team),
                lead.created_at,
                lead.converted_at,
                *cf_cells(lead.custom_fields),
            ]

    return header, rows()


def lead_export_response(
    *, user: User, filters: selectors.LeadFilters, sort: str, fmt: str
) -> HttpResponseBase:
    """The filtered leads ``user`` may export, as a download (see ``deal_export_response``)."""
    if not can(user, "lead", "export"):
        raise Http404
    qs = selectors.lead_list(user=user, filters=filters, action="export")
    qs = qs.order_by(sort, "-id" if sort.startswith("-") else "id")
    count = qs.count()
    check_export_size(count)
    header, rows = lead_export_table(qs)
    return export_response(
        name="leads", fmt=fmt, header=header, rows=rows, count=count, title=_("Leads")
    )


def _refused(request: HttpRequest, list_name: str, exc: FieldErrors) -> HttpResponse:
    """Back to the list, filters kept, with the reason an export was refused."""
    messages.error(request, str(exc))
    return redirect(f"{reverse(list_name)}?{_export_params(request)}")


@login_required
def deal_export(request: HttpRequest) -> HttpResponseBase:
    """The deal list with its current filters and sort as XLSX (or ``format=csv``)."""
    user = _user(request)
    if not can(user, "deal", "export"):
        raise Http404
    try:
        return deal_export_response(
            user=user,
            filters=_deal_filters(request),
            sort=_deal_sort(request),
            fmt=request.GET.get("format", ""),
        )
    except FieldErrors as exc:
        return _refused(request, "deal-list", exc)


@login_required
def lead_export(request: HttpRequest) -> HttpResponseBase:
    """The lead list with its current filters as XLSX (or ``format=csv``)."""
    user = _user(request)
    if not can(user, "lead", "export"):
        raise Http404
    try:
        return lead_export_response(
            user=user, filters=_lead_filters(request), sort="-id", fmt=request.GET.get("format", "")
        )
    except FieldErrors as exc:
        return _refused(request, "lead-list", exc)


def _party_choices(user: User, *, companies: bool, selected: list[int | None]) -> list[Any]:
    qs: Any = company_list(user=user) if companies else person_list(user=user)
    qs = qs.filter(deleted_at__isnull=True)
    order = "short_name" if companies else "last_name"
    items = list(qs.order_by(order)[:300])
    have = {o.pk for o in items}
    wanted = [s for s in selected if s and s not in have]
    if wanted:
        items += list(qs.filter(pk__in=wanted))
    return [("", "—"), *[(o.pk, str(o)) for o in items]]


def _choices(form: Any, name: str, choices: list[Any]) -> None:
    field = form.fields[name]
    if isinstance(field, forms.ChoiceField):
        field.choices = choices


def _deal_form(user: User, data: Any, deal: Deal | None, initial: dict[str, Any]) -> DealForm:
    form = DealForm(data, initial=initial)
    f = form.fields

    def sel(name: str) -> list[int | None]:
        return [_int(initial.get(name)), _int(data.get(name)) if data else None]

    _choices(form, "company_id", _party_choices(user, companies=True, selected=sel("company_id")))
    people = _party_choices(user, companies=False, selected=sel("person_id") + sel("contact_id"))
    _choices(form, "person_id", people)
    _choices(form, "contact_id", people)
    managers = [(u.pk, str(u)) for u in user_list(user=user).filter(is_active=True)]
    _choices(form, "responsible_id", managers)
    _choices(form, "coworker_ids", managers)
    if deal is None:
        pipes = list(selectors.pipelines())
        _choices(form, "pipeline_id", [(p.pk, p.name) for p in pipes])
        stages: list[tuple[Any, str]] = [("", _("first stage"))]
        for p in pipes:
            stages += [(s.pk, f"{p.name} · {s.name}") for s in selectors.stages_of(p)]
        _choices(form, "stage_id", stages)
    else:
        del f["pipeline_id"]
        del f["stage_id"]
    form.add_custom_fields(definitions_for("deal"), deal.custom_fields if deal else {})
    return form


def _apply_errors(form: Any, exc: FieldErrors) -> None:
    for field, errs in exc.errors.items():
        key = field.replace("custom_fields.", "cf_")
        for err in errs:
            form.add_error(key if key in form.fields else None, err)


def _deal_edit_page(request: HttpRequest, deal: Deal | None) -> HttpResponse:
    user = _user(request)
    if deal is None:
        initial: dict[str, Any] = {
            "responsible_id": user.pk,
            "currency": settings.DEFAULT_CURRENCY,
            "pipeline_id": _int(request.GET.get("pipeline")),
            "company_id": _int(request.GET.get("company")),
            "person_id": _int(request.GET.get("person")),
        }
    else:
        initial = {
            "title": deal.title,
            "company_id": deal.company_id,
            "person_id": deal.person_id,
            "contact_id": deal.contact_id,
            "amount": deal.amount if deal.amount is not None else "",
            "currency": deal.currency,
            "expected_close": deal.expected_close.isoformat() if deal.expected_close else "",
            "responsible_id": deal.responsible_id,
            "coworker_ids": list(deal.coworkers.values_list("pk", flat=True)),
            "source": deal.source,
        }
    form = _deal_form(user, request.POST or None, deal, initial)
    status = 200
    version = deal.version if deal else None
    if request.method == "POST":
        if form.is_valid():
            data = form.to_service(creating=deal is None)
            try:
                if deal is None:
                    saved = services.deal_create(actor=user, data=data)
                else:
                    saved = services.deal_update(
                        actor=user, deal=deal, data=data, version=_int(request.POST.get("version"))
                    )
                messages.success(request, _("Saved."))
                return redirect("deal-detail", saved.pk)
            except StaleVersion:
                form.add_error(
                    None,
                    _(
                        "Someone else changed this deal since you opened it. "
                        "Your values are still in the form: check them and save again."
                    ),
                )
                version = Deal.objects.get(pk=deal.pk).version if deal else None
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
        "sales/deal_form.html",
        {"form": form, "deal": deal, "version": version},
        status=status,
    )


@login_required
def deal_create(request: HttpRequest) -> HttpResponse:
    if not can(_user(request), "deal", "create"):
        raise Http404
    return _deal_edit_page(request, None)


@login_required
def deal_edit(request: HttpRequest, deal_id: int) -> HttpResponse:
    deal = selectors.deal_get(user=_user(request), deal_id=deal_id)
    return _deal_edit_page(request, deal)


def _stage_path(deal: Deal) -> list[dict[str, Any]]:
    if not deal.pipeline.has_stages:
        return []
    current = deal.stage.order if deal.stage else -1
    return [
        {"stage": s, "done": s.order < current, "current": s.pk == deal.stage_id}
        for s in selectors.stages_of(deal.pipeline)
    ]


@login_required
def deal_detail(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    deal = selectors.deal_get(user=user, deal_id=deal_id, include_deleted=True)
    if deal.deleted_at and not scope_allows(
        user, "deal", "delete", owner_id=deal.responsible_id, team_id=deal.team_id
    ):
        raise Http404
    tab = request.GET.get("tab", "overview")
    if tab not in ("overview", "stages", "timeline", "files", "history"):
        tab = "overview"
    context: dict[str, Any] = {
        "deal": deal,
        "tab": tab,
        "path": _stage_path(deal),
        "stages": selectors.stages_of(deal.pipeline),
        "loss_reasons": selectors.loss_reasons(),
        "can_edit": scope_allows(
            user, "deal", "edit", owner_id=deal.responsible_id, team_id=deal.team_id
        ),
        "can_delete": scope_allows(
            user, "deal", "delete", owner_id=deal.responsible_id, team_id=deal.team_id
        ),
        "custom": custom_fields_display(object_type="deal", values=deal.custom_fields),
        "coworkers": list(deal.coworkers.all()),
    }
    if tab == "stages":
        context["changes"] = selectors.deal_history(user=user, deal=deal)
    elif tab == "timeline":
        from rapport.activities.views import timeline_context

        context.update(timeline_context(request, "deal", deal.pk))
    elif tab == "files":
        context.update(
            files=attachments_for(user=user, object_type="deal", object_id=deal.pk),
            object_type="deal",
            object_id=deal.pk,
        )
    elif tab == "history":
        context["history"] = audit_for_object(user=user, object_type="deal", object_id=deal.pk)[
            :200
        ]
    if _is_htmx(request) and request.GET.get("tab"):
        return render(request, "sales/_deal_tab.html", context)
    return render(request, "sales/deal_detail.html", context)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _board_card(request: HttpRequest, deal: Deal) -> str:
    return render_to_string("sales/_card.html", {"deal": deal}, request=request)


def _column_totals(user: User, stage_ids: set[int | None], request: HttpRequest) -> dict[str, Any]:
    # The board sends its filters in the query string, so the totals match what it shows.
    out: dict[str, Any] = {}
    for stage in Stage.objects.filter(pk__in=[s for s in stage_ids if s]):
        totals = selectors.column_totals(user=user, stage=stage, filters=_deal_filters(request))
        out[str(stage.pk)] = {
            "count": totals["count"],
            "total": number_format(totals["total"], 0, force_grouping=True),
        }
    return out


def _move_result(
    request: HttpRequest,
    user: User,
    deal_id: int,
    action: Any,
) -> HttpResponse:
    """Run a board/card action; JSON for the board, a redirect with a message for the card."""
    deal = selectors.deal_get(user=user, deal_id=deal_id)
    before_stage = deal.stage_id
    try:
        saved: Deal = action(deal)
    except services.StageRequirementsMissing as exc:
        if _wants_json(request):
            dialog = render_to_string(
                "sales/_requirements_dialog.html",
                {"deal": deal, "stage": exc.stage, "fields": _requirement_fields(user, exc)},
                request=request,
            )
            return JsonResponse(
                {
                    "ok": False,
                    "code": "stage_requirements",
                    "message": exc.message,
                    "dialog": dialog,
                },
                status=422,
            )
        messages.error(request, exc.message)
        return redirect("deal-detail", deal.pk)
    except StaleVersion:
        message = _(
            "Someone else changed this deal meanwhile (it may have been moved). "
            "The board has been refreshed: check where it is now."
        )
        if _wants_json(request):
            return JsonResponse({"ok": False, "code": "stale", "message": message}, status=409)
        messages.error(request, message)
        return redirect("deal-detail", deal.pk)
    except (FieldErrors, PermissionDenied) as exc:
        message = (
            " ".join(m for msgs in exc.errors.values() for m in msgs)
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        if _wants_json(request):
            return JsonResponse({"ok": False, "code": "refused", "message": message}, status=422)
        messages.error(request, message)
        return redirect("deal-detail", deal.pk)
    saved = selectors.deal_get(user=user, deal_id=saved.pk)
    if _wants_json(request):
        return JsonResponse(
            {
                "ok": True,
                "deal": saved.pk,
                "version": saved.version,
                "status": saved.status,
                "card": _board_card(request, saved) if saved.is_open else "",
                "columns": _column_totals(user, {before_stage, saved.stage_id}, request),
            }
        )
    messages.success(request, _("Saved."))
    return redirect("deal-detail", saved.pk)


def _requirement_fields(user: User, exc: services.StageRequirementsMissing) -> list[dict[str, Any]]:
    """The inputs the board's dialog asks for: one per missing entry condition."""
    out = []
    for code in exc.missing:
        item: dict[str, Any] = {"code": code, "label": services.requirement_label(code)}
        if code == "company":
            item["choices"] = _party_choices(user, companies=True, selected=[])[1:]
        elif code in ("person", "contact"):
            item["choices"] = _party_choices(user, companies=False, selected=[])[1:]
        elif code == "expected_close":
            item["type"] = "date"
        elif code == "amount":
            item["type"] = "number"
        out.append(item)
    return out


def _fields_from_post(request: HttpRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for key, value in request.POST.items():
        if not key.startswith("req_"):
            continue
        code = key[4:]
        if code.startswith("cf:"):
            custom[code[3:]] = value
        elif code in ("company", "person", "contact"):
            fields[f"{code}_id"] = value
        else:
            fields[code] = value
    if custom:
        fields["custom_fields"] = custom
    return fields


@login_required
@require_POST
def deal_move(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    stage_id = _int(request.POST.get("stage_id"))
    version = _int(request.POST.get("version"))
    fields = _fields_from_post(request)

    def act(deal: Deal) -> Deal:
        return services.deal_move(
            actor=user, deal=deal, stage=stage_id or 0, version=version, fields=fields or None
        )

    return _move_result(request, user, deal_id, act)


@login_required
@require_POST
def deal_win(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    return _move_result(
        request,
        user,
        deal_id,
        lambda deal: services.deal_win(
            actor=user,
            deal=deal,
            amount=request.POST.get("amount") or None,
            version=_int(request.POST.get("version")),
        ),
    )


@login_required
@require_POST
def deal_lose(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    return _move_result(
        request,
        user,
        deal_id,
        lambda deal: services.deal_lose(
            actor=user,
            deal=deal,
            reason_id=request.POST.get("loss_reason_id"),
            comment=request.POST.get("comment", ""),
            version=_int(request.POST.get("version")),
        ),
    )


@login_required
@require_POST
def deal_reopen(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    return _move_result(
        request, user, deal_id, lambda deal: services.deal_reopen(actor=user, deal=deal)
    )


@login_required
@require_POST
def deal_delete(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    deal = selectors.deal_get(user=user, deal_id=deal_id)
    try:
        services.deal_delete(actor=user, deal=deal)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return redirect("deal-detail", deal.pk)
    messages.success(request, _("Moved to the recycle bin."))
    return redirect("deal-list")


@login_required
@require_POST
def deal_restore(request: HttpRequest, deal_id: int) -> HttpResponse:
    user = _user(request)
    deal = selectors.deal_get(user=user, deal_id=deal_id, include_deleted=True)
    try:
        services.deal_restore(actor=user, deal=deal)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return redirect("deal-detail", deal.pk)


# --- board ------------------------------------------------------------------------------------


@login_required
def board(request: HttpRequest) -> HttpResponse:
    first = selectors.pipelines().exclude(kind="stageless").first()
    if first is None:
        first = selectors.pipelines().first()
    if first is None:
        return render(
            request, "sales/board.html", {"pipeline": None, **_filter_context(_user(request))}
        )
    query = request.GET.urlencode()
    return redirect(reverse("pipeline-board", args=[first.pk]) + (f"?{query}" if query else ""))


@login_required
def pipeline_board(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    user = _user(request)
    pipeline = selectors.pipeline_get(pipeline_id)
    filters = _deal_filters(request)
    error = ""
    columns: list[selectors.Column] = []
    try:
        if pipeline.has_stages:
            columns = selectors.board(
                user=user, pipeline=pipeline, filters=filters, fields=selectors.CARD_FIELDS
            )
            deals_stageless: list[Deal] = []
        else:
            filters.pipeline_id = pipeline.pk
            filters.status = DealStatus.OPEN
            deals_stageless = list(
                selectors.deal_list(user=user, filters=filters).order_by("-id")[:200]
            )
    except FieldErrors as exc:
        error = str(exc)
        deals_stageless = []
    query = request.GET.copy()
    return render(
        request,
        "sales/board.html",
        {
            "pipeline": pipeline,
            "columns": columns,
            "stageless": deals_stageless,
            "loss_reasons": selectors.loss_reasons(),
            "f": request.GET,
            "query": query.urlencode(),
            "error": error,
            "can_create": can(user, "deal", "create"),
            **_filter_context(user),
        },
    )


@login_required
def board_column(request: HttpRequest, stage_id: int) -> HttpResponse:
    """The next cards of one column (the "more" button)."""
    user = _user(request)
    stage = Stage.objects.filter(pk=stage_id).first()
    if stage is None:
        raise Http404
    page = selectors.board_column(
        user=user,
        stage=stage,
        filters=_deal_filters(request),
        cursor=request.GET.get("cursor"),
        fields=selectors.CARD_FIELDS,
    )
    params = request.GET.copy()
    params.pop("cursor", None)
    return render(
        request,
        "sales/_column_cards.html",
        {
            "stage": stage,
            "deals": page.items,
            "next_cursor": page.next_cursor,
            "query": params.urlencode(),
        },
    )


# --- funnel -----------------------------------------------------------------------------------


def _period(request: HttpRequest) -> tuple[dt.date, dt.date]:
    today = timezone.localdate()
    date_to = _date(request.GET.get("date_to")) or today
    date_from = _date(request.GET.get("date_from")) or date_to - dt.timedelta(days=89)
    return date_from, date_to


def _funnel_for(request: HttpRequest) -> tuple[Pipeline | None, Any, str]:
    user = _user(request)
    pipeline = None
    pid = _int(request.GET.get("pipeline"))
    if pid:
        pipeline = Pipeline.objects.filter(pk=pid).first()
    if pipeline is None:
        pipeline = selectors.pipelines().exclude(kind="stageless").first()
    if pipeline is None:
        return None, None, ""
    date_from, date_to = _period(request)
    try:
        return (
            pipeline,
            selectors.funnel(user=user, pipeline=pipeline, date_from=date_from, date_to=date_to),
            "",
        )
    except FieldErrors as exc:
        return pipeline, None, str(exc)


@login_required
def funnel(request: HttpRequest) -> HttpResponse:
    pipeline, report, error = _funnel_for(request)
    date_from, date_to = _period(request)
    chart = None
    if report is not None:
        chart = {
            "stages": [
                {"name": r.stage.name, "value": r.entered, "color": r.stage.color}
                for r in report.stages
            ],
            "reasons": [
                {"name": r["reason"] or _("no reason"), "value": r["count"]}
                for r in report.by_reason
            ],
            "labels": {"entered": _("Entered"), "lost": _("Lost by reason")},
        }
    return render(
        request,
        "sales/funnel.html",
        {
            "pipeline": pipeline,
            "report": report,
            "error": error,
            "chart": chart,
            "pipelines": selectors.pipelines(),
            "date_from": date_from,
            "date_to": date_to,
            "query": request.GET.urlencode(),
            "time_zone": settings.TIME_ZONE,
        },
    )


@login_required
def funnel_export(request: HttpRequest) -> HttpResponseBase:
    if not can(_user(request), "deal", "export"):
        raise Http404
    pipeline, report, error = _funnel_for(request)
    if report is None:
        return HttpResponse(error or _("No pipeline."), status=422, content_type="text/plain")
    header = [
        _("Stage"),
        _("Entered"),
        _("Amount"),
        _("Conversion to next, %"),
        _("Lost"),
        _("Lost amount"),
        _("Average time, hours"),
        _("Time limit, hours"),
        _("Over the limit"),
    ]
    rows = [
        [
            r.stage.name,
            r.entered,
            r.amount,
            round(r.conversion * 100, 1) if r.conversion is not None else None,
            r.lost,
            r.lost_amount,
            r.avg_hours,
            r.limit_hours,
            r.over_limit,
        ]
        for r in report.stages
    ]
    return export_response(
        name="funnel",
        fmt=request.GET.get("format", ""),
        header=header,
        rows=rows,
        count=len(rows),
        title=_("Funnel"),
    )


# --- leads ------------------------------------------------------------------------------------


def _lead_filters(request: HttpRequest) -> selectors.LeadFilters:
    g = request.GET
    return selectors.LeadFilters(
        q=g.get("q", "").strip()[:200],
        status=g.get("status", ""),
        channel=g.get("channel", ""),
        responsible_id=_int(g.get("responsible")),
        team_id=_int(g.get("team")),
        created_from=_date(g.get("created_from")),
        created_to=_date(g.get("created_to")),
    )


@login_required
def lead_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    g = request.GET
    filters = _lead_filters(request)
    error = ""
    try:
        page = keyset_page(
            selectors.lead_list(user=user, filters=filters),
            sort="-id",
            cursor=g.get("cursor"),
            size=50,
        )
    except FieldErrors as exc:
        error = str(exc)
        page = keyset_page(Lead.objects.none(), sort="-id", cursor=None, size=50)
    params = g.copy()
    params.pop("cursor", None)
    context = {
        "leads": page.items,
        "next_cursor": page.next_cursor,
        "params": params.urlencode(),
        "f": g,
        "error": error,
        "statuses": LeadStatus.choices,
        "channels": LeadChannel.choices,
        "managers": user_list(user=user).filter(is_active=True),
        "teams": team_list(user=user),
        "can_create": can(user, "lead", "create"),
        "can_export": can(user, "lead", "export"),
        "export_params": _export_params(request),
    }
    if _is_htmx(request) and g.get("cursor"):
        return render(request, "sales/_lead_rows.html", context)
    return render(request, "sales/lead_list.html", context)


def _lead_edit_page(request: HttpRequest, lead: Lead | None) -> HttpResponse:
    user = _user(request)
    if lead is None:
        initial: dict[str, Any] = {
            "responsible_id": user.pk,
            "currency": settings.DEFAULT_CURRENCY,
            "channel": LeadChannel.MANUAL,
        }
    else:
        initial = {
            k: getattr(lead, k)
            for k in (
                "name",
                "phone",
                "email",
                "company_name",
                "address",
                "interest",
                "currency",
                "channel",
                "source",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "text",
            )
        }
        initial["amount"] = lead.amount if lead.amount is not None else ""
        initial["responsible_id"] = lead.responsible_id
    form = LeadForm(request.POST or None, initial=initial)
    _choices(
        form,
        "responsible_id",
        [(u.pk, str(u)) for u in user_list(user=user).filter(is_active=True)],
    )
    form.add_custom_fields(definitions_for("lead"), lead.custom_fields if lead else {})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                if lead is None:
                    saved = services.lead_create(actor=user, data=form.to_service())
                else:
                    saved = services.lead_update(
                        actor=user,
                        lead=lead,
                        data=form.to_service(),
                        version=_int(request.POST.get("version")),
                    )
                messages.success(request, _("Saved."))
                return redirect("lead-detail", saved.pk)
            except StaleVersion:
                form.add_error(
                    None,
                    _(
                        "Someone else changed this lead since you opened it. "
                        "Your values are still in the form: check them and save again."
                    ),
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
        "sales/lead_form.html",
        {"form": form, "lead": lead, "version": lead.version if lead else None},
        status=status,
    )


@login_required
def lead_create(request: HttpRequest) -> HttpResponse:
    if not can(_user(request), "lead", "create"):
        raise Http404
    return _lead_edit_page(request, None)


@login_required
def lead_edit(request: HttpRequest, lead_id: int) -> HttpResponse:
    return _lead_edit_page(request, selectors.lead_get(user=_user(request), lead_id=lead_id))


@login_required
def lead_detail(request: HttpRequest, lead_id: int) -> HttpResponse:
    user = _user(request)
    lead = selectors.lead_get(user=user, lead_id=lead_id)
    matches = services.lead_matches(lead, user)
    return render(
        request,
        "sales/lead_detail.html",
        {
            "lead": lead,
            "matches": {k: [c.as_dict() for c in v] for k, v in matches.items()},
            "deals": lead.deals.filter(deleted_at__isnull=True),
            "pipelines": selectors.pipelines(),
            "history": audit_for_object(user=user, object_type="lead", object_id=lead.pk)[:100],
            "files": attachments_for(user=user, object_type="lead", object_id=lead.pk),
            **_lead_timeline(request, lead.pk),
            "object_type": "lead",
            "object_id": lead.pk,
            "can_edit": scope_allows(
                user, "lead", "edit", owner_id=lead.responsible_id, team_id=lead.team_id
            ),
            "custom": custom_fields_display(object_type="lead", values=lead.custom_fields),
        },
    )


def _lead_timeline(request: HttpRequest, lead_id: int) -> dict[str, Any]:
    from rapport.activities.views import timeline_context

    return timeline_context(request, "lead", lead_id)


@login_required
@require_POST
def lead_convert(request: HttpRequest, lead_id: int) -> HttpResponse:
    user = _user(request)
    lead = selectors.lead_get(user=user, lead_id=lead_id)
    p = request.POST
    try:
        deal = services.lead_convert(
            actor=user,
            lead=lead,
            company_id=_int(p.get("company_id")),
            person_id=_int(p.get("person_id")),
            create_company=p.get("create_company") == "1",
            create_person=p.get("create_person") == "1",
            deal={
                k: v
                for k, v in {
                    "title": p.get("title", "").strip(),
                    "pipeline_id": _int(p.get("pipeline_id")),
                }.items()
                if v
            },
            version=_int(p.get("version")),
        )
    except StaleVersion:
        messages.error(request, _("Someone else changed this lead meanwhile; look again."))
        return redirect("lead-detail", lead.pk)
    except (FieldErrors, PermissionDenied) as exc:
        text = (
            " ".join(m for msgs in exc.errors.values() for m in msgs)
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        messages.error(request, text)
        return redirect("lead-detail", lead.pk)
    messages.success(request, _("The lead is converted: here is its deal."))
    return redirect("deal-detail", deal.pk)


@login_required
@require_POST
def lead_reject(request: HttpRequest, lead_id: int) -> HttpResponse:
    user = _user(request)
    lead = selectors.lead_get(user=user, lead_id=lead_id)
    try:
        services.lead_reject(
            actor=user,
            lead=lead,
            reason=request.POST.get("reason", ""),
            version=_int(request.POST.get("version")),
        )
        messages.success(request, _("The lead is rejected."))
    except (FieldErrors, PermissionDenied, StaleVersion) as exc:
        text = (
            " ".join(m for msgs in exc.errors.values() for m in msgs)
            if isinstance(exc, FieldErrors)
            else str(exc)
        )
        messages.error(request, text)
    return redirect("lead-detail", lead.pk)


# --- settings: pipelines, stages, loss reasons -----------------------------------------------


@login_required
def pipelines_page(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    form = PipelineForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                p = services.pipeline_save(actor=user, data=form.cleaned_data)
                messages.success(request, _("Pipeline created: now add its stages."))
                return redirect("pipeline-edit", p.pk)
            except FieldErrors as exc:
                _apply_errors(form, exc)
        status = 422
    return render(
        request,
        "sales/pipelines.html",
        {
            "pipelines": selectors.pipelines(active_only=False).prefetch_related("stages"),
            "form": form,
            "reasons": selectors.loss_reasons(active_only=False),
        },
        status=status,
    )


def _custom_requirements() -> list[tuple[str, str]]:
    return [(f"cf:{d.name}", d.label) for d in definitions_for("deal")]


@login_required
def pipeline_edit(request: HttpRequest, pipeline_id: int) -> HttpResponse:
    user = _admin(request)
    pipeline = selectors.pipeline_get(pipeline_id)
    p = request.POST
    pform = PipelineForm(
        p if p.get("form") == "pipeline" else None,
        initial={
            "name": pipeline.name,
            "kind": pipeline.kind,
            "order": pipeline.order,
            "is_active": pipeline.is_active,
            "no_contact_days": pipeline.no_contact_days,
        },
    )
    sform = StageForm(p if p.get("form") == "stage" else None, custom=_custom_requirements())
    status = 200
    if request.method == "POST":
        action = p.get("form")
        try:
            if action == "pipeline" and pform.is_valid():
                services.pipeline_save(actor=user, pipeline=pipeline, data=pform.cleaned_data)
                messages.success(request, _("Saved."))
                return redirect("pipeline-edit", pipeline.pk)
            sid = _int(p.get("stage_id"))
            if action == "stage" and sid:
                sform = StageForm(p, custom=_custom_requirements(), prefix=f"s{sid}")
            if action == "stage" and sform.is_valid():
                stage = pipeline.stages.filter(pk=sid).first() if sid else None
                if sid and stage is None:
                    raise Http404
                services.stage_save(
                    actor=user, pipeline=pipeline, stage=stage, data=sform.cleaned_data
                )
                messages.success(request, _("Saved."))
                return redirect("pipeline-edit", pipeline.pk)
            if action == "delete-stage":
                stage = pipeline.stages.filter(pk=sid or 0).first()
                if stage is None:
                    raise Http404
                services.stage_delete(actor=user, stage=stage)
                messages.success(request, _("Stage removed."))
                return redirect("pipeline-edit", pipeline.pk)
            if action == "order":
                ids = [i for i in (_int(v) for v in p.getlist("stage_ids")) if i]
                services.stages_reorder(actor=user, pipeline=pipeline, stage_ids=ids)
                if _wants_json(request):
                    return JsonResponse({"ok": True})
                return redirect("pipeline-edit", pipeline.pk)
            status = 422
        except FieldErrors as exc:
            target = pform if action == "pipeline" else sform
            if action in ("delete-stage", "order"):
                messages.error(request, " ".join(m for v in exc.errors.values() for m in v))
                return redirect("pipeline-edit", pipeline.pk)
            _apply_errors(target, exc)
            status = 422
    stages = []
    for s in selectors.stages_of(pipeline, active_only=False):
        stages.append(
            {
                "stage": s,
                "form": StageForm(
                    initial={
                        "name": s.name,
                        "color": s.color,
                        "probability": s.probability,
                        "time_limit_hours": s.time_limit_hours,
                        "required_fields": s.required_fields,
                    },
                    custom=_custom_requirements(),
                    prefix=f"s{s.pk}",
                ),
                "required": [services.requirement_label(c) for c in s.required_fields or []],
            }
        )
    return render(
        request,
        "sales/pipeline_edit.html",
        {"pipeline": pipeline, "pform": pform, "sform": sform, "stages": stages},
        status=status,
    )


@login_required
@require_POST
def loss_reasons(request: HttpRequest) -> HttpResponse:
    user = _admin(request)
    p = request.POST
    try:
        reason = None
        if _int(p.get("reason_id")):
            reason = (
                selectors.loss_reasons(active_only=False)
                .filter(pk=_int(p.get("reason_id")) or 0)
                .first()
            )
            if reason is None:
                raise Http404
        services.loss_reason_save(
            actor=user,
            name=p.get("name", reason.name if reason else ""),
            reason=reason,
            is_active=p.get("is_active", "1") == "1",
        )
        messages.success(request, _("Saved."))
    except FieldErrors as exc:
        messages.error(request, " ".join(m for v in exc.errors.values() for m in v))
    return redirect("pipelines")
