"""The row report of an import: one line per source row, as JSON or a spreadsheet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rapport.imports.models import ImportRow, Outcome


def report_line(line: ImportRow) -> dict[str, Any]:
    created = [f"{c['type']}:{c['id']}" for c in line.changes if c.get("action") == "create"]
    updated = [f"{c['type']}:{c['id']}" for c in line.changes if c.get("action") == "update"]
    return {
        "row": line.row_number,
        "outcome": line.outcome,
        "outcome_label": str(Outcome(line.outcome).label),
        "person_id": line.person_id,
        "company_id": line.company_id,
        "merged_with_row": line.merged_with_row,
        "created": created,
        "updated": updated,
        "phones": line.phones,
        "emails": line.emails,
        "messages": line.messages,
    }


def report_lines(lines: Iterable[ImportRow]) -> list[dict[str, Any]]:
    return [report_line(line) for line in lines]
