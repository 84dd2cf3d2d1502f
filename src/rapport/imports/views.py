"""The import wizard: choose a file → map columns → preview → run with progress → report, undo.

Every step calls ``rapport.imports.services``; the CLI and the API call the same ones.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from rapport.accounts.models import User
from rapport.accounts.selectors import user_assignable
from rapport.core.errors import FieldErrors, PermissionDenied, ServiceError
from rapport.core.exports import export_response
from rapport.imports import selectors, services
from rapport.imports.mapping import fields_for
from rapport.imports.models import ImportRun, OnDuplicate, Outcome, RunStatus, Target
from rapport.imports.reports import report_line, report_lines
from rapport.imports.services import data_rows
from rapport.parties.selectors import company_list, person_list

SAMPLE_ROWS = 5
REPORT_PAGE = 500


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # noqa: S101  (login_required)
    return user


@login_required
def import_list(request: HttpRequest) -> HttpResponse:
    """Past imports, and the form that starts a new one with a file."""
    user = _user(request)
    errors: dict[str, list[str]] = {}
    target = request.GET.get("target", "")
    data: dict[str, Any] = {
        "target": target if target in Target.values else Target.PEOPLE,
        "default_region": "",
    }
    if request.method == "POST":
        data = request.POST.dict()
        upload = request.FILES.get("file")
        if upload is None:
            errors["file"] = [_("Choose a file to import.")]
        else:
            suffix = Path(upload.name or "").suffix.lower()[:10]
            with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
                for chunk in upload.chunks():
                    tmp.write(chunk)
            tmp_path = Path(tmp.name)
            try:
                run = services.run_create(
                    actor=user,
                    source=tmp_path,
                    file_name=upload.name or "upload",
                    target=data.get("target", ""),
                    default_region=data.get("default_region", ""),
                )
                return redirect("import-detail", run_id=run.pk)
            except FieldErrors as exc:
                errors = exc.errors
            except PermissionDenied as exc:
                errors = {"target": [str(exc)]}
            finally:
                tmp_path.unlink(missing_ok=True)
    return render(
        request,
        "imports/list.html",
        {
            "runs": selectors.import_runs(user=user)[:100],
            "errors": errors,
            "data": data,
            "targets": Target.choices,
            "max_mb": settings.IMPORT_MAX_MB,
            "default_region": settings.DEFAULT_PHONE_REGION,
        },
        status=422 if errors else 200,
    )


def _mapping_from(request: HttpRequest, run: ImportRun) -> list[str]:
    return [request.POST.get(f"col_{i}", "") for i in range(len(run.headers))]


def _sample(run: ImportRun) -> list[list[str]]:
    rows: list[list[str]] = []
    for _number, cells in data_rows(run):
        rows.append(cells + [""] * (len(run.headers) - len(cells)))
        if len(rows) >= SAMPLE_ROWS:
            break
    return rows


def _int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


@login_required
def import_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """One import: the mapping step before it runs, progress while it runs, the report after."""
    user = _user(request)
    run = selectors.import_get(user=user, run_id=run_id)
    errors: dict[str, list[str]] = {}
    preview = None
    status = 200
    if request.method == "POST" and run.status in (RunStatus.DRAFT, RunStatus.INVALID):
        action = request.POST.get("action", "save")
        try:
            header_row = _int(request.POST.get("header_row"))
            changed_header = header_row is not None and header_row != run.header_row
            sheet = request.POST.get("sheet")
            run = services.run_configure(
                actor=user,
                run=run,
                sheet=sheet if sheet is not None and sheet != run.sheet else None,
                header_row=header_row if changed_header else None,
                mapping=None if changed_header else _mapping_from(request, run),
                save_preset=request.POST.get("save_preset", ""),
                on_duplicate=request.POST.get("on_duplicate") or None,
                valid_rows_only=request.POST.get("valid_rows_only") == "on",
                default_region=request.POST.get("default_region") or None,
                responsible_id=_int(request.POST.get("responsible_id")),
            )
            if changed_header:
                messages.info(request, _("The header row changed: check the columns again."))
            elif action == "preview":
                preview = services.run_preview(actor=user, run=run)
            elif action == "start":
                services.run_start(actor=user, run=run)
                return redirect("import-detail", run_id=run.pk)
        except FieldErrors as exc:
            errors = exc.errors
            status = 422
        except ServiceError as exc:
            errors = {"": [str(exc)]}
            status = 422
        run.refresh_from_db()
    elif request.method == "POST" and run.status == RunStatus.FAILED:
        services.run_start(actor=user, run=run)  # resume after the checkpoint
        messages.info(request, _("The import resumes after row %(n)s.") % {"n": run.rows_done})
        return redirect("import-detail", run_id=run.pk)
    outcome = request.GET.get("outcome", "")
    if outcome and outcome not in Outcome.values:
        outcome = ""
    context: dict[str, Any] = {
        "run": run,
        "errors": errors,
        "preview": preview,
        "preview_rows": list(zip(preview.lines, preview.rows, strict=True)) if preview else [],
        "preview_counts": [(k, Outcome(k).label, n) for k, n in sorted(preview.counts.items())]
        if preview
        else [],
        "fields": fields_for(run.target),
        "custom_fields": _custom_choices(run),
        "policies": OnDuplicate.choices,
        "outcomes": Outcome.choices,
        "outcome": outcome,
        "managers": user_assignable(
            user=user, object_type="company" if run.target == Target.COMPANIES else "person"
        )[:500],
        "editable": run.status in (RunStatus.DRAFT, RunStatus.INVALID),
        "counts": [(k, _count_labels().get(k, k), n) for k, n in sorted(run.counts.items())],
        "presets": selectors.mapping_presets(target=run.target),
    }
    if context["editable"]:
        try:
            context["columns"] = list(
                zip(run.headers, run.mapping, _columns(_sample(run), len(run.headers)), strict=True)
            )
        except Exception as exc:  # the stored file went missing or broke: say so
            errors.setdefault("file", []).append(str(exc))
            context["columns"] = []
        if run.status == RunStatus.INVALID:
            context["invalid"] = [
                report_line(line)
                for line in services.invalid_lines(run)
                if line.outcome == Outcome.ERROR
            ][:REPORT_PAGE]
    else:
        context["lines"] = _with_records(
            user,
            [
                report_line(line)
                for line in selectors.import_rows(run=run, outcome=outcome)[:REPORT_PAGE]
            ],
        )
    return render(request, "imports/detail.html", context, status=status)


def _with_records(user: User, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each report line with the person and company it names, if the viewer may see them
    (a record removed since, or out of the viewer's scope, is shown by its id, unlinked)."""
    people = {
        p.pk: p
        for p in person_list(user=user).filter(
            pk__in={ln["person_id"] for ln in lines if ln["person_id"]}
        )
    }
    companies = {
        c.pk: c
        for c in company_list(user=user).filter(
            pk__in={ln["company_id"] for ln in lines if ln["company_id"]}
        )
    }
    for ln in lines:
        ln["person"] = people.get(ln["person_id"])
        ln["company"] = companies.get(ln["company_id"])
    return lines


def _count_labels() -> dict[str, str]:
    return {
        **{k: str(v) for k, v in Outcome.choices},
        "invalid": _("rows with errors"),
        "total": _("rows"),
        "undo_removed": _("removed by undo"),
        "undo_restored": _("restored by undo"),
        "undo_kept": _("kept by undo (changed since)"),
        "company_review": _("rows moved to the company they turned out to be"),
    }


def _columns(sample: list[list[str]], width: int) -> list[list[str]]:
    return [[row[i] if i < len(row) else "" for row in sample] for i in range(width)]


def _custom_choices(run: ImportRun) -> list[tuple[str, str]]:
    from rapport.core.customfields import definitions_for

    object_type = "person" if run.target == Target.PEOPLE else "company"
    return [(f"custom:{d.name}", str(d.label)) for d in definitions_for(object_type)]


@login_required
def import_progress(request: HttpRequest, run_id: int) -> HttpResponse:
    """The progress bar (polled by htmx every second while the import runs)."""
    run = selectors.import_get(user=_user(request), run_id=run_id)
    eta = None
    if run.status == RunStatus.RUNNING and run.started_at and run.rows_done:
        elapsed = (timezone.now() - run.started_at).total_seconds()
        left = max(run.total_rows - run.rows_done, 0)
        eta = int(elapsed / run.rows_done * left)
    response = render(request, "imports/_progress.html", {"run": run, "eta": eta})
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        response["HX-Refresh"] = "true"  # finished: show the report
    return response


@login_required
def import_report(request: HttpRequest, run_id: int, fmt: str) -> HttpResponse:
    """The row report as XLSX, CSV or JSON: one line per source row."""
    run = selectors.import_get(user=_user(request), run_id=run_id)
    lines = (
        services.invalid_lines(run)
        if run.status == RunStatus.INVALID
        else selectors.import_rows(run=run)
    )
    if fmt == "json":
        body = json.dumps(report_lines(lines), ensure_ascii=False, indent=1)
        response = HttpResponse(body, content_type="application/json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{run.pk}-report.json"'
        return response
    if fmt not in ("xlsx", "csv"):
        raise Http404
    header = [
        _("Row"),
        _("Outcome"),
        _("Person"),
        _("Person id"),
        _("Company"),
        _("Company id"),
        _("Merged with row"),
        _("Created"),
        _("Updated"),
        _("Phones"),
        _("Emails"),
        _("Messages"),
    ]

    user = _user(request)

    def rows() -> Any:
        batch: list[dict[str, Any]] = []
        source = lines.iterator() if hasattr(lines, "iterator") else iter(lines)
        for line in itertools.chain(source, [None]):  # names: 500 lines at a time, scoped
            if line is not None:
                batch.append(report_line(line))
                if len(batch) < 500:
                    continue
            for d in _with_records(user, batch):
                yield [
                    d["row"],
                    d["outcome_label"],
                    str(d["person"]) if d["person"] else "",
                    d["person_id"],
                    str(d["company"]) if d["company"] else "",
                    d["company_id"],
                    d["merged_with_row"],
                    ", ".join(d["created"]),
                    ", ".join(d["updated"]),
                    ", ".join(d["phones"]),
                    ", ".join(d["emails"]),
                    "\n".join(d["messages"]),
                ]
            batch = []

    return export_response(  # type: ignore[return-value]
        name=f"import-{run.pk}-report", fmt=fmt, header=header, rows=rows(), title=_("Report")
    )


@login_required
@require_POST
def import_undo(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.import_get(user=_user(request), run_id=run_id)
    try:
        result = services.run_undo(actor=_user(request), run=run)
    except FieldErrors as exc:
        messages.error(request, " ".join(m for ms in exc.errors.values() for m in ms))
        return redirect("import-detail", run_id=run.pk)
    if result.kept and not (result.removed or result.restored):
        messages.error(request, _("Nothing could be undone: every record was changed since."))
    else:
        messages.success(
            request,
            _("Import undone: %(removed)s records removed, %(restored)s restored.")
            % {"removed": result.removed, "restored": result.restored},
        )
    for line in result.kept[:50]:
        messages.warning(request, line)
    return redirect("import-detail", run_id=run.pk)
