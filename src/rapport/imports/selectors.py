"""Reads of imports: a user sees the imports they started; an administrator sees all."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from rapport.accounts.models import User
from rapport.imports.models import ImportRow, ImportRun, MappingPreset


def import_runs(*, user: User) -> QuerySet[ImportRun]:
    qs = ImportRun.objects.select_related("created_by")
    return qs if user.is_rapport_admin else qs.filter(created_by=user)


def import_get(*, user: User, run_id: int) -> ImportRun:
    run = import_runs(user=user).filter(pk=run_id).first()
    if run is None:
        raise Http404
    return run


def import_rows(*, run: ImportRun, outcome: str = "") -> QuerySet[ImportRow]:
    qs = run.rows.order_by("row_number")
    return qs.filter(outcome=outcome) if outcome else qs


def mapping_presets(*, target: str) -> QuerySet[MappingPreset]:
    return MappingPreset.objects.filter(target=target)
