"""Sales API: parse -> call a service or selector -> schema out. No rules here.

The board, the deal pages and this API call the same services, so a strict pipeline refuses a
skipped stage, a missing entry field or a stale move the same way whoever asks.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, Literal

from django.conf import settings
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, Field

from rapport.core.pagination import keyset_page
from rapport.parties.api import (
    EXPORT_DESCRIPTION,
    EXPORT_OPENAPI,
    _etag,
    _if_match,
    _size,
    _sort,
)
from rapport.parties.schemas import ErrorOut
from rapport.parties.selectors import custom_filters_from
from rapport.sales import selectors, services
from rapport.sales.models import Deal, Lead, LossReason, Pipeline, Stage, StageChange
from rapport.sales.schemas import (
    BoardOut,
    DealOut,
    DealPage,
    DealPatch,
    DealWrite,
    FunnelOut,
    LeadConvertIn,
    LeadMatchesOut,
    LeadOut,
    LeadPage,
    LeadPatch,
    LeadRejectIn,
    LeadWrite,
    LoseIn,
    LossReasonOut,
    LossReasonWrite,
    MoveIn,
    PipelineOut,
    PipelinePatch,
    PipelineWrite,
    StageChangeOut,
    StageOrderIn,
    StageOut,
    StagePatch,
    StageWrite,
    WinIn,
)

router = Router()
ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 409: ErrorOut, 412: ErrorOut}

DEAL_SORTS = {"id": "id", "title": "title", "created": "created_at", "updated": "updated_at"}
LEAD_SORTS = {"id": "id", "created": "created_at", "updated": "updated_at"}
CENT = decimal.Decimal("0.01")


def _user(request: HttpRequest) -> Any:
    return request.user


def _money(value: Any) -> str:
    """A decimal as a string with cents, the same on SQLite and PostgreSQL."""
    return str(decimal.Decimal(value or 0).quantize(CENT))


def _money_or_none(value: Any) -> str | None:
    return None if value is None else _money(value)


def _ref(obj: Any, name: str) -> dict[str, Any] | None:
    return None if obj is None else {"id": obj.pk, "name": name}


def _user_ref(user: Any) -> dict[str, Any] | None:
    return None if user is None else {"id": user.pk, "name": str(user)}


def _payload(body: BaseModel, *, partial: bool) -> dict[str, Any]:
    """The body as plain JSON values (decimals and dates as strings), as a form would send."""
    data: dict[str, Any] = body.model_dump(mode="json", exclude_unset=partial)
    return data


def _version(request: HttpRequest, body_version: int | None) -> int | None:
    return body_version if body_version is not None else _if_match(request)


# --- output -----------------------------------------------------------------------------------


def stage_out(s: Stage) -> dict[str, Any]:
    return {
        "id": s.pk,
        "pipeline_id": s.pipeline_id,
        "name": s.name,
        "order": s.order,
        "color": s.color,
        "probability": s.probability,
        "time_limit_hours": s.time_limit_hours,
        "required_fields": list(s.required_fields or []),
        "is_active": s.is_active,
    }


def pipeline_out(p: Pipeline, stages: list[Stage]) -> dict[str, Any]:
    return {
        "id": p.pk,
        "version": p.version,
        "name": p.name,
        "kind": p.kind,
        "order": p.order,
        "is_active": p.is_active,
        "no_contact_days": p.no_contact_days,
        "stages": [stage_out(s) for s in stages],
    }


def loss_reason_out(r: LossReason) -> dict[str, Any]:
    return {"id": r.pk, "name": r.name, "order": r.order, "is_active": r.is_active}


def deal_out(d: Deal) -> dict[str, Any]:
    return {
        "id": d.pk,
        "version": d.version,
        "title": d.title,
        "company": _ref(d.company, d.company.short_name) if d.company_id and d.company else None,
        "person": _ref(d.person, d.person.full_name) if d.person_id and d.person else None,
        "contact": _ref(d.contact, d.contact.full_name) if d.contact_id and d.contact else None,
        "pipeline_id": d.pipeline_id,
        "stage": _ref(d.stage, d.stage.name) if d.stage_id and d.stage else None,
        "amount": _money_or_none(d.amount),
        "currency": d.currency,
        "expected_close": d.expected_close,
        "responsible": _user_ref(d.responsible) if d.responsible_id else None,
        "team_id": d.team_id,
        "coworker_ids": sorted(u.pk for u in d.coworkers.all()),
        "source": d.source,
        "lead_id": d.lead_id,
        "status": d.status,
        "loss_reason": (
            _ref(d.loss_reason, d.loss_reason.name) if d.loss_reason_id and d.loss_reason else None
        ),
        "loss_comment": d.loss_comment,
        "won_amount": _money_or_none(d.won_amount),
        "closed_at": d.closed_at,
        "stage_entered_at": d.stage_entered_at,
        "days_in_stage": d.days_in_stage,
        "overdue": d.is_overdue,
        "custom_fields": d.custom_fields,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "deleted_at": d.deleted_at,
    }


def _deals_out(deals: list[Deal]) -> list[dict[str, Any]]:
    """Deals of a page or a board: their co-workers and contacts fetched once for all."""
    prefetch_related_objects(deals, "coworkers", "contact", "loss_reason")
    return [deal_out(d) for d in deals]


def lead_out(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.pk,
        "version": lead.version,
        "name": lead.name,
        "phone": lead.phone,
        "phone_e164": lead.phone_e164,
        "email": lead.email,
        "company_name": lead.company_name,
        "address": lead.address,
        "text": lead.text,
        "interest": lead.interest,
        "amount": _money_or_none(lead.amount),
        "currency": lead.currency,
        "channel": lead.channel,
        "utm_source": lead.utm_source,
        "utm_medium": lead.utm_medium,
        "utm_campaign": lead.utm_campaign,
        "status": lead.status,
        "reject_reason": lead.reject_reason,
        "responsible": _user_ref(lead.responsible) if lead.responsible_id else None,
        "team_id": lead.team_id,
        "source": lead.source,
        "company": (
            _ref(lead.company, lead.company.short_name)
            if lead.company_id and lead.company
            else None
        ),
        "person": (
            _ref(lead.person, lead.person.full_name) if lead.person_id and lead.person else None
        ),
        "converted_at": lead.converted_at,
        "custom_fields": lead.custom_fields,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "deleted_at": lead.deleted_at,
    }


def change_out(c: StageChange) -> dict[str, Any]:
    return {
        "id": c.pk,
        "from_stage": _ref(c.from_stage, c.from_stage.name) if c.from_stage else None,
        "to_stage": _ref(c.to_stage, c.to_stage.name) if c.to_stage else None,
        "from_status": c.from_status,
        "to_status": c.to_status,
        "at": c.at,
        "by": _user_ref(c.by),
        "seconds_in_previous": c.seconds_in_previous,
        "limit_exceeded": c.limit_exceeded,
        "amount": _money_or_none(c.amount),
    }


# --- filters ----------------------------------------------------------------------------------


class BoardQuery(Schema):
    """Filters of the board; the deal list adds pipeline, stage, status and paging."""

    q: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    source: str = ""
    amount_min: decimal.Decimal | None = None
    amount_max: decimal.Decimal | None = None
    close_from: dt.date | None = None
    close_to: dt.date | None = None
    company_id: int | None = None
    person_id: int | None = None
    overdue: bool = False
    mine: bool = False
    size: int | None = Field(None, description="Cards per column; empty: the board's default")


class DealFilterQuery(BoardQuery):
    """The deal list's filters: the board's, and pipeline, stage, status, recycle bin."""

    pipeline_id: int | None = None
    stage_id: int | None = None
    status: str = ""
    deleted: bool = False


class DealQuery(DealFilterQuery):
    sort: str = "-id"
    cursor: str | None = None
    size: int = settings.API_PAGE_SIZE


class DealExportQuery(DealFilterQuery):
    sort: str = "-id"
    format: Literal["xlsx", "csv"] = "xlsx"


class ColumnQuery(BoardQuery):
    cursor: str | None = None


def _deal_filters(request: HttpRequest, params: BoardQuery) -> selectors.DealFilters:
    extra: dict[str, Any] = {}
    if isinstance(params, DealFilterQuery):
        extra = {
            "pipeline_id": params.pipeline_id,
            "stage_id": params.stage_id,
            "status": params.status,
            "deleted": params.deleted,
        }
    return selectors.DealFilters(
        q=params.q.strip()[:200],
        responsible_id=params.responsible_id,
        team_id=params.team_id,
        source=params.source.strip(),
        amount_min=params.amount_min,
        amount_max=params.amount_max,
        close_from=params.close_from,
        close_to=params.close_to,
        company_id=params.company_id,
        person_id=params.person_id,
        overdue=params.overdue,
        mine=params.mine,
        custom=custom_filters_from(request.GET),
        **extra,
    )


class LeadFilterQuery(Schema):
    q: str = ""
    status: str = ""
    channel: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    created_from: dt.date | None = None
    created_to: dt.date | None = None
    deleted: bool = False


class LeadQuery(LeadFilterQuery):
    sort: str = "-id"
    cursor: str | None = None
    size: int = settings.API_PAGE_SIZE


class LeadExportQuery(LeadFilterQuery):
    sort: str = "-id"
    format: Literal["xlsx", "csv"] = "xlsx"


def _lead_filters(params: LeadFilterQuery) -> selectors.LeadFilters:
    return selectors.LeadFilters(
        q=params.q.strip()[:200],
        status=params.status,
        channel=params.channel,
        responsible_id=params.responsible_id,
        team_id=params.team_id,
        created_from=params.created_from,
        created_to=params.created_to,
        deleted=params.deleted,
    )


CF_DESCRIPTION = "Custom fields filter as `cf_<name>=value` query parameters."


# --- leads ------------------------------------------------------------------------------------


@router.get(
    "/leads",
    response={200: LeadPage, **ERRORS},
    tags=["leads"],
    summary="List leads",
)
def leads_list(request: HttpRequest, params: Query[LeadQuery]) -> Any:
    qs = selectors.lead_list(user=_user(request), filters=_lead_filters(params))
    page = keyset_page(
        qs,
        sort=_sort(params.sort, LEAD_SORTS),
        cursor=params.cursor,
        size=_size(params.size),
    )
    return {"items": [lead_out(lead) for lead in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/leads/export",
    response=ERRORS,
    tags=["leads"],
    summary="Export leads (CSV or XLSX)",
    description=EXPORT_DESCRIPTION,
    openapi_extra=EXPORT_OPENAPI,
)
def leads_export(request: HttpRequest, params: Query[LeadExportQuery]) -> Any:
    from rapport.sales.views import lead_export_response

    return lead_export_response(
        user=_user(request),
        filters=_lead_filters(params),
        sort=_sort(params.sort, LEAD_SORTS),
        fmt=params.format,
    )


@router.post(
    "/leads",
    response={201: LeadOut, **WRITE_ERRORS},
    tags=["leads"],
    summary="Create a lead",
    description="The lead is linked to a company or person when the duplicate guard is certain.",
)
def leads_create(request: HttpRequest, body: LeadWrite) -> Any:
    lead = services.lead_create(actor=_user(request), data=_payload(body, partial=False))
    return Status(201, lead_out(lead))


@router.get(
    "/leads/{lead_id}", response={200: LeadOut, **ERRORS}, tags=["leads"], summary="Get a lead"
)
def leads_get(request: HttpRequest, response: HttpResponse, lead_id: int) -> Any:
    lead = selectors.lead_get(user=_user(request), lead_id=lead_id)
    _etag(response, lead.version)
    return lead_out(lead)


@router.patch(
    "/leads/{lead_id}",
    response={200: LeadOut, **WRITE_ERRORS},
    tags=["leads"],
    summary="Change a lead",
    description='Send `If-Match: "<version>"` to refuse a stale write with 412.',
)
def leads_update(
    request: HttpRequest, response: HttpResponse, lead_id: int, body: LeadPatch
) -> Any:
    user = _user(request)
    lead = selectors.lead_get(user=user, lead_id=lead_id)
    lead = services.lead_update(
        actor=user, lead=lead, data=_payload(body, partial=True), version=_if_match(request)
    )
    _etag(response, lead.version)
    return lead_out(lead)


@router.delete(
    "/leads/{lead_id}",
    response={204: None, **ERRORS},
    tags=["leads"],
    summary="Move a lead to the recycle bin",
)
def leads_delete(request: HttpRequest, lead_id: int) -> Any:
    user = _user(request)
    services.lead_delete(actor=user, lead=selectors.lead_get(user=user, lead_id=lead_id))
    return Status(204, None)


@router.get(
    "/leads/{lead_id}/matches",
    response={200: LeadMatchesOut, **ERRORS},
    tags=["leads"],
    summary="Directory records the lead's contacts point to",
    description="The duplicate guard's candidates; records outside your access have no id.",
)
def leads_matches(request: HttpRequest, lead_id: int) -> Any:
    user = _user(request)
    matches = services.lead_matches(selectors.lead_get(user=user, lead_id=lead_id), user)
    return {kind: [c.as_dict() for c in cands] for kind, cands in matches.items()}


@router.post(
    "/leads/{lead_id}/convert",
    response={201: DealOut, **WRITE_ERRORS},
    tags=["leads"],
    summary="Convert a lead into a company, a person and a deal",
    description="Existing records win: the ids given, then the lead's matches; a company or "
    "person is created only when none is found. Answers the new deal.",
)
def leads_convert(request: HttpRequest, lead_id: int, body: LeadConvertIn) -> Any:
    user = _user(request)
    lead = selectors.lead_get(user=user, lead_id=lead_id)
    deal = services.lead_convert(
        actor=user,
        lead=lead,
        company_id=body.company_id,
        person_id=body.person_id,
        create_company=body.create_company,
        create_person=body.create_person,
        deal=_payload(body.deal, partial=True) if body.deal else None,
        version=_version(request, body.version),
    )
    return Status(201, deal_out(deal))


@router.post(
    "/leads/{lead_id}/reject",
    response={200: LeadOut, **WRITE_ERRORS},
    tags=["leads"],
    summary="Reject a lead with a reason",
)
def leads_reject(request: HttpRequest, lead_id: int, body: LeadRejectIn) -> Any:
    user = _user(request)
    lead = services.lead_reject(
        actor=user,
        lead=selectors.lead_get(user=user, lead_id=lead_id),
        reason=body.reason,
        version=_version(request, body.version),
    )
    return lead_out(lead)


# --- pipelines, stages, loss reasons ----------------------------------------------------------


def _stage_get(stage_id: int) -> Stage:
    # Stages are configuration, not records: no scope. (No stage selector exists yet.)
    stage = Stage.objects.select_related("pipeline").filter(pk=stage_id).first()
    if stage is None:
        raise Http404
    return stage


def _patch(body: BaseModel, nullable: tuple[str, ...] = ()) -> dict[str, Any]:
    """Given keys only; a null clears only a field that may be empty."""
    data = _payload(body, partial=True)
    return {k: v for k, v in data.items() if v is not None or k in nullable}


@router.get(
    "/pipelines",
    response={200: list[PipelineOut], **ERRORS},
    tags=["pipelines"],
    summary="List pipelines with their stages in order",
)
def pipelines_list(request: HttpRequest, include_inactive: bool = False) -> Any:
    pipes = list(selectors.pipelines(active_only=not include_inactive).prefetch_related("stages"))
    return [
        pipeline_out(p, [s for s in p.stages.all() if include_inactive or s.is_active])
        for p in pipes
    ]


@router.post(
    "/pipelines",
    response={201: PipelineOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Create a pipeline (administrators)",
)
def pipelines_create(request: HttpRequest, body: PipelineWrite) -> Any:
    pipeline = services.pipeline_save(actor=_user(request), data=_payload(body, partial=False))
    return Status(201, pipeline_out(pipeline, []))


@router.get(
    "/pipelines/{pipeline_id}",
    response={200: PipelineOut, **ERRORS},
    tags=["pipelines"],
    summary="Get a pipeline with its stages",
)
def pipelines_get(request: HttpRequest, pipeline_id: int, include_inactive: bool = False) -> Any:
    pipeline = selectors.pipeline_get(pipeline_id)
    return pipeline_out(pipeline, selectors.stages_of(pipeline, active_only=not include_inactive))


@router.patch(
    "/pipelines/{pipeline_id}",
    response={200: PipelineOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Change a pipeline (administrators)",
    description="The kind can change only while the pipeline has no deals.",
)
def pipelines_update(request: HttpRequest, pipeline_id: int, body: PipelinePatch) -> Any:
    pipeline = services.pipeline_save(
        actor=_user(request), pipeline=selectors.pipeline_get(pipeline_id), data=_patch(body)
    )
    return pipeline_out(pipeline, selectors.stages_of(pipeline))


@router.post(
    "/pipelines/{pipeline_id}/stages",
    response={201: StageOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Add a stage to a pipeline (administrators)",
)
def stages_create(request: HttpRequest, pipeline_id: int, body: StageWrite) -> Any:
    stage = services.stage_save(
        actor=_user(request), pipeline=selectors.pipeline_get(pipeline_id), data=_patch(body)
    )
    return Status(201, stage_out(stage))


@router.patch(
    "/stages/{stage_id}",
    response={200: StageOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Change a stage (administrators)",
)
def stages_update(request: HttpRequest, stage_id: int, body: StagePatch) -> Any:
    stage = _stage_get(stage_id)
    stage = services.stage_save(
        actor=_user(request),
        pipeline=stage.pipeline,
        stage=stage,
        data=_patch(body, nullable=("time_limit_hours",)),
    )
    return stage_out(stage)


@router.delete(
    "/stages/{stage_id}",
    response={204: None, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Remove a stage (administrators)",
    description="A stage deals have passed through is deactivated, so history keeps its name.",
)
def stages_delete(request: HttpRequest, stage_id: int) -> Any:
    services.stage_delete(actor=_user(request), stage=_stage_get(stage_id))
    return Status(204, None)


@router.put(
    "/pipelines/{pipeline_id}/stage-order",
    response={200: PipelineOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Reorder the stages of a pipeline (administrators)",
    description="List every stage once, inactive ones too (GET with `include_inactive=true`).",
)
def stages_reorder(request: HttpRequest, pipeline_id: int, body: StageOrderIn) -> Any:
    pipeline = selectors.pipeline_get(pipeline_id)
    services.stages_reorder(actor=_user(request), pipeline=pipeline, stage_ids=body.stage_ids)
    return pipeline_out(pipeline, selectors.stages_of(pipeline, active_only=False))


@router.get(
    "/loss-reasons",
    response={200: list[LossReasonOut], **ERRORS},
    tags=["pipelines"],
    summary="List loss reasons",
)
def loss_reasons_list(request: HttpRequest, include_inactive: bool = False) -> Any:
    return [loss_reason_out(r) for r in selectors.loss_reasons(active_only=not include_inactive)]


@router.post(
    "/loss-reasons",
    response={201: LossReasonOut, **WRITE_ERRORS},
    tags=["pipelines"],
    summary="Add a loss reason (administrators)",
)
def loss_reasons_create(request: HttpRequest, body: LossReasonWrite) -> Any:
    reason = services.loss_reason_save(
        actor=_user(request), name=body.name, is_active=body.is_active
    )
    return Status(201, loss_reason_out(reason))


# --- deals ------------------------------------------------------------------------------------


@router.get(
    "/deals",
    response={200: DealPage, **ERRORS},
    tags=["deals"],
    summary="List deals",
    description=CF_DESCRIPTION,
)
def deals_list(request: HttpRequest, params: Query[DealQuery]) -> Any:
    qs = selectors.deal_list(user=_user(request), filters=_deal_filters(request, params))
    page = keyset_page(
        qs,
        sort=_sort(params.sort, DEAL_SORTS),
        cursor=params.cursor,
        size=_size(params.size),
    )
    return {"items": _deals_out(page.items), "next_cursor": page.next_cursor}


@router.get(
    "/deals/export",
    response=ERRORS,
    tags=["deals"],
    summary="Export deals (CSV or XLSX)",
    description=EXPORT_DESCRIPTION,
    openapi_extra=EXPORT_OPENAPI,
)
def deals_export(request: HttpRequest, params: Query[DealExportQuery]) -> Any:
    from rapport.sales.views import deal_export_response

    return deal_export_response(
        user=_user(request),
        filters=_deal_filters(request, params),
        sort=_sort(params.sort, DEAL_SORTS),
        fmt=params.format,
    )


@router.post(
    "/deals",
    response={201: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Create a deal",
    description="The deal starts at the pipeline's first stage (or the stage given, in a free "
    "pipeline); a stage's missing entry fields answer 422 `stage_requirements`.",
)
def deals_create(request: HttpRequest, body: DealWrite) -> Any:
    deal = services.deal_create(actor=_user(request), data=_payload(body, partial=False))
    return Status(201, deal_out(deal))


@router.get(
    "/deals/{deal_id}", response={200: DealOut, **ERRORS}, tags=["deals"], summary="Get a deal"
)
def deals_get(request: HttpRequest, response: HttpResponse, deal_id: int) -> Any:
    deal = selectors.deal_get(user=_user(request), deal_id=deal_id)
    _etag(response, deal.version)
    return deal_out(deal)


@router.patch(
    "/deals/{deal_id}",
    response={200: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Change a deal",
    description='Stage and status change by moves. Send `If-Match: "<version>"` to refuse a '
    "stale write with 412.",
)
def deals_update(
    request: HttpRequest, response: HttpResponse, deal_id: int, body: DealPatch
) -> Any:
    user = _user(request)
    deal = services.deal_update(
        actor=user,
        deal=selectors.deal_get(user=user, deal_id=deal_id),
        data=_payload(body, partial=True),
        version=_if_match(request),
    )
    _etag(response, deal.version)
    return deal_out(deal)


@router.delete(
    "/deals/{deal_id}",
    response={204: None, **ERRORS},
    tags=["deals"],
    summary="Move a deal to the recycle bin",
)
def deals_delete(request: HttpRequest, deal_id: int) -> Any:
    user = _user(request)
    services.deal_delete(actor=user, deal=selectors.deal_get(user=user, deal_id=deal_id))
    return Status(204, None)


@router.post(
    "/deals/{deal_id}/restore",
    response={200: DealOut, **ERRORS},
    tags=["deals"],
    summary="Restore a deal from the recycle bin",
)
def deals_restore(request: HttpRequest, deal_id: int) -> Any:
    user = _user(request)
    deal = selectors.deal_get(user=user, deal_id=deal_id, include_deleted=True)
    services.deal_restore(actor=user, deal=deal)
    return deal_out(selectors.deal_get(user=user, deal_id=deal_id))


@router.post(
    "/deals/{deal_id}/move",
    response={200: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Move a deal to another stage of its pipeline",
    description="A strict pipeline refuses a skipped stage (422 naming it) and a stage whose "
    "entry fields are empty (422 `stage_requirements` listing them; send them in `fields`). "
    'Send `version` (or `If-Match: "<version>"`): a deal moved meanwhile answers 412.',
)
def deals_move(request: HttpRequest, response: HttpResponse, deal_id: int, body: MoveIn) -> Any:
    user = _user(request)
    deal = services.deal_move(
        actor=user,
        deal=selectors.deal_get(user=user, deal_id=deal_id),
        stage=body.stage_id,
        version=_version(request, body.version),
        fields=_payload(body.fields, partial=True) if body.fields else None,
    )
    _etag(response, deal.version)
    return deal_out(deal)


@router.post(
    "/deals/{deal_id}/win",
    response={200: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Close a deal as won",
    description="Records the actual amount (the planned one unless given).",
)
def deals_win(request: HttpRequest, response: HttpResponse, deal_id: int, body: WinIn) -> Any:
    user = _user(request)
    deal = services.deal_win(
        actor=user,
        deal=selectors.deal_get(user=user, deal_id=deal_id),
        amount=_payload(body, partial=True).get("amount"),
        version=_version(request, body.version),
    )
    _etag(response, deal.version)
    return deal_out(deal)


@router.post(
    "/deals/{deal_id}/lose",
    response={200: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Close a deal as lost",
    description="A reason from GET /loss-reasons is required; a comment is optional.",
)
def deals_lose(request: HttpRequest, response: HttpResponse, deal_id: int, body: LoseIn) -> Any:
    user = _user(request)
    deal = services.deal_lose(
        actor=user,
        deal=selectors.deal_get(user=user, deal_id=deal_id),
        reason_id=body.loss_reason_id,
        comment=body.comment,
        version=_version(request, body.version),
    )
    _etag(response, deal.version)
    return deal_out(deal)


@router.post(
    "/deals/{deal_id}/reopen",
    response={200: DealOut, **WRITE_ERRORS},
    tags=["deals"],
    summary="Open a won or lost deal again",
    description='Send `If-Match: "<version>"` to refuse a stale reopen with 412.',
)
def deals_reopen(request: HttpRequest, response: HttpResponse, deal_id: int) -> Any:
    user = _user(request)
    deal = services.deal_reopen(
        actor=user,
        deal=selectors.deal_get(user=user, deal_id=deal_id),
        version=_if_match(request),
    )
    _etag(response, deal.version)
    return deal_out(deal)


@router.get(
    "/deals/{deal_id}/history",
    response={200: list[StageChangeOut], **ERRORS},
    tags=["deals"],
    summary="Stage history of a deal",
    description="Every move: from and to (stage and status), when, by whom, the time spent in "
    "the previous stage and whether its time limit was exceeded.",
)
def deals_history(request: HttpRequest, deal_id: int) -> Any:
    user = _user(request)
    deal = selectors.deal_get(user=user, deal_id=deal_id, include_deleted=True)
    return [change_out(c) for c in selectors.deal_history(user=user, deal=deal)]


@router.get(
    "/pipelines/{pipeline_id}/board",
    response={200: BoardOut, **ERRORS},
    tags=["deals"],
    summary="The kanban board of a pipeline",
    description="Open deals, a column per stage: count and sum of all its deals, the first "
    "`size` cards and a cursor for GET /stages/{stage_id}/deals. A stageless pipeline has no "
    "columns: list its deals with GET /deals. " + CF_DESCRIPTION,
)
def pipelines_board(request: HttpRequest, pipeline_id: int, params: Query[BoardQuery]) -> Any:
    pipeline = selectors.pipeline_get(pipeline_id)
    columns = selectors.board(
        user=_user(request),
        pipeline=pipeline,
        filters=_deal_filters(request, params),
        size=_size(params.size or settings.BOARD_COLUMN_SIZE),
    )
    deals = _deals_out([d for c in columns for d in c.page.items])
    out = []
    start = 0
    for c in columns:
        n = len(c.page.items)
        out.append(
            {
                "stage": stage_out(c.stage),
                "count": c.count,
                "total": _money(c.total),
                "deals": deals[start : start + n],
                "next_cursor": c.page.next_cursor,
            }
        )
        start += n
    return {"pipeline": pipeline_out(pipeline, [c.stage for c in columns]), "columns": out}


@router.get(
    "/stages/{stage_id}/deals",
    response={200: DealPage, **ERRORS},
    tags=["deals"],
    summary="The next cards of one board column",
    description="Open deals in the stage, with the board's filters. " + CF_DESCRIPTION,
)
def stages_deals(request: HttpRequest, stage_id: int, params: Query[ColumnQuery]) -> Any:
    page = selectors.board_column(
        user=_user(request),
        stage=_stage_get(stage_id),
        filters=_deal_filters(request, params),
        cursor=params.cursor,
        size=_size(params.size or settings.BOARD_COLUMN_SIZE),
    )
    return {"items": _deals_out(page.items), "next_cursor": page.next_cursor}


# --- reports ----------------------------------------------------------------------------------


def _groups(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [
        {
            "id": r.get(key),
            "name": r.get("name") or "",
            "open": r["open"],
            "won": r["won"],
            "lost": r["lost"],
            "won_amount": _money(r["won_amount"]),
        }
        for r in rows
    ]


@router.get(
    "/funnel",
    response={200: FunnelOut, **ERRORS},
    tags=["reports"],
    summary="Funnel of a pipeline for a period",
    description="Deals entering each stage, conversion, amounts, losses by stage and reason, "
    "results by manager, team and source, time in stage against its limit — for the deals "
    "you may see. The period defaults to the last 90 days.",
)
def funnel(
    request: HttpRequest,
    pipeline_id: int,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> Any:
    pipeline = selectors.pipeline_get(pipeline_id)
    end = date_to or timezone.localdate()
    start = date_from or end - dt.timedelta(days=89)
    report = selectors.funnel(user=_user(request), pipeline=pipeline, date_from=start, date_to=end)
    return {
        "pipeline": {"id": pipeline.pk, "name": pipeline.name},
        "date_from": report.date_from,
        "date_to": report.date_to,
        "stages": [
            {
                "stage": {"id": r.stage.pk, "name": r.stage.name},
                "entered": r.entered,
                "amount": _money(r.amount),
                "conversion": r.conversion,
                "lost": r.lost,
                "lost_amount": _money(r.lost_amount),
                "avg_hours": r.avg_hours,
                "limit_hours": r.limit_hours,
                "over_limit": r.over_limit,
            }
            for r in report.stages
        ],
        "created": report.created,
        "won": report.won,
        "won_amount": _money(report.won_amount),
        "lost": report.lost,
        "lost_amount": _money(report.lost_amount),
        "overall": report.overall,
        "by_reason": [
            {"reason": r["reason"], "count": r["count"], "amount": _money(r["amount"])}
            for r in report.by_reason
        ],
        "by_manager": _groups(report.by_manager, "responsible"),
        "by_team": _groups(report.by_team, "team"),
        "by_source": _groups(report.by_source, "source"),
    }
