"""The duplicate finder's background jobs (queued from the page or the API). Thin."""

from __future__ import annotations


def scan_run(scan_id: int) -> str:
    """A scan started by ``services.scan_start``: its status after the run."""
    from rapport.dedupe.services import scan_execute

    return str(scan_execute(scan_id).status)


def scan(object_type: str) -> int:
    """A scan without a status row (queued by an earlier version of the page)."""
    from rapport.dedupe.finder import scan as run

    return run(object_type)
