"""New and changed records are checked for duplicates as they come (run by the worker)."""

from __future__ import annotations

from rapport.core.events import handler
from rapport.core.models import OutboxEvent


@handler("person.created", key="dedupe.person_created")
@handler("company.created", key="dedupe.company_created")
def new_record_checked(event: OutboxEvent) -> None:
    from rapport.dedupe.finder import check_record

    check_record(event.object_type, event.object_id)
