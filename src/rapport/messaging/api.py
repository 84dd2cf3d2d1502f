"""Outgoing messages and message templates API (administrators only).

Messages are written by automations through ``services.message_enqueue``; here an admin lists
them, sends a failed one again or cancels it. Templates: create, read, update, delete, preview.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from rapport.core.pagination import keyset_page
from rapport.messaging import selectors, services
from rapport.messaging.models import MessageTemplate, OutgoingMessage
from rapport.messaging.templating import SAMPLE_CONTEXT

router = Router(tags=["messaging"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


class MessageOut(Schema):
    id: int
    kind: str
    key: str
    status: str
    recipients: list[str]
    subject: str
    url: str
    source: str
    object_type: str
    object_id: int | None
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str
    sent_at: dt.datetime | None
    provider_response: str
    message_id: str
    created_at: dt.datetime


class MessagePage(Schema):
    items: list[MessageOut]
    next_cursor: str | None


class MessageQuery(BaseModel):
    status: Literal["", "pending", "sending", "sent", "failed", "cancelled"] = ""
    kind: Literal["", "email", "sms", "webhook"] = ""
    source: str = Field("", max_length=200, description='Source prefix, e.g. "rule:12"')
    cursor: str | None = None
    size: int = Field(50, ge=1, le=500)


def _message(m: OutgoingMessage) -> dict[str, Any]:
    return {f: getattr(m, f) for f in MessageOut.model_fields}


@router.get("/messages", response={200: MessagePage, **ERRORS}, summary="Outgoing messages")
def messages_list(request: HttpRequest, params: Query[MessageQuery]) -> Any:
    qs = selectors.message_list(
        user=request.user, status=params.status, kind=params.kind, source=params.source
    )
    page = keyset_page(qs, sort="-id", cursor=params.cursor, size=params.size)
    return {"items": [_message(m) for m in page.items], "next_cursor": page.next_cursor}


@router.get("/messages/{message_id}", response={200: MessageOut, **ERRORS}, summary="One message")
def messages_get(request: HttpRequest, message_id: int) -> Any:
    return _message(selectors.message_get(user=request.user, message_id=message_id))


@router.post(
    "/messages/{message_id}/retry",
    response={200: MessageOut, **ERRORS},
    summary="Send a failed message again now",
)
def messages_retry(request: HttpRequest, message_id: int) -> Any:
    message = selectors.message_get(user=request.user, message_id=message_id)
    return _message(services.message_retry(actor=request.user, message=message))


@router.post(
    "/messages/{message_id}/cancel",
    response={200: MessageOut, **ERRORS},
    summary="Stop a waiting or failed message",
)
def messages_cancel(request: HttpRequest, message_id: int) -> Any:
    message = selectors.message_get(user=request.user, message_id=message_id)
    return _message(services.message_cancel(actor=request.user, message=message))


class TemplateOut(Schema):
    id: int
    name: str
    channel: str
    subject: str
    body: str
    language: str
    created_at: dt.datetime
    updated_at: dt.datetime


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., max_length=200)
    channel: Literal["email", "sms"] = "email"
    subject: str = Field("", max_length=500)
    body: str = Field(..., max_length=100_000)
    language: str = Field("", max_length=10)


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    channel: Literal["email", "sms"] | None = None
    subject: str | None = Field(None, max_length=500)
    body: str | None = Field(None, max_length=100_000)
    language: str | None = Field(None, max_length=10)


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    context: dict[str, Any] | None = Field(
        None, description="Values for the template; the sample data when left out."
    )


class PreviewOut(Schema):
    subject: str
    body: str


def _template(t: MessageTemplate) -> dict[str, Any]:
    return {f: getattr(t, f) for f in TemplateOut.model_fields}


@router.get(
    "/message-templates", response={200: list[TemplateOut], **ERRORS}, summary="Message templates"
)
def templates_list(request: HttpRequest, channel: Literal["", "email", "sms"] = "") -> Any:
    return [_template(t) for t in selectors.template_list(user=request.user, channel=channel)[:500]]


@router.post(
    "/message-templates", response={201: TemplateOut, **ERRORS}, summary="Create a template"
)
def templates_create(request: HttpRequest, body: TemplateIn) -> Any:
    template = services.template_create(actor=request.user, data=body.model_dump())
    return Status(201, _template(template))


@router.get(
    "/message-templates/{template_id}",
    response={200: TemplateOut, **ERRORS},
    summary="One template",
)
def templates_get(request: HttpRequest, template_id: int) -> Any:
    return _template(selectors.template_get(user=request.user, template_id=template_id))


@router.patch(
    "/message-templates/{template_id}",
    response={200: TemplateOut, **ERRORS},
    summary="Change a template",
)
def templates_update(request: HttpRequest, template_id: int, body: TemplatePatch) -> Any:
    template = selectors.template_get(user=request.user, template_id=template_id)
    data = {k: v for k, v in body.model_dump().items() if v is not None}
    return _template(services.template_update(actor=request.user, template=template, data=data))


@router.delete(
    "/message-templates/{template_id}", response={204: None, **ERRORS}, summary="Delete a template"
)
def templates_delete(request: HttpRequest, template_id: int) -> Any:
    template = selectors.template_get(user=request.user, template_id=template_id)
    services.template_delete(actor=request.user, template=template)
    return Status(204, None)


@router.post(
    "/message-templates/{template_id}/preview",
    response={200: PreviewOut, **ERRORS},
    summary="Render a template (with the sample data unless a context is given)",
)
def templates_preview(request: HttpRequest, template_id: int, body: PreviewIn) -> Any:
    template = selectors.template_get(user=request.user, template_id=template_id)
    subject, text = services.template_render(template, body.context or SAMPLE_CONTEXT)
    return {"subject": subject, "body": text}
