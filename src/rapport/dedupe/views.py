"""Duplicate clusters, the side-by-side merge page, dismiss, scan and undo."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.dedupe import selectors, services
from rapport.dedupe.models import DuplicatePair, MergeRecord, PairStatus

TYPES = {"person": "person", "company": "company"}


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101  (login_required)
    return user


def _type(value: str | None) -> str:
    return value if value in TYPES else "person"


def reason_label(code: str) -> str:
    kind, _sep, value = code.partition(":")
    return {
        "email": _("same email"),
        "phone": _("same phone"),
        "tax_id": _("same tax id"),
        "name": _("similar name %(score)s%%") % {"score": value} if value else _("similar name"),
    }.get(kind, kind)


@login_required
def duplicate_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    object_type = _type(request.GET.get("type"))
    found = selectors.clusters(user=user, object_type=object_type)
    rows = [
        {
            "score": c.score,
            "reasons": [reason_label(r) for p in c.pairs[:1] for r in p.reasons]
            or [reason_label(r) for r in c.reasons],
            "members": c.members,
            "pairs": c.pairs,
            "first": c.pairs[0],
        }
        for c in found
    ]
    return render(
        request,
        "dedupe/list.html",
        {
            "object_type": object_type,
            "clusters": rows,
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
    from django_q.tasks import async_task

    async_task("rapport.dedupe.jobs.scan", object_type, task_name=f"duplicates-{object_type}")
    messages.info(request, _("The search for duplicates runs in the background."))
    return redirect(f"/duplicates/?type={object_type}")


def _field_rows(object_type: str, a: Any, b: Any) -> list[dict[str, Any]]:
    from rapport.parties.models import ContactPoint

    rows = []
    for f in services.choice_fields(object_type):
        model_field = type(a)._meta.get_field(f)
        va, vb = getattr(a, f), getattr(b, f)
        rows.append(
            {
                "name": f,
                "label": model_field.verbose_name,
                "a": va if va not in (None, "") else "",
                "b": vb if vb not in (None, "") else "",
                "differ": (va or "") != (vb or ""),
            }
        )
    owner = object_type
    for label, channel in ((_("phones"), "phone"), (_("emails"), "email")):
        pa = list(
            ContactPoint.objects.filter(**{owner: a}, channel=channel).values_list("raw", flat=True)
        )
        pb = list(
            ContactPoint.objects.filter(**{owner: b}, channel=channel).values_list("raw", flat=True)
        )
        rows.append({"name": "", "label": label, "a": ", ".join(pa), "b": ", ".join(pb),
                     "differ": False, "union": True})  # fmt: skip
    return rows


@login_required
def duplicate_merge(request: HttpRequest, object_type: str, a_id: int, b_id: int) -> HttpResponse:
    """Both records side by side: pick the survivor and, per field, the value to keep."""
    if object_type not in TYPES:
        raise Http404
    user = _user(request)
    a, b = selectors.pair_get(user=user, object_type=object_type, a_id=a_id, b_id=b_id)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        survivor_id = int(request.POST.get("survivor") or a.pk)
        if survivor_id not in (a.pk, b.pk):
            raise Http404
        merged_id = b.pk if survivor_id == a.pk else a.pk
        keep: dict[str, str] = {}
        for f in services.choice_fields(object_type):
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
            )
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
    pair = DuplicatePair.objects.filter(
        object_type=object_type, a_id=min(a.pk, b.pk), b_id=max(a.pk, b.pk)
    ).first()
    return render(
        request,
        "dedupe/merge.html",
        {
            "object_type": object_type,
            "a": a,
            "b": b,
            "rows": _field_rows(object_type, a, b),
            "reasons": [reason_label(r) for r in (pair.reasons if pair else [])],
            "score": pair.score if pair else None,
            "errors": errors,
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def duplicate_dismiss(request: HttpRequest, object_type: str, a_id: int, b_id: int) -> HttpResponse:
    user = _user(request)
    selectors.pair_get(user=user, object_type=object_type, a_id=a_id, b_id=b_id)
    pair = DuplicatePair.objects.filter(
        object_type=object_type, a_id=min(a_id, b_id), b_id=max(a_id, b_id),
        status=PairStatus.OPEN,
    ).first()  # fmt: skip
    if pair is None:
        raise Http404
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
