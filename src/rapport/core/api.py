"""API for the shared kernel: custom field definitions, global search, record history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from rapport.core import services
from rapport.core.errors import FieldErrors
from rapport.core.models import CustomFieldDefinition
from rapport.core.search import search_query
from rapport.core.selectors import audit_for_object, custom_field_list

router = Router(tags=["kernel"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


class CustomFieldIn(Schema):
    model_config = ConfigDict(extra="forbid")
    object_type: CustomFieldDefinition.ObjectType
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")
    label: str = Field(min_length=1, max_length=100)
    type: CustomFieldDefinition.Type
    required: bool = False
    choices: list[str] = Field(default_factory=list)
    order: int = Field(100, ge=0, le=100000)
    help_text: str = Field("", max_length=200)


class CustomFieldPatch(Schema):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, min_length=1, max_length=100)
    required: bool | None = None
    choices: list[str] | None = None
    order: int | None = Field(None, ge=0, le=100000)
    help_text: str | None = Field(None, max_length=200)


class CustomFieldOut(Schema):
    id: int
    object_type: str
    name: str
    label: str
    type: str
    required: bool
    choices: list[Any]
    order: int
    help_text: str


class SearchHit(Schema):
    object_type: str
    id: int
    title: str
    subtitle: str


class AuditOut(Schema):
    id: int
    at: dt.datetime
    actor_id: int | None
    action: str
    changes: dict[str, Any]


@router.get(
    "/custom-fields",
    response={200: list[CustomFieldOut], **ERRORS},
    summary="List custom field definitions",
)
def custom_fields_list(request: HttpRequest, object_type: str | None = None) -> Any:
    return list(custom_field_list(object_type=object_type))


@router.post(
    "/custom-fields",
    response={201: CustomFieldOut, **ERRORS},
    summary="Define a custom field (administrators)",
)
def custom_fields_create(request: HttpRequest, body: CustomFieldIn) -> Any:
    try:
        defn = services.custom_field_create(actor=request.user, **body.model_dump())
    except IntegrityError as exc:
        raise FieldErrors.single("name", _("A field with this name already exists.")) from exc
    return Status(201, defn)


@router.patch(
    "/custom-fields/{field_id}",
    response={200: CustomFieldOut, **ERRORS},
    summary="Change a custom field definition (administrators)",
)
def custom_fields_update(request: HttpRequest, field_id: int, body: CustomFieldPatch) -> Any:
    defn = custom_field_list(object_type=None).filter(pk=field_id).first()
    if defn is None:
        raise Http404
    return services.custom_field_update(
        actor=request.user, definition=defn, **body.model_dump(exclude_unset=True)
    )


@router.delete(
    "/custom-fields/{field_id}",
    response={204: None, **ERRORS},
    summary="Remove a custom field definition (administrators)",
)
def custom_fields_delete(request: HttpRequest, field_id: int) -> Any:
    defn = custom_field_list(object_type=None).filter(pk=field_id).first()
    if defn is None:
        raise Http404
    services.custom_field_delete(actor=request.user, definition=defn)
    return Status(204, None)


@router.get(
    "/search",
    response={200: list[SearchHit], **ERRORS},
    summary="Find companies and people by name, phone, email or tax id",
)
def search(
    request: HttpRequest,
    q: str = Query(..., max_length=200),  # type: ignore[type-arg]
    limit: int = 20,
) -> Any:
    limit = max(1, min(limit, 100))
    return [
        {"object_type": d.object_type, "id": d.object_id, "title": d.title, "subtitle": d.subtitle}
        for d in search_query(user=request.user, q=q, limit=limit)
    ]


@router.get(
    "/history/{object_type}/{object_id}",
    response={200: list[AuditOut], **ERRORS},
    summary="Audit history of a company or person",
)
def history(request: HttpRequest, object_type: str, object_id: int) -> Any:
    return list(
        audit_for_object(user=request.user, object_type=object_type, object_id=object_id)[:500]
    )
