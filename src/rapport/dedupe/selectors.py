"""Reads of likely duplicates: clusters of records the user may see, best first; a pair's
records side by side; merges. A record the user may not see is never shown, and a pair
with one is 404, as if it did not exist."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.scopes import scope_q
from rapport.dedupe.models import (
    DuplicatePair,
    DuplicateScan,
    MergeRecord,
    PairStatus,
    choice_fields,
)
from rapport.parties.models import Company, Person

MAX_PAIRS = 2000
SORTS = ("-score", "score")


@dataclass(frozen=True)
class Reason:
    """Why two records look like one: a code (email, phone, tax_id, name:<similarity>) and
    its label in the user's language."""

    code: str
    label: str


def reason_label(code: str) -> str:
    kind, _sep, value = code.partition(":")
    if kind == "name":
        return _("similar name %(score)s%%") % {"score": value} if value else _("similar name")
    return {
        "email": _("same email"),
        "phone": _("same phone"),
        "tax_id": _("same tax id"),
    }.get(kind, kind)


def reasons_of(codes: list[str]) -> list[Reason]:
    return [Reason(code=c, label=reason_label(c)) for c in codes]


@dataclass
class Cluster:
    """Records linked by open pairs; ``score`` is its best pair's, ``reasons`` the best
    pair's reasons and then any other kind of reason its other pairs add."""

    score: int
    members: list[Any]
    pairs: list[DuplicatePair] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)

    @property
    def reason_codes(self) -> list[str]:
        out: list[str] = []
        for p in self.pairs:
            for r in p.reasons:
                code = r.split(":")[0]
                if code not in out:
                    out.append(code)
        return out


def _cluster_reasons(pairs: list[DuplicatePair]) -> list[Reason]:
    best = max(pairs, key=lambda p: (p.score, -p.pk))
    codes = list(best.reasons)
    kinds = {c.split(":")[0] for c in codes}
    for p in pairs:
        for c in p.reasons:
            kind = c.split(":")[0]
            if kind not in kinds:
                kinds.add(kind)
                codes.append(kind)
    return reasons_of(codes)


def _model(object_type: str) -> type[Company] | type[Person]:
    if object_type not in ("company", "person"):
        raise Http404
    return Company if object_type == "company" else Person


def clusters(
    *,
    user: User,
    object_type: str,
    limit: int | None = 100,
    min_score: int = 0,
    sort: str = "-score",
) -> list[Cluster]:
    """Connected groups of open pairs whose records the user may see, highest score first
    (``sort="score"``: lowest first); pairs under ``min_score`` are left out."""
    model = _model(object_type)
    pairs = list(
        DuplicatePair.objects.filter(
            object_type=object_type, status=PairStatus.OPEN, score__gte=min_score
        ).order_by("-score", "id")[:MAX_PAIRS]
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
    sign = 1 if sort == "score" else -1
    out = sorted(groups.values(), key=lambda c: (sign * c.score, min(m.pk for m in c.members)))
    for c in out:
        c.members.sort(key=lambda m: m.pk)
        c.reasons = _cluster_reasons(c.pairs)
    return out if limit is None else out[:limit]


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


def pair_find(
    *, user: User, object_type: str, a_id: int, b_id: int, status: str | None = None
) -> DuplicatePair:
    """The stored pair of two records the user may see (in either order); 404 otherwise."""
    pair_get(user=user, object_type=object_type, a_id=a_id, b_id=b_id)
    qs = DuplicatePair.objects.filter(
        object_type=object_type, a_id=min(a_id, b_id), b_id=max(a_id, b_id)
    )
    if status:
        qs = qs.filter(status=status)
    pair = qs.first()
    if pair is None:
        raise Http404
    return pair


@dataclass
class FieldRow:
    """One field of both records: their values as shown, and whether they differ (a choice)."""

    name: str
    label: str
    a: str
    b: str
    differ: bool


@dataclass
class PairDetail:
    object_type: str
    a: Any
    b: Any
    pair: DuplicatePair | None
    fields: list[FieldRow]
    # Contact details are not chosen: the survivor keeps its own and gains the other's.
    phones: tuple[list[str], list[str]]
    emails: tuple[list[str], list[str]]

    @property
    def score(self) -> int | None:
        return self.pair.score if self.pair else None

    @property
    def reasons(self) -> list[Reason]:
        return reasons_of(list(self.pair.reasons)) if self.pair else []


def _shown(obj: Any, name: str) -> str:
    value = getattr(obj, name)
    if value in (None, ""):
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def pair_detail(*, user: User, object_type: str, a_id: int, b_id: int) -> PairDetail:
    """Both records field by field (the merge page and the API show the same); 404 unless
    the user may see both."""
    a, b = pair_get(user=user, object_type=object_type, a_id=a_id, b_id=b_id)
    fields = []
    for name in choice_fields(object_type):
        va, vb = _shown(a, name), _shown(b, name)
        label = str(type(a)._meta.get_field(name).verbose_name)
        fields.append(FieldRow(name=name, label=label, a=va, b=vb, differ=va != vb))
    points: dict[int, dict[str, list[str]]] = {
        a.pk: {"phone": [], "email": []},
        b.pk: {"phone": [], "email": []},
    }
    for obj in (a, b):
        for p in obj.contact_points.all():
            if p.channel in ("phone", "email"):
                points[obj.pk][p.channel].append(p.value or p.raw)
    pair = DuplicatePair.objects.filter(
        object_type=object_type, a_id=min(a.pk, b.pk), b_id=max(a.pk, b.pk)
    ).first()
    return PairDetail(
        object_type=object_type,
        a=a,
        b=b,
        pair=pair,
        fields=fields,
        phones=(points[a.pk]["phone"], points[b.pk]["phone"]),
        emails=(points[a.pk]["email"], points[b.pk]["email"]),
    )


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


def merges(*, user: User, object_type: str, limit: int = 50) -> list[MergeRecord]:
    """The latest merges whose surviving record the user may see."""
    model = _model(object_type)
    records = list(
        MergeRecord.objects.filter(object_type=object_type).select_related("actor")[:limit]
    )
    visible = set(
        model.objects.filter(
            scope_q(user, object_type, "view"), pk__in=[r.survivor_id for r in records]
        ).values_list("pk", flat=True)
    )
    return [r for r in records if r.survivor_id in visible]


def scan_get(*, user: User, scan_id: int) -> DuplicateScan:
    """A scan of the whole base: administrators only (it covers every record)."""
    scan = DuplicateScan.objects.filter(pk=scan_id).first() if user.is_rapport_admin else None
    if scan is None:
        raise Http404
    return scan
