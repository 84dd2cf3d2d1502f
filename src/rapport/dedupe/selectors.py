"""Reads of likely duplicates: clusters of records the user may see, best first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import Http404

from rapport.accounts.models import User
from rapport.core.scopes import scope_q
from rapport.dedupe.models import DuplicatePair, MergeRecord, PairStatus
from rapport.parties.models import Company, Person

MAX_PAIRS = 2000


@dataclass
class Cluster:
    score: int
    members: list[Any]
    pairs: list[DuplicatePair] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        out: list[str] = []
        for p in self.pairs:
            for r in p.reasons:
                code = r.split(":")[0]
                if code not in out:
                    out.append(code)
        return out


def _model(object_type: str) -> type[Company] | type[Person]:
    return Company if object_type == "company" else Person


def clusters(*, user: User, object_type: str, limit: int = 100) -> list[Cluster]:
    """Connected groups of open pairs whose records the user may see, highest score first."""
    model = _model(object_type)
    pairs = list(
        DuplicatePair.objects.filter(object_type=object_type, status=PairStatus.OPEN).order_by(
            "-score", "id"
        )[:MAX_PAIRS]
    )
    ids = {i for p in pairs for i in (p.a_id, p.b_id)}
    visible = {
        r.pk: r
        for r in model.objects.filter(
            scope_q(user, object_type, "view"), pk__in=ids, deleted_at__isnull=True
        ).select_related("responsible")
    }
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    kept = [p for p in pairs if p.a_id in visible and p.b_id in visible]
    for p in kept:
        parent[find(p.a_id)] = find(p.b_id)
    groups: dict[int, Cluster] = {}
    for p in kept:
        root = find(p.a_id)
        c = groups.setdefault(root, Cluster(score=0, members=[]))
        c.pairs.append(p)
        c.score = max(c.score, p.score)
        for i in (p.a_id, p.b_id):
            if visible[i] not in c.members:
                c.members.append(visible[i])
    out = sorted(groups.values(), key=lambda c: (-c.score, min(m.pk for m in c.members)))
    for c in out:
        c.members.sort(key=lambda m: m.pk)
    return out[:limit]


def pair_get(*, user: User, object_type: str, a_id: int, b_id: int) -> tuple[Any, Any]:
    """The two records of a pair if the user may see both; 404 otherwise."""
    model = _model(object_type)
    rows = {
        r.pk: r
        for r in model.objects.filter(
            scope_q(user, object_type, "view"), pk__in=[a_id, b_id], deleted_at__isnull=True
        ).select_related("responsible")
    }
    if a_id not in rows or b_id not in rows or a_id == b_id:
        raise Http404
    return rows[a_id], rows[b_id]


def merge_get(*, user: User, merge_id: int) -> MergeRecord:
    record = MergeRecord.objects.filter(pk=merge_id).first()
    if record is None:
        raise Http404
    model = _model(record.object_type)
    if not model.objects.filter(
        scope_q(user, record.object_type, "view"), pk=record.survivor_id
    ).exists():
        raise Http404
    return record


def merges(*, user: User, object_type: str) -> list[MergeRecord]:
    model = _model(object_type)
    records = list(MergeRecord.objects.filter(object_type=object_type)[:50])
    visible = set(
        model.objects.filter(
            scope_q(user, object_type, "view"), pk__in=[r.survivor_id for r in records]
        ).values_list("pk", flat=True)
    )
    return [r for r in records if r.survivor_id in visible]
