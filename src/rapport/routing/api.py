"""Routing table and absences API: parse -> call a service or selector -> schema out.

The routing table is the head of sales' (administrators, or a role that may assign every
lead); absences follow the user's scope: their own, their team's, or all. Another team's
absence answers 404.
"""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Query, Router, Status

from rapport.core.errors import PermissionDenied
from rapport.parties.api import _etag, _if_match
from rapport.parties.schemas import ErrorOut
from rapport.routing import selectors, services
from rapport.routing.models import Absence, Handover, RoutingRule
from rapport.routing.schemas import (
    AbsenceDetailOut,
    AbsenceOut,
    AbsenceWrite,
    RuleOrderIn,
    RuleOut,
    RuleWrite,
    TakeBackIn,
    TakeBackOut,
)

router = Router()
ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 412: ErrorOut}


def _user(request: HttpRequest) -> Any:
    return request.user


def rule_out(rule: RoutingRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "order": rule.order,
        "is_active": rule.is_active,
        "countries": list(rule.countries or []),
        "phone_prefixes": list(rule.phone_prefixes or []),
        "places": list(rule.places or []),
        "channels": list(rule.channels or []),
        "sources": list(rule.sources or []),
        "amount_min": None if rule.amount_min is None else str(rule.amount_min),
        "amount_max": None if rule.amount_max is None else str(rule.amount_max),
        "products": list(rule.products or []),
        "target_user_id": rule.target_user_id,
        "target_team_id": rule.target_team_id,
        "method": rule.method,
        "sentence": services.rule_sentence(rule),
        "version": rule.version,
    }


def _rule_data(body: RuleWrite) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    if data.get("channels") is not None:
        data["channels"] = [str(c) for c in data["channels"]]
    return data


@router.get(
    "/routing-rules",
    response={200: list[RuleOut], **ERRORS},
    tags=["routing"],
    summary="The routing table (head of sales)",
)
def routing_rules_list(request: HttpRequest) -> Any:
    user = _user(request)
    if not selectors.is_head_of_sales(user):
        raise PermissionDenied(_("Only the head of sales may see the routing table."))
    return [rule_out(r) for r in selectors.routing_rule_list(user=user)]


@router.post(
    "/routing-rules",
    response={201: RuleOut, **ERRORS},
    tags=["routing"],
    summary="Add a routing rule (at the end of the table unless order is given)",
)
def routing_rules_create(request: HttpRequest, body: RuleWrite) -> Any:
    rule = services.routing_rule_save(actor=_user(request), data=_rule_data(body))
    return Status(201, rule_out(rule))


@router.put(
    "/routing-rules/order",
    response={200: list[RuleOut], **ERRORS},
    tags=["routing"],
    summary="Reorder the routing table",
)
def routing_rules_reorder(request: HttpRequest, body: RuleOrderIn) -> Any:
    rules = services.routing_rules_reorder(actor=_user(request), rule_ids=body.rule_ids)
    return [rule_out(r) for r in rules]


@router.get(
    "/routing-rules/{rule_id}",
    response={200: RuleOut, **ERRORS},
    tags=["routing"],
    summary="One routing rule",
)
def routing_rules_get(request: HttpRequest, response: HttpResponse, rule_id: int) -> Any:
    rule = selectors.routing_rule_get(user=_user(request), rule_id=rule_id)
    _etag(response, rule.version)
    return rule_out(rule)


@router.patch(
    "/routing-rules/{rule_id}",
    response={200: RuleOut, **WRITE_ERRORS},
    tags=["routing"],
    summary="Change a routing rule",
    description='Send `If-Match: "<version>"` to refuse a stale write with 412.',
)
def routing_rules_update(
    request: HttpRequest, response: HttpResponse, rule_id: int, body: RuleWrite
) -> Any:
    user = _user(request)
    rule = selectors.routing_rule_get(user=user, rule_id=rule_id)
    rule = services.routing_rule_save(
        actor=user, rule=rule, data=_rule_data(body), version=_if_match(request)
    )
    _etag(response, rule.version)
    return rule_out(rule)


@router.delete(
    "/routing-rules/{rule_id}",
    response={204: None, **ERRORS},
    tags=["routing"],
    summary="Remove a routing rule",
)
def routing_rules_delete(request: HttpRequest, rule_id: int) -> Any:
    user = _user(request)
    services.routing_rule_delete(
        actor=user, rule=selectors.routing_rule_get(user=user, rule_id=rule_id)
    )
    return Status(204, None)


# --- absences ---------------------------------------------------------------------------------


def absence_out(a: Absence) -> dict[str, Any]:
    return {
        "id": a.pk,
        "user_id": a.user_id,
        "user_name": str(a.user),
        "starts_at": a.starts_at,
        "ends_at": a.ends_at,
        "deputy_id": a.deputy_id,
        "kind": a.kind,
        "note": a.note,
        "status": a.status,
        "hand_over_tasks": a.hand_over_tasks,
        "hand_over_leads": a.hand_over_leads,
        "hand_over_deals": a.hand_over_deals,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "version": a.version,
    }


def handover_out(h: Handover, why: str) -> dict[str, Any]:
    return {
        "id": h.pk,
        "object_type": h.object_type,
        "object_id": h.object_id,
        "object_repr": h.object_repr,
        "from_user_id": h.from_user_id,
        "to_user_id": h.to_user_id,
        "at": h.at,
        "returned_at": h.returned_at,
        "can_take_back": not why,
        "why_not": why,
    }


def absence_detail_out(a: Absence) -> dict[str, Any]:
    return {
        **absence_out(a),
        "handovers": [handover_out(h, why) for h, why in services.handovers_with_state(a)],
        "not_handed_over": list(a.not_handed_over or []),
    }


@router.get(
    "/absences",
    response={200: list[AbsenceOut], **ERRORS},
    tags=["absences"],
    summary="Absences you may see (yours, your team's, or all; and those you stand in for)",
)
def absences_list(
    request: HttpRequest,
    status: Query[Literal["", "scheduled", "active", "ended", "cancelled"]] = "",
    who: Query[Literal["", "mine"]] = "",
) -> Any:
    qs = selectors.absence_list(user=_user(request), status=status, who=who)
    return [absence_out(a) for a in qs[:1000]]


@router.post(
    "/absences",
    response={201: AbsenceDetailOut, **ERRORS},
    tags=["absences"],
    summary="Record an absence (an unplanned one may start now)",
)
def absences_create(request: HttpRequest, body: AbsenceWrite) -> Any:
    absence = services.absence_create(
        actor=_user(request), data=body.model_dump(exclude_unset=True)
    )
    return Status(201, absence_detail_out(absence))


@router.get(
    "/absences/{absence_id}",
    response={200: AbsenceDetailOut, **ERRORS},
    tags=["absences"],
    summary="One absence with what was handed over",
)
def absences_get(request: HttpRequest, response: HttpResponse, absence_id: int) -> Any:
    absence = selectors.absence_get(user=_user(request), absence_id=absence_id)
    _etag(response, absence.version)
    return absence_detail_out(absence)


@router.patch(
    "/absences/{absence_id}",
    response={200: AbsenceDetailOut, **WRITE_ERRORS},
    tags=["absences"],
    summary="Change an absence (once started: only its end and note)",
    description='Send `If-Match: "<version>"` to refuse a stale write with 412.',
)
def absences_update(
    request: HttpRequest, response: HttpResponse, absence_id: int, body: AbsenceWrite
) -> Any:
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    absence = services.absence_update(
        actor=user,
        absence=absence,
        data=body.model_dump(exclude_unset=True),
        version=_if_match(request),
    )
    _etag(response, absence.version)
    return absence_detail_out(absence)


@router.delete(
    "/absences/{absence_id}",
    response={200: AbsenceDetailOut, **ERRORS},
    tags=["absences"],
    summary="Cancel an absence (one under way ends now)",
)
def absences_cancel(request: HttpRequest, absence_id: int) -> Any:
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    return absence_detail_out(services.absence_cancel(actor=user, absence=absence))


@router.post(
    "/absences/{absence_id}/take-back",
    response={200: TakeBackOut, **ERRORS},
    tags=["absences"],
    summary="Take back what was handed over (all, or the items given)",
    description="Only items still open and still with whom they were handed to move; the "
    "others come back in `kept` with why.",
)
def absences_take_back(request: HttpRequest, absence_id: int, body: TakeBackIn) -> Any:
    user = _user(request)
    absence = selectors.absence_get(user=user, absence_id=absence_id)
    result = services.absence_take_back(actor=user, absence=absence, handover_ids=body.handover_ids)
    return {
        "taken": [handover_out(h, "") for h in result.taken],
        "kept": [handover_out(h, why) for h, why in result.kept],
    }
