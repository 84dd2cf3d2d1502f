"""Automation rules API: the catalogue (triggers, operators, actions, fields), rules, the
test (dry run) and the execution log. Administrators only; the same services as the pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import Http404, HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from rapport.automations import selectors, services
from rapport.automations.actions import ACTIONS
from rapport.automations.conditions import OPERATORS
from rapport.automations.describe import rule_sentence
from rapport.automations.models import Rule
from rapport.automations.schema import OBJECT_MODELS, fields_for
from rapport.automations.triggers import TRIGGERS

router = Router(tags=["automations"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {
    400: ErrorOut,
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    412: ErrorOut,
    422: ErrorOut,
}


def _admin(request: HttpRequest) -> Any:
    user = request.user
    if not (getattr(user, "is_superuser", False) or getattr(user, "is_rapport_admin", False)):
        raise Http404
    return user


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    description: str | None = None
    trigger: str | None = Field(None, description="A trigger code from /automation/catalog.")
    trigger_config: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = Field(
        None, description='{"match": "all"|"any", "items": [{"field", "op", "value"}]}'
    )
    actions: list[dict[str, Any]] | None = Field(
        None, description='[{"type": action code, "params": {...}}]'
    )
    is_active: bool | None = None
    once_per_record: bool | None = None
    order: int | None = Field(None, ge=0)
    version: int | None = Field(None, description="The version you read (412 when stale).")


class RuleOut(Schema):
    id: int
    name: str
    description: str
    trigger: str
    trigger_config: dict[str, Any]
    object_type: str
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    is_active: bool
    inactive_reason: str
    once_per_record: bool
    order: int
    version: int
    sentence: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


def _out(rule: Rule) -> dict[str, Any]:
    data = {f: getattr(rule, f) for f in RuleOut.model_fields if f not in ("sentence",)}
    data["sentence"] = rule_sentence(rule)
    return data


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object_id: int | None = Field(None, description="The record to test against.")


class TestOut(Schema):
    passed: bool
    record: str = ""
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]


class ActionRunOut(Schema):
    index: int
    action: str
    key: str
    outcome: str
    detail: str
    error: str


class RunOut(Schema):
    id: int
    rule_id: int | None = Field(
        description="Empty on an event's grouped row of the rules whose conditions it did "
        "not meet (see rule_ids); with the rule filter such a row reads as that rule's run."
    )
    rule_ids: list[int] = Field(description="The rules this line concerns.")
    occurrence: str
    event_id: int | None
    event_name: str
    object_type: str
    object_id: int | None
    depth: int
    matched: bool
    conditions_result: list[dict[str, Any]] = Field(
        description="Each condition's result; on a grouped row, per rule: "
        '{"rule": id, "conditions": [...]}.'
    )
    outcome: str
    message: str
    at: dt.datetime
    actions: list[ActionRunOut]


class RunFilters(Schema):
    rule: int | None = None
    object_type: str = ""
    object_id: int | None = None
    outcome: str = ""
    before_id: int | None = Field(None, description="Paging: runs older than this id.")
    limit: int = Field(50, ge=1, le=500)


@router.get(
    "/automation/catalog", response={200: dict[str, Any], **ERRORS}, summary="What rules can use"
)
def catalog(request: HttpRequest) -> Any:
    _admin(request)
    return {
        "triggers": [
            {
                "code": t.code,
                "label": str(t.label),
                "object_type": t.object_type,
                "kind": t.kind,
                "has_changes": t.has_changes,
            }
            for t in TRIGGERS.values()
        ],
        "operators": [{"code": k, "label": str(v)} for k, v in OPERATORS.items()],
        "actions": [
            {
                "code": a.code,
                "label": str(a.label),
                "object_types": list(a.object_types) if a.object_types else None,
                "external": a.external,
                "params": [{"name": p.name, "label": str(p.label), "kind": p.kind} for p in a.form],
            }
            for a in ACTIONS.values()
        ],
        "fields": {
            ot: [
                {"path": s.path, "label": str(s.label), "type": s.type, "choices": s.choices}
                for s in fields_for(ot).values()
            ]
            for ot in OBJECT_MODELS
        },
    }


@router.get("/automation/rules", response={200: list[RuleOut], **ERRORS}, summary="Rules in order")
def rules_list(request: HttpRequest, trigger: str = "", active: str = "") -> Any:
    user = _admin(request)
    return [_out(r) for r in selectors.rule_list(user=user, trigger=trigger, active=active)]


@router.post("/automation/rules", response={201: RuleOut, **ERRORS}, summary="Create a rule")
def rules_create(request: HttpRequest, body: RuleIn) -> Any:
    user = _admin(request)
    data = body.model_dump(exclude_unset=True, exclude={"version"})
    return Status(201, _out(services.rule_save(actor=user, data=data)))


@router.get("/automation/rules/{rule_id}", response={200: RuleOut, **ERRORS}, summary="One rule")
def rules_get(request: HttpRequest, rule_id: int) -> Any:
    user = _admin(request)
    return _out(selectors.rule_get(user=user, rule_id=rule_id))


@router.patch(
    "/automation/rules/{rule_id}", response={200: RuleOut, **ERRORS}, summary="Change a rule"
)
def rules_update(request: HttpRequest, rule_id: int, body: RuleIn) -> Any:
    user = _admin(request)
    rule = selectors.rule_get(user=user, rule_id=rule_id)
    data = body.model_dump(exclude_unset=True, exclude={"version"})
    if set(data) == {"is_active"}:
        return _out(services.rule_set_active(actor=user, rule=rule, active=bool(data["is_active"])))
    return _out(services.rule_save(actor=user, data=data, rule=rule, version=body.version))


@router.delete(
    "/automation/rules/{rule_id}", response={204: None, **ERRORS}, summary="Delete a rule"
)
def rules_delete(request: HttpRequest, rule_id: int) -> Any:
    user = _admin(request)
    services.rule_delete(actor=user, rule=selectors.rule_get(user=user, rule_id=rule_id))
    return Status(204, None)


@router.post(
    "/automation/rules/{rule_id}/test",
    response={200: TestOut, **ERRORS},
    summary="What the rule would do for a record (nothing is done)",
)
def rules_test(request: HttpRequest, rule_id: int, body: TestIn) -> Any:
    user = _admin(request)
    rule = selectors.rule_get(user=user, rule_id=rule_id)
    return services.rule_test(actor=user, rule=rule, object_id=body.object_id)


@router.get("/automation/runs", response={200: list[RunOut], **ERRORS}, summary="Execution log")
def runs_list(request: HttpRequest, filters: Query[RunFilters]) -> Any:
    user = _admin(request)
    qs = selectors.run_list(
        user=user,
        rule_id=filters.rule,
        object_type=filters.object_type,
        object_id=filters.object_id,
        outcome=filters.outcome,
    )
    if filters.before_id:
        qs = qs.filter(id__lt=filters.before_id)
    out = []
    for entry in selectors.run_entries(list(qs[: filters.limit]), rule_id=filters.rule):
        r, parts = entry["run"], entry["parts"]
        row = {f: getattr(r, f) for f in RunOut.model_fields if f not in _RUN_DERIVED}
        row["rule_ids"] = [p["rule_id"] for p in parts]
        if r.rule_id is None:  # grouped: each rule with its conditions
            row["conditions_result"] = [
                {"rule": p["rule_id"], "conditions": p["conditions"]} for p in parts
            ]
        row["actions"] = [
            {f: getattr(a, f) for f in ActionRunOut.model_fields} for a in entry["actions"]
        ]
        out.append(row)
    return out


_RUN_DERIVED = {"actions", "rule_ids"}
