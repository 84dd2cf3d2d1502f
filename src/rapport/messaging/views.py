"""Administrator pages: channel settings (with a test email), outgoing messages, templates."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.core.errors import FieldErrors
from rapport.core.views import admin_required
from rapport.messaging import selectors, services
from rapport.messaging.delivery import messages_deliver
from rapport.messaging.models import (
    Kind,
    MessageTemplate,
    SmsMethod,
    SmtpSecurity,
    Status,
    TemplateChannel,
)
from rapport.messaging.sms import PROVIDERS
from rapport.messaging.templating import SAMPLE_CONTEXT

PAGE = 100


@login_required
def channel_settings(request: HttpRequest) -> HttpResponse:
    """SMTP, SMS provider, allowlist of internal addresses, retries."""
    admin_required(request)
    cfg = selectors.channel_settings_get()
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {name: getattr(cfg, name) for name in services.SETTINGS_FIELDS}
    if request.method == "POST":
        posted = {
            name: request.POST.get(name, "")
            for name in services.SETTINGS_FIELDS
            if name not in services.SECRET_FIELDS
        }
        for secret in services.SECRET_FIELDS:  # blank = keep; the box clears it
            if request.POST.get(secret):
                posted[secret] = request.POST[secret]
            elif request.POST.get(f"clear_{secret}") == "on":
                posted[secret] = ""
        try:
            services.channel_settings_update(actor=request.user, data=posted)
            messages.success(request, _("Channel settings saved."))
            return redirect("messaging-settings")
        except FieldErrors as exc:
            errors = exc.errors
            data.update(posted)
    return render(
        request,
        "messaging/settings.html",
        {
            "data": data,
            "errors": errors,
            "has_password": bool(cfg.smtp_password),
            "has_sms_auth": bool(cfg.sms_auth_value),
            "securities": SmtpSecurity.choices,
            "methods": SmsMethod.choices,
            "providers": [(name, label) for name, (label, _send) in PROVIDERS.items()],
            "test_to": getattr(request.user, "email", ""),
            "sms_body_label": _("Request body template (%(names)s)")
            % {"names": "{{ to }}, {{ text }}, {{ key }}, {{ sender }}"},
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def test_email(request: HttpRequest) -> HttpResponse:
    """Send a test email now through the saved settings and say what happened."""
    admin_required(request)
    to = request.POST.get("to", "")
    try:
        message = services.message_enqueue(
            kind=Kind.EMAIL,
            key=f"test:{uuid.uuid4().hex}",
            to=to,
            subject=_("Rapport test email"),
            body=_("This is a test email from Rapport's channel settings."),
            source=f"test:{request.user.pk}",
        )
    except FieldErrors as exc:
        messages.error(request, " ".join(m for v in exc.errors.values() for m in v))
        return redirect("messaging-settings")
    messages_deliver(limit=1, time_budget=30, only_ids=[message.pk])
    message.refresh_from_db()
    if message.status == Status.SENT:
        messages.success(
            request,
            _("Test email sent to %(to)s (%(response)s).")
            % {"to": message.target, "response": message.provider_response},
        )
    else:
        messages.error(
            request,
            _("The test email was not sent: %(error)s") % {"error": message.last_error},
        )
    return redirect("messaging-settings")


@login_required
def message_list(request: HttpRequest) -> HttpResponse:
    """Outgoing messages, newest first; failed ones with their error and a retry button."""
    admin_required(request)
    status = request.GET.get("status", "")
    kind = request.GET.get("kind", "")
    before = request.GET.get("before", "")
    qs = selectors.message_list(user=request.user, status=status, kind=kind)
    if before.isdigit():
        qs = qs.filter(id__lt=int(before))
    rows = list(qs[: PAGE + 1])
    context: dict[str, Any] = {
        "rows": rows[:PAGE],
        "more": rows[PAGE - 1].pk if len(rows) > PAGE else None,
        "status": status,
        "kind": kind,
        "kinds": Kind.choices,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "messaging/_message_rows.html", context)
    counts = selectors.message_counts()
    context["status_tabs"] = [(v, label, counts.get(v, 0)) for v, label in Status.choices]
    return render(request, "messaging/messages.html", context)


@login_required
@require_POST
def message_retry(request: HttpRequest, message_id: int) -> HttpResponse:
    admin_required(request)
    message = selectors.message_get(user=request.user, message_id=message_id)
    try:
        services.message_retry(actor=request.user, message=message)
        messages.success(request, _("Message #%(id)s will be sent again now.") % {"id": message.pk})
    except FieldErrors as exc:
        messages.error(request, " ".join(m for v in exc.errors.values() for m in v))
    return redirect(f"{_list_url()}?status={request.POST.get('status', '')}")


def _list_url() -> str:
    from django.urls import reverse

    return reverse("message-list")


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    admin_required(request)
    return render(
        request,
        "messaging/templates.html",
        {"templates": selectors.template_list(user=request.user)},
    )


def _template_form(request: HttpRequest, template: MessageTemplate | None) -> HttpResponse:
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {
        name: getattr(template, name) if template else "" for name in services.TEMPLATE_FIELDS
    }
    if not data["channel"]:
        data["channel"] = TemplateChannel.EMAIL
    if request.method == "POST":
        data = {name: request.POST.get(name, "") for name in services.TEMPLATE_FIELDS}
        try:
            if template is None:
                template = services.template_create(actor=request.user, data=data)
            else:
                services.template_update(actor=request.user, template=template, data=data)
            messages.success(request, _("Template “%(name)s” saved.") % {"name": template.name})
            return redirect("message-template-list")
        except FieldErrors as exc:
            errors = exc.errors
    return render(
        request,
        "messaging/template_edit.html",
        {
            "template": template,
            "data": data,
            "errors": errors,
            "channels": TemplateChannel.choices,
            "languages": settings.LANGUAGES,
            "help_text": _(
                "Use %(names)s and the record's fields; conditions (%(if)s) and filters work, "
                "Python internals do not."
            )
            % {
                "names": "{{ client.name }}, {{ client.first_name }}, {{ deal.title }}, "
                "{{ deal.amount }}, {{ manager.name }}, {{ today }}",
                "if": "{% if … %}",
            },
        },
        status=422 if errors else 200,
    )


@login_required
def template_create(request: HttpRequest) -> HttpResponse:
    admin_required(request)
    return _template_form(request, None)


@login_required
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    admin_required(request)
    return _template_form(
        request, selectors.template_get(user=request.user, template_id=template_id)
    )


@login_required
@require_POST
def template_preview(request: HttpRequest) -> HttpResponse:
    """The form's subject and text rendered with the sample data (an htmx fragment)."""
    admin_required(request)
    subject = request.POST.get("subject", "")
    if request.POST.get("channel") == TemplateChannel.SMS:
        subject = ""
    error = ""
    rendered = ("", "")
    try:
        rendered = services.template_render_text(
            subject=subject, body=request.POST.get("body", ""), context=SAMPLE_CONTEXT
        )
    except FieldErrors as exc:
        error = " ".join(f"{k}: {m}" for k, v in exc.errors.items() for m in v)
    return render(
        request,
        "messaging/_preview.html",
        {"subject": rendered[0], "body": rendered[1], "error": error},
    )


@login_required
@require_POST
def template_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    admin_required(request)
    template = selectors.template_get(user=request.user, template_id=template_id)
    services.template_delete(actor=request.user, template=template)
    messages.success(request, _("Template “%(name)s” deleted.") % {"name": template.name})
    return redirect("message-template-list")
