"""Imports API: upload a file, adjust the mapping, preview, start, follow, report, undo.

The same services as the wizard and ``rapport import``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import BaseModel, ConfigDict

from rapport.imports import selectors, services
from rapport.imports.models import ImportRun
from rapport.imports.reports import report_line

router = Router(tags=["imports"])


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}


class ImportOut(Schema):
    id: int
    file_name: str
    file_format: str
    target: str
    status: str
    header_row: int
    headers: list[str]
    mapping: list[str] = Field(description='A field per column; "" = ignored.')
    default_region: str
    on_duplicate: str
    valid_rows_only: bool
    total_rows: int
    rows_done: int
    counts: dict[str, int]
    error: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ImportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    header_row: int | None = Field(None, ge=1, le=30)
    sheet: str | None = None
    mapping: list[str] | None = None
    preset: str | None = Field(None, description="Apply a saved mapping by its name.")
    save_preset: str = Field("", max_length=100, description="Save the mapping under a name.")
    on_duplicate: Literal["skip", "update", "overwrite", "create"] | None = None
    valid_rows_only: bool | None = None
    default_region: str | None = Field(None, min_length=2, max_length=2)
    responsible_id: int | None = None


class ReportLineOut(Schema):
    row: int
    outcome: str
    outcome_label: str
    person_id: int | None
    company_id: int | None
    merged_with_row: int | None
    created: list[str]
    updated: list[str]
    phones: list[str]
    emails: list[str]
    messages: list[str]


class PreviewOut(Schema):
    total: int = Field(description="Data rows in the file")
    tried: int = Field(description="Rows tried against the base (the first ones)")
    invalid: int = Field(description="Rows of the whole file with errors")
    counts: dict[str, int] = Field(description="Outcomes of the rows tried")
    lines: list[ReportLineOut]


class UndoOut(Schema):
    removed: int
    restored: int
    kept: list[str]


def _out(run: ImportRun) -> dict[str, Any]:
    return {f: getattr(run, f) for f in ImportOut.model_fields}


@router.post("/imports", response={201: ImportOut, **ERRORS}, summary="Upload a file to import")
def imports_create(
    request: HttpRequest,
    file: File[UploadedFile],
    target: Form[Literal["people", "companies"]] = "people",
    default_region: Form[str] = "",
) -> Any:
    suffix = Path(file.name or "").suffix.lower()[:10]
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as tmp:
        for chunk in file.chunks():
            tmp.write(chunk)
    path = Path(tmp.name)
    try:
        run = services.run_create(
            actor=request.user,  # type: ignore[arg-type]
            source=path,
            file_name=file.name or "upload",
            target=target,
            default_region=default_region,
        )
    finally:
        path.unlink(missing_ok=True)
    return Status(201, _out(run))


@router.get("/imports", response={200: list[ImportOut], **ERRORS}, summary="My imports")
def imports_list(request: HttpRequest) -> Any:
    return [_out(r) for r in selectors.import_runs(user=request.user)[:100]]  # type: ignore[arg-type]


@router.get("/imports/{run_id}", response={200: ImportOut, **ERRORS}, summary="One import")
def imports_get(request: HttpRequest, run_id: int) -> Any:
    return _out(selectors.import_get(user=request.user, run_id=run_id))  # type: ignore[arg-type]


@router.patch(
    "/imports/{run_id}", response={200: ImportOut, **ERRORS}, summary="Change mapping and options"
)
def imports_configure(request: HttpRequest, run_id: int, body: ImportConfig) -> Any:
    run = selectors.import_get(user=request.user, run_id=run_id)  # type: ignore[arg-type]
    run = services.run_configure(actor=request.user, run=run, **body.model_dump())  # type: ignore[arg-type]
    return _out(run)


@router.post(
    "/imports/{run_id}/preview",
    response={200: PreviewOut, **ERRORS},
    summary="What the import would do (nothing is written)",
)
def imports_preview(request: HttpRequest, run_id: int, limit: int = 50) -> Any:
    run = selectors.import_get(user=request.user, run_id=run_id)  # type: ignore[arg-type]
    preview = services.run_preview(actor=request.user, run=run, limit=min(max(limit, 1), 1000))  # type: ignore[arg-type]
    return {
        "total": preview.total,
        "tried": preview.tried,
        "invalid": preview.invalid,
        "counts": preview.counts,
        "lines": [report_line(line) for line in preview.lines],
    }


@router.post(
    "/imports/{run_id}/start",
    response={202: ImportOut, **ERRORS},
    summary="Run the import in the background (or resume a failed one)",
)
def imports_start(request: HttpRequest, run_id: int) -> Any:
    run = selectors.import_get(user=request.user, run_id=run_id)  # type: ignore[arg-type]
    run = services.run_start(actor=request.user, run=run)  # type: ignore[arg-type]
    return Status(202, _out(run))


@router.get(
    "/imports/{run_id}/report",
    response={200: list[ReportLineOut], **ERRORS},
    summary="The row report: one line per source row",
)
def imports_report(
    request: HttpRequest,
    run_id: int,
    outcome: str = "",
    after_row: int = 0,
    size: int = Query(500, ge=1, le=5000),  # type: ignore[type-arg]
) -> Any:
    run = selectors.import_get(user=request.user, run_id=run_id)  # type: ignore[arg-type]
    if run.status == "invalid":
        lines = [ln for ln in services.invalid_lines(run) if ln.row_number > after_row]
        return [report_line(ln) for ln in lines[:size]]
    rows = selectors.import_rows(run=run, outcome=outcome).filter(row_number__gt=after_row)
    return [report_line(ln) for ln in rows[:size]]


@router.post("/imports/{run_id}/undo", response={200: UndoOut, **ERRORS}, summary="Undo an import")
def imports_undo(request: HttpRequest, run_id: int) -> Any:
    run = selectors.import_get(user=request.user, run_id=run_id)  # type: ignore[arg-type]
    result = services.run_undo(actor=request.user, run=run)  # type: ignore[arg-type]
    return {"removed": result.removed, "restored": result.restored, "kept": result.kept}
