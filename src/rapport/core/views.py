"""Shared pages: home, global search, recycle bin, custom fields admin."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.core import services
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.models import CustomFieldDefinition
from rapport.core.scopes import can
from rapport.core.search import search_query
from rapport.core.selectors import custom_field_list


def admin_required(request: HttpRequest) -> None:
    if not getattr(request.user, "is_rapport_admin", False):
        raise Http404


def hit_url(object_type: str, object_id: int) -> str:
    return reverse(f"{object_type}-detail", args=[object_id])


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The work desk: the manager's day in one screen (see activities.views.desk_context)."""
    from rapport.activities.views import desk_context

    user: Any = request.user
    context = desk_context(request)
    if getattr(request, "htmx", False) and request.GET.get("client"):
        return render(request, "activities/_desk_client.html", context)
    context.update(_directory_counts(user))
    return render(request, "core/home.html", context)


DESK_COUNTS_SECONDS = 60


def _directory_counts(user: Any) -> dict[str, int]:
    """How many companies and people the user sees: a count over the whole scoped directory
    (a million rows is a full index scan), so kept a minute per user."""
    from django.core.cache import cache

    from rapport.parties.selectors import company_list, person_list

    key = f"rapport:desk-counts:{user.pk}"
    counts = cache.get(key)
    if counts is None:
        counts = {
            "company_count": (
                company_list(user=user).count() if can(user, "company", "view") else 0
            ),
            "person_count": person_list(user=user).count() if can(user, "person", "view") else 0,
        }
        cache.set(key, counts, DESK_COUNTS_SECONDS)
    return dict(counts)


@login_required
def search(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "").strip()[:200]
    hits = search_query(user=request.user, q=q, limit=50 if not request.htmx else 8) if q else []  # type: ignore[attr-defined]
    rows = [{"doc": h, "url": hit_url(h.object_type, h.object_id)} for h in hits]
    template = "core/_search_results.html" if request.htmx else "core/search.html"  # type: ignore[attr-defined]
    return render(request, template, {"q": q, "rows": rows})


@login_required
def recycle_bin(request: HttpRequest) -> HttpResponse:
    from rapport.parties.selectors import recycle_bin as bin_selector

    admin_required(request)
    companies, people = bin_selector(user=request.user)  # type: ignore[arg-type]
    return render(
        request, "core/recycle_bin.html", {"companies": companies[:200], "people": people[:200]}
    )


@login_required
def custom_fields(request: HttpRequest) -> HttpResponse:
    admin_required(request)
    errors: dict[str, list[str]] = {}
    data: dict[str, Any] = {}
    if request.method == "POST":
        data = {
            "object_type": request.POST.get("object_type", ""),
            "name": request.POST.get("name", "").strip(),
            "label": request.POST.get("label", "").strip(),
            "type": request.POST.get("type", ""),
            "required": request.POST.get("required") == "on",
            "choices": [c for c in request.POST.get("choices", "").splitlines() if c.strip()],
            "order": int(request.POST.get("order") or 100)
            if (request.POST.get("order") or "100").isdigit()
            else 100,
            "help_text": request.POST.get("help_text", ""),
        }
        if data["object_type"] not in CustomFieldDefinition.ObjectType.values:
            errors["object_type"] = [_("Choose what the field applies to.")]
        if data["type"] not in CustomFieldDefinition.Type.values:
            errors["type"] = [_("Choose a field type.")]
        import re

        if not re.fullmatch(r"[a-z][a-z0-9_]{0,49}", data["name"]):
            errors["name"] = [_("Use lower-case letters, digits and _; start with a letter.")]
        if not data["label"]:
            errors["label"] = [_("This field is required.")]
        if not errors:
            try:
                services.custom_field_create(actor=request.user, **data)
                messages.success(request, _("Field “%(label)s” added.") % {"label": data["label"]})
                return redirect("custom-fields")
            except FieldErrors as exc:
                errors = exc.errors
            except PermissionDenied as exc:
                errors = {"__all__": [str(exc)]}
    return render(
        request,
        "core/custom_fields.html",
        {
            "fields": custom_field_list(object_type=None),
            "object_types": CustomFieldDefinition.ObjectType.choices,
            "types": CustomFieldDefinition.Type.choices,
            "errors": errors,
            "data": data,
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def custom_field_delete(request: HttpRequest, field_id: int) -> HttpResponse:
    admin_required(request)
    defn = custom_field_list(object_type=None).filter(pk=field_id).first()
    if defn is None:
        raise Http404
    services.custom_field_delete(actor=request.user, definition=defn)
    messages.success(request, _("Field removed. Stored values are kept."))
    return redirect("custom-fields")


# --- files on records ------------------------------------------------------------------------

RECORD_TYPES = ("company", "person", "deal", "lead")


@login_required
@require_POST
def attachment_add(request: HttpRequest, object_type: str, object_id: int) -> HttpResponse:
    from rapport.core.attachments import attachment_add as add
    from rapport.core.selectors import record_get

    if object_type not in RECORD_TYPES:
        raise Http404
    record = record_get(user=request.user, object_type=object_type, object_id=object_id)
    uploads = request.FILES.getlist("file")
    if not uploads:
        messages.error(request, _("Choose a file."))
    for upload in uploads:
        try:
            add(actor=request.user, object_type=object_type, record=record, upload=upload)
            messages.success(request, _("“%(name)s” attached.") % {"name": upload.name})
        except FieldErrors as exc:
            messages.error(request, " ".join(m for v in exc.errors.values() for m in v))
        except PermissionDenied as exc:
            messages.error(request, str(exc))
    return redirect(hit_url(object_type, object_id) + "?tab=files")


@login_required
def attachment_download(request: HttpRequest, attachment_id: int) -> HttpResponseBase:
    """Always a download (never rendered inline), so an uploaded page cannot run scripts here."""
    from django.http import FileResponse

    from rapport.core.selectors import attachment_get

    att = attachment_get(user=request.user, attachment_id=attachment_id)
    try:
        handle = att.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = FileResponse(handle, as_attachment=True, filename=att.name)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def attachment_remove(request: HttpRequest, attachment_id: int) -> HttpResponse:
    from rapport.core.attachments import attachment_remove as remove
    from rapport.core.selectors import attachment_get, record_get

    att = attachment_get(user=request.user, attachment_id=attachment_id)
    record = record_get(user=request.user, object_type=att.object_type, object_id=att.object_id)
    try:
        remove(actor=request.user, attachment=att, record=record)
        messages.success(request, _("“%(name)s” removed.") % {"name": att.name})
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    return redirect(hit_url(att.object_type, att.object_id) + "?tab=files")
