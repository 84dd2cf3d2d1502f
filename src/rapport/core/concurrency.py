"""Two editors, one record (R10): merge what does not clash, report what does.

Every audited update stores ``version`` old -> new. Given the version a user read
and what they submitted, the fields changed by others since then are known from
the audit log: a field the user left as it was keeps the other's value, a field
only the user changed is applied, a field both changed differently is a conflict.
"""

from __future__ import annotations

from typing import Any

from rapport.core.models import AuditEntry


def changed_since(*, object_type: str, object_id: int, version: int) -> dict[str, Any]:
    """Field -> value as it was at ``version``, for each field changed after it."""
    base: dict[str, Any] = {}
    entries = AuditEntry.objects.filter(
        object_type=object_type, object_id=object_id, action="update"
    ).order_by("id")
    for entry in entries:
        ver = entry.changes.get("version")
        if not ver or not isinstance(ver, list) or ver[0] is None or int(ver[0]) < version:
            continue
        for field, (old, _new) in ((k, v) for k, v in entry.changes.items() if k != "version"):
            base.setdefault(field, old)
    return base


def merge_stale(
    *,
    object_type: str,
    object_id: int,
    read_version: int,
    current: dict[str, Any],
    submitted: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(values to apply, conflicts {field: {"yours", "theirs"}}) for a stale submission."""
    base = changed_since(object_type=object_type, object_id=object_id, version=read_version)
    apply: dict[str, Any] = {}
    conflicts: dict[str, dict[str, Any]] = {}
    for field, mine in submitted.items():
        if field not in base:
            apply[field] = mine
            continue
        theirs = current.get(field)
        if mine == base[field] or mine == theirs:
            continue  # the user did not touch it, or both agree: keep theirs
        conflicts[field] = {"yours": mine, "theirs": theirs}
    return apply, conflicts
