"""Duplicates API: clusters of likely duplicates, a pair side by side, scans of the whole
base, merge (field by field), undo a merge, dismiss a pair.

The same selectors and services as the duplicates pages and ``rapport duplicates``. A pair
with a record the caller may not see answers 404, as if it did not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict

from rapport.accounts.models import User
from rapport.dedupe import selectors, services
from rapport.dedupe.models import DuplicatePair, DuplicateScan, MergeRecord, PairStatus

router = Router(tags=["duplicates"])

Target = Literal["people", "companies"]
TARGETS: dict[str, str] = {"people": "person", "companies": "company"}
TARGET_OF = {v: k for k, v in TARGETS.items()}


class ErrorOut(Schema):
    error: dict[str, Any]


ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 412: ErrorOut}


class ReasonOut(Schema):
    code: str = Field(description="email, phone, tax_id or name:<similarity 0-100>")
    label: str


class MemberOut(Schema):
    id: int
    name: str
    version: int
    responsible: str


class PairOut(Schema):
    a_id: int
    b_id: int
    score: int
    status: str
    reasons: list[ReasonOut]


class ClusterOut(Schema):
    score: int
    reasons: list[ReasonOut]
    members: list[MemberOut]
    pairs: list[PairOut]


class ClusterPage(Schema):
    count: int = Field(description="Clusters matching, over all pages")
    next_offset: int | None
    items: list[ClusterOut]


class FieldOut(Schema):
    name: str = Field(description="The field's name: a key of `keep` in a merge")
    label: str
    a: str
    b: str
    differ: bool


class PairDetailOut(Schema):
    target: str
    score: int | None = Field(description="null: the finder has not paired these two")
    status: str | None
    reasons: list[ReasonOut]
    a: MemberOut
    b: MemberOut
    fields: list[FieldOut]
    phones: dict[str, list[str]] = Field(description='{"a": [...], "b": [...]}: all are kept')
    emails: dict[str, list[str]] = Field(description='{"a": [...], "b": [...]}: all are kept')


class ScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Target = "people"


class ScanOut(Schema):
    id: int
    target: str
    status: str = Field(description="queued, running, done or failed")
    pairs_found: int
    error: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Target
    survivor_id: int = Field(description="The record that stays")
    merged_id: int = Field(description="The record merged into it (then in the recycle bin)")
    keep: dict[str, Literal["survivor", "merged"]] = Field(
        default_factory=dict,
        description="Per field, whose value to keep; a field left out keeps the survivor's, "
        "or the merged record's when the survivor's is empty.",
    )
    survivor_version: int | None = Field(
        None, description="The version compared; a record changed since answers 412"
    )
    merged_version: int | None = None


class MergeOut(Schema):
    id: int
    target: str
    survivor_id: int
    merged_id: int
    moved: int = Field(description="Related rows moved to the survivor")
    dropped: int = Field(description="Rows the survivor already had (kept for the undo)")
    created_at: dt.datetime
    undone_at: dt.datetime | None


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _reasons(reasons: list[selectors.Reason]) -> list[dict[str, str]]:
    return [{"code": r.code, "label": r.label} for r in reasons]


def _member(obj: Any) -> dict[str, Any]:
    return {
        "id": obj.pk,
        "name": str(obj),
        "version": obj.version,
        "responsible": str(obj.responsible) if obj.responsible_id else "",
    }


def _pair(p: DuplicatePair) -> dict[str, Any]:
    return {
        "a_id": p.a_id,
        "b_id": p.b_id,
        "score": p.score,
        "status": p.status,
        "reasons": _reasons(selectors.reasons_of(list(p.reasons))),
    }


def _scan(s: DuplicateScan) -> dict[str, Any]:
    return {
        "id": s.pk,
        "target": TARGET_OF[s.object_type],
        "status": s.status,
        "pairs_found": s.pairs_found,
        "error": s.error,
        "created_at": s.created_at,
        "started_at": s.started_at,
        "finished_at": s.finished_at,
    }


def _merge(m: MergeRecord) -> dict[str, Any]:
    return {
        "id": m.pk,
        "target": TARGET_OF[m.object_type],
        "survivor_id": m.survivor_id,
        "merged_id": m.merged_id,
        "moved": len(m.moved),
        "dropped": len(m.dropped),
        "created_at": m.created_at,
        "undone_at": m.undone_at,
    }


@router.get(
    "/duplicates/clusters",
    response={200: ClusterPage, **ERRORS},
    summary="Likely duplicates: groups of records, with a score and the reasons",
)
def clusters_list(
    request: HttpRequest,
    target: Target = "people",
    min_score: int = Query(0, ge=0, le=100),  # type: ignore[type-arg]
    sort: Literal["-score", "score"] = "-score",
    offset: int = Query(0, ge=0),  # type: ignore[type-arg]
    limit: int = Query(50, ge=1, le=500),  # type: ignore[type-arg]
) -> Any:
    found = selectors.clusters(
        user=_user(request),
        object_type=TARGETS[target],
        limit=None,
        min_score=min_score,
        sort=sort,
    )
    page = found[offset : offset + limit]
    return {
        "count": len(found),
        "next_offset": offset + limit if offset + limit < len(found) else None,
        "items": [
            {
                "score": c.score,
                "reasons": _reasons(c.reasons),
                "members": [_member(m) for m in c.members],
                "pairs": [_pair(p) for p in c.pairs],
            }
            for c in page
        ],
    }


@router.get(
    "/duplicates/{target}/pairs/{a_id}/{b_id}",
    response={200: PairDetailOut, **ERRORS},
    summary="Two records side by side, field by field",
)
def pairs_get(request: HttpRequest, target: Target, a_id: int, b_id: int) -> Any:
    d = selectors.pair_detail(
        user=_user(request), object_type=TARGETS[target], a_id=a_id, b_id=b_id
    )
    return {
        "target": target,
        "score": d.score,
        "status": d.pair.status if d.pair else None,
        "reasons": _reasons(d.reasons),
        "a": _member(d.a),
        "b": _member(d.b),
        "fields": [
            {"name": f.name, "label": f.label, "a": f.a, "b": f.b, "differ": f.differ}
            for f in d.fields
        ],
        "phones": {"a": d.phones[0], "b": d.phones[1]},
        "emails": {"a": d.emails[0], "b": d.emails[1]},
    }


@router.post(
    "/duplicates/{target}/pairs/{a_id}/{b_id}/dismiss",
    response={200: PairOut, **ERRORS},
    summary="Not duplicates: the pair is not proposed again (later scans keep the verdict)",
)
def pairs_dismiss(request: HttpRequest, target: Target, a_id: int, b_id: int) -> Any:
    user = _user(request)
    pair = selectors.pair_find(
        user=user, object_type=TARGETS[target], a_id=a_id, b_id=b_id, status=PairStatus.OPEN
    )
    return _pair(services.pair_dismiss(actor=user, pair=pair))


@router.post(
    "/duplicates/scans",
    response={202: ScanOut, **ERRORS},
    summary="Search the whole base in the background (administrators)",
    description="A scan of the same target already queued or running is returned instead.",
)
def scans_create(request: HttpRequest, body: ScanIn) -> Any:
    scan = services.scan_start(actor=_user(request), object_type=TARGETS[body.target])
    return Status(202, _scan(scan))


@router.get(
    "/duplicates/scans/{scan_id}",
    response={200: ScanOut, **ERRORS},
    summary="A scan's status (administrators)",
)
def scans_get(request: HttpRequest, scan_id: int) -> Any:
    return _scan(selectors.scan_get(user=_user(request), scan_id=scan_id))


@router.get(
    "/duplicates/merges",
    response={200: list[MergeOut], **ERRORS},
    summary="Recent merges whose kept record I may see",
)
def merges_list(request: HttpRequest, target: Target = "people") -> Any:
    return [_merge(m) for m in selectors.merges(user=_user(request), object_type=TARGETS[target])]


@router.post(
    "/duplicates/merges",
    response={201: MergeOut, **WRITE_ERRORS},
    summary="Merge two records into one",
    description="Related rows move to the survivor, phones, emails, tags and custom fields "
    "are combined, the other record goes to the recycle bin. Send both versions to refuse "
    "the merge with 412 when a record changed since it was compared.",
)
def merges_create(request: HttpRequest, body: MergeIn) -> Any:
    user = _user(request)
    object_type = TARGETS[body.target]
    if body.survivor_id != body.merged_id:  # the same id twice: the service says so (422)
        selectors.pair_get(  # both records must be visible: 404 otherwise
            user=user, object_type=object_type, a_id=body.survivor_id, b_id=body.merged_id
        )
    record = services.merge(
        actor=user,
        object_type=object_type,
        survivor_id=body.survivor_id,
        merged_id=body.merged_id,
        keep=dict(body.keep),
        survivor_version=body.survivor_version,
        merged_version=body.merged_version,
    )
    return Status(201, _merge(record))


@router.post(
    "/duplicates/merges/{merge_id}/undo",
    response={200: MergeOut, **WRITE_ERRORS},
    summary="Undo a merge: both records back as they were",
    description="Refused with 412 when the kept record was changed after the merge.",
)
def merges_undo(request: HttpRequest, merge_id: int) -> Any:
    user = _user(request)
    record = selectors.merge_get(user=user, merge_id=merge_id)
    services.merge_undo(actor=user, record=record)
    record.refresh_from_db()
    return _merge(record)
