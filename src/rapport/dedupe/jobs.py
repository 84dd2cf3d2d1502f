"""The duplicate finder's background job (queued from the page or the API)."""

from __future__ import annotations


def scan(object_type: str) -> int:
    from rapport.dedupe.finder import scan as run

    return run(object_type)
