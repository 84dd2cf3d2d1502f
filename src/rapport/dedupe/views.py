"""Duplicate clusters, the side-by-side merge page, dismiss, scan and undo."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.dedupe import selectors, services
from rapport.dedupe.models import MergeRecord, PairStatus, choice_fields

TYPES = {"person": "person", "company": "company"}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101  (login_required)
    return user


def _type(value: str | None) -> str:
    return value if value in TYPES else "person"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@login_required
def duplicate_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    object_type = _type(request.GET.get("type"))
    return render(
        request,
        "dedupe/list.html",
        {
            "object_type": object_type,
            "clusters": selectors.clusters(user=user, object_type=object_type),
            "merges": selectors.merges(user=user, object_type=object_type),
            "can_scan": user.is_rapport_admin,
        },
    )


@login_required
@require_POST
def duplicate_scan(request: HttpRequest) -> HttpResponse:
    """Queue a scan of the whole base (administrators: it reads every record)."""
    user = _user(request)
    if not user.is_rapport_admin:
        raise Http404
    object_type = _type(request.POST.get("type"))
    services.scan_start(actor=user, object_type=object_type)
    messages.info(request, _("The search for duplicates runs in the background."))
    return redirect(f"/duplicates/?type={object_type}")


@login_required
def duplicate_merge(request: HttpRequest, object_type: str, a_id: int, b_id: int) -> HttpResponse:
    """Both records side by side: pick the survivor and, per field, the value to keep."""
    if object_type not in TYPES:
        raise Http404
    user = _user(request)
    detail = selectors.pair_detail(user=user, object_type=object_type, a_id=a_id, b_id=b_id)
    a, b = detail.a, detail.b
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        survivor_id = _int(request.POST.get("survivor")) or a.pk
        if survivor_id not in (a.pk, b.pk):
            raise Http404
        merged_id = b.pk if survivor_id == a.pk else a.pk
        versions = {
            a.pk: _int(request.POST.get("a_version")),
            b.pk: _int(request.POST.get("b_version")),
        }
        keep: dict[str, str] = {}
        for f in choice_fields(object_type):
            side = request.POST.get(f"keep_{f}")
            if side in ("a", "b"):
                chosen = a.pk if side == "a" else b.pk
                keep[f] = "survivor" if chosen == survivor_id else "merged"
        try:
            record = services.merge(
                actor=user,
                object_type=object_type,
                survivor_id=survivor_id,
                merged_id=merged_id,
                keep=keep,
                survivor_version=versions[survivor_id],
                merged_version=versions[merged_id],
            )
        except StaleVersion:
            errors = {
                "": [
                    _(
                        "One of the records was changed after this page was opened: "
                        "check the values again and merge."
                    )
                ]
            }
        except (FieldErrors, PermissionDenied) as exc:
            errors = exc.errors if isinstance(exc, FieldErrors) else {"": [str(exc)]}
        else:
            messages.success(
                request,
                _("Merged. The other record is in the recycle bin; the merge can be undone."),
            )
            name = "company-detail" if object_type == "company" else "person-detail"
            response = redirect(name, record.survivor_id)
            response["Location"] += f"?merged={record.pk}"
            return response
    return render(
        request,
        "dedupe/merge.html",
        {"object_type": object_type, "detail": detail, "a": a, "b": b, "errors": errors},
        status=422 if errors else 200,
    )


@login_required
@require_POST
def duplicate_dismiss(request: HttpRequest, object_type: str, a_id: int, b_id: int) -> HttpResponse:
    user = _user(request)
    pair = selectors.pair_find(
        user=user, object_type=object_type, a_id=a_id, b_id=b_id, status=PairStatus.OPEN
    )
    services.pair_dismiss(actor=user, pair=pair)
    messages.info(request, _("Marked as not duplicates."))
    return redirect(f"/duplicates/?type={object_type}")


@login_required
@require_POST
def merge_undo(request: HttpRequest, merge_id: int) -> HttpResponse:
    user = _user(request)
    record: MergeRecord = selectors.merge_get(user=user, merge_id=merge_id)
    try:
        services.merge_undo(actor=user, record=record)
    except StaleVersion:
        messages.error(
            request, _("The record was changed after the merge; the merge cannot be undone.")
        )
    except (FieldErrors, PermissionDenied) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Merge undone: both records are back."))
    return redirect(f"/duplicates/?type={record.object_type}")
