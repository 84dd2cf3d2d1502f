"""The importer's background jobs, run by the worker. Thin: they call services."""

from __future__ import annotations

from rapport.core.tasks import periodic


def run_import(run_id: int) -> str:
    from rapport.imports.services import run_execute

    run = run_execute(run_id)
    return str(run.status)


def mark_stale_runs() -> int:
    """An import whose worker died is failed (resumable), not 'running' for ever."""
    from rapport.imports.services import runs_mark_stale

    return runs_mark_stale()


periodic("rapport.imports_stale", "rapport.imports.jobs.mark_stale_runs")
