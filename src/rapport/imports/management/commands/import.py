"""``rapport import FILE --target people --default-region RU …``: the wizard's pipeline."""

# ruff: noqa: N999  (the command is named "import": `rapport import FILE`)
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from rapport.core.command_actor import command_actor
from rapport.core.errors import FieldErrors, ServiceError
from rapport.imports import services
from rapport.imports.models import ImportRun, OnDuplicate, RunStatus, Target
from rapport.imports.reports import report_lines


class Command(BaseCommand):
    help = "Import people or companies from XLSX, XLS, ODS, CSV/TSV or vCard."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="the file to import")
        parser.add_argument("--target", choices=Target.values, default=Target.PEOPLE)
        parser.add_argument("--default-region", default="", help="e.g. RU, IT, AZ, US")
        parser.add_argument("--sheet", default=None)
        parser.add_argument("--header-row", type=int, default=None)
        parser.add_argument("--mapping", default=None, help="a saved mapping preset's name")
        parser.add_argument("--save-mapping", default="", help="save the mapping under a name")
        parser.add_argument(
            "--on-duplicate", choices=OnDuplicate.values, default=OnDuplicate.UPDATE
        )
        parser.add_argument("--valid-only", action="store_true", help="import valid rows only")
        parser.add_argument("--dry-run", action="store_true", help="write nothing; report only")
        parser.add_argument("--report", default=None, help="write the row report as JSON here")
        parser.add_argument("--user", default=None, help="acting user (default: first admin)")
        parser.add_argument("--resume", type=int, default=None, help="resume a failed run by id")
        parser.add_argument("--undo", type=int, default=None, help="undo a run by id")

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = command_actor(opts["user"])
        try:
            if opts["undo"]:
                run = ImportRun.objects.get(pk=opts["undo"])
                result = services.run_undo(actor=actor, run=run)
                self.stdout.write(
                    f"undone: {result.removed} removed, {result.restored} restored, "
                    f"{len(result.kept)} kept"
                )
                for line in result.kept:
                    self.stdout.write(f"  kept: {line}")
                return
            if opts["resume"]:
                services.runs_mark_stale()
                run = ImportRun.objects.get(pk=opts["resume"])
                if run.status == RunStatus.RUNNING:
                    raise CommandError(
                        f"import {run.pk} is still running (last checkpoint "
                        f"{run.heartbeat_at:%H:%M:%S}); resume it once it is marked failed"
                    )
                if run.status not in (RunStatus.FAILED, RunStatus.QUEUED):
                    raise CommandError(f"import {run.pk} is {run.status}: nothing to resume")
            else:
                if not opts["file"]:
                    raise CommandError("give a FILE (or --resume / --undo ID)")
                path = Path(opts["file"])
                if not path.is_file():
                    raise CommandError(f"no such file: {path}")
                run = services.run_create(
                    actor=actor,
                    source=path,
                    file_name=path.name,
                    target=opts["target"],
                    default_region=opts["default_region"],
                )
                run = services.run_configure(
                    actor=actor,
                    run=run,
                    sheet=opts["sheet"],
                    header_row=opts["header_row"],
                    preset=opts["mapping"],
                    save_preset=opts["save_mapping"],
                    on_duplicate=opts["on_duplicate"],
                    valid_rows_only=opts["valid_only"],
                )
            self.stdout.write(
                f"import {run.pk}: {run.file_name}, {run.file_format}, header on row "
                f"{run.header_row}; columns: "
                + ", ".join(
                    f"{h or '?'}→{m or '-'}" for h, m in zip(run.headers, run.mapping, strict=False)
                )
            )
            if opts["dry_run"]:
                preview = services.run_preview(actor=actor, run=run, limit=10**9, sample=None)
                self._finish(opts, preview.lines, preview.counts, "dry run")
                return
            started = time.monotonic()

            def progress(r: ImportRun) -> None:
                rate = r.rows_done / max(time.monotonic() - started, 1e-6)
                line = f"\r{r.rows_done}/{r.total_rows} rows, {rate:.0f} rows/s"
                self.stderr.write(line, ending="")

            try:
                run = services.run_execute(run.pk, actor=actor, progress=progress)
            except (DatabaseError, OSError) as exc:
                # the run is marked failed at its last checkpoint (or by the stale-run sweep
                # when the database is gone): say so, without a traceback
                self.stderr.write("")
                raise CommandError(
                    f"import {run.pk} failed: {exc}".rstrip()
                    + f"\nresume it once the cause is fixed: rapport import --resume {run.pk}"
                ) from exc
            self.stderr.write("")
        except (FieldErrors, ServiceError) as exc:
            raise CommandError(str(exc)) from exc
        if run.status == RunStatus.INVALID:
            lines = services.invalid_lines(run)
            self._finish(opts, lines, run.counts, run.error)
            sys.exit(2)
        self._finish(opts, list(run.rows.all()), run.counts, f"import {run.pk} {run.status}")

    def _finish(
        self, opts: dict[str, Any], lines: list[Any], counts: dict[str, Any], title: str
    ) -> None:
        self.stdout.write(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if opts["report"]:
            Path(opts["report"]).write_text(
                json.dumps(report_lines(lines), ensure_ascii=False, indent=1), encoding="utf-8"
            )
            self.stdout.write(f"report: {opts['report']}")
