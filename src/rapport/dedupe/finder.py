"""The duplicate finder: likely duplicates across the whole base, without comparing all pairs.

Blocking first, scoring after:
- exact keys: the same email, phone or tax id, or the same name key (groups over 50
  records are skipped: a switchboard number or "Ivanov Ivan" in a big base says nothing);
- sorted neighbourhood: name keys in sorted order and in sorted order of their reversed
  tokens, each compared with the next ``WINDOW`` keys (a typo late or early in a name).
Each candidate pair is scored from both records' evidence (``pair_score``); pairs at or
above ``MIN_SCORE`` are stored for review. New records are checked as they are created
(``handlers``), through the duplicate guard's own candidates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from rapidfuzz import fuzz

from rapport.core.names import key_similarity
from rapport.dedupe.models import DuplicatePair, PairStatus
from rapport.parties.models import Company, ContactPoint, Employment, Person

MIN_SCORE = 85
WINDOW = 8
GROUP_CAP = 50
BATCH = 2000


def _model(object_type: str) -> type[Company] | type[Person]:
    return Company if object_type == "company" else Person


@dataclass
class Known:
    """A saved record's evidence: name key, phones, emails, employers, tax id."""

    id: int
    key: str
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    companies: set[int] = field(default_factory=set)
    tax_id: str = ""


def known_records(model: type[Company] | type[Person], ids: list[int]) -> list[Known]:
    """The evidence of live records, in the order of ``ids`` (three queries for any number)."""
    if not ids:
        return []
    owner = "company" if model is Company else "person"
    rows = model.objects.filter(id__in=ids, deleted_at__isnull=True).values_list(
        "id", "name_key", *(["tax_id"] if model is Company else [])
    )
    out = {r[0]: Known(id=r[0], key=r[1], tax_id=r[2] if model is Company else "") for r in rows}
    points = ContactPoint.objects.filter(**{f"{owner}_id__in": list(out)}).values_list(
        f"{owner}_id", "channel", "value"
    )
    for oid, channel, value in points:
        if not value:
            continue
        if channel == "phone":
            out[oid].phones.add(value)
        elif channel == "email":
            out[oid].emails.add(value)
    if model is Person:
        for pid, cid in Employment.objects.filter(person_id__in=list(out)).values_list(
            "person_id", "company_id"
        ):
            out[pid].companies.add(cid)
    return [out[i] for i in ids if i in out]


def pair_score(a: Known, b: Known) -> tuple[int, list[str]]:
    """0..100 and the reasons: how sure it is that two records are one."""
    reasons: list[str] = []
    sim = (
        100
        if a.key and a.key == b.key
        else (key_similarity(a.key, b.key) if a.key and b.key else 0)
    )
    if a.tax_id and b.tax_id:
        if a.tax_id != b.tax_id:
            return 0, []
        reasons.append("tax_id")
    if a.emails & b.emails:
        reasons.append("email")
    elif a.emails and b.emails and not a.tax_id:
        sim = min(sim, 80)  # two people with different emails are rarely one
    if a.phones & b.phones:
        reasons.append("phone")
    if sim >= 60:
        reasons.append(f"name:{sim}")
    if "tax_id" in reasons:
        score = 100
    elif "email" in reasons and sim >= 50:
        score = 95
    elif sim >= MIN_SCORE:
        score = min(sim, 90) + (5 if "phone" in reasons else 0)
    elif "phone" in reasons and sim >= 70:
        score = 85
    else:
        score = 0
    return min(score, 100), reasons


def _candidate_pairs(object_type: str, since_id: int = 0) -> Iterator[tuple[int, int]]:
    model = _model(object_type)
    live = model.objects.filter(deleted_at__isnull=True)
    owner = "company" if object_type == "company" else "person"
    # Exact keys.
    points = (
        ContactPoint.objects.filter(
            **{f"{owner}__isnull": False, f"{owner}__deleted_at__isnull": True}
        )
        .exclude(value="")
        .values("channel", "value")
        .annotate(n=Count(f"{owner}_id", distinct=True))
        .filter(n__gt=1, n__lte=GROUP_CAP)
        .order_by()
    )
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_channel: dict[str, list[str]] = defaultdict(list)
    for p in points:
        by_channel[p["channel"]].append(p["value"])
    for channel, values in by_channel.items():
        for i in range(0, len(values), BATCH):
            for oid, value in ContactPoint.objects.filter(
                **{f"{owner}__isnull": False},
                channel=channel,
                value__in=values[i : i + BATCH],
            ).values_list(f"{owner}_id", "value"):
                groups[(channel, value)].append(oid)
    field_groups = ["name_key"] + (["tax_id"] if model is Company else [])
    for f in field_groups:
        dupes = (
            live.exclude(**{f: ""})
            .values(f)
            .annotate(n=Count("id"))
            .filter(n__gt=1, n__lte=GROUP_CAP)
            .order_by()
            .values_list(f, flat=True)
        )
        values = list(dupes)
        for i in range(0, len(values), BATCH):
            for oid, value in live.filter(**{f"{f}__in": values[i : i + BATCH]}).values_list(
                "id", f
            ):
                groups[(f, value)].append(oid)
    for members in groups.values():
        ids = sorted(set(members))
        for x in range(len(ids)):
            for y in range(x + 1, len(ids)):
                if ids[y] > since_id:
                    yield ids[x], ids[y]
    # Sorted neighbourhood on the name key and on its reversed tokens.
    rows = list(live.exclude(name_key="").values_list("id", "name_key"))
    for order in (lambda r: r[1], lambda r: " ".join(reversed(r[1].split()))):
        rows.sort(key=order)
        for i, (oid, key) in enumerate(rows):
            for other, okey in rows[i + 1 : i + 1 + WINDOW]:
                if (oid > since_id or other > since_id) and fuzz.ratio(key, okey) >= 70:
                    yield (oid, other) if oid < other else (other, oid)


def scan(object_type: str, *, progress: Callable[[int], None] | None = None) -> int:
    """Find likely duplicates over the whole base; returns the number of pairs stored."""
    # Pairs already taken, packed into one int each (a tuple of two ints costs ~3× the
    # memory: ~5M candidate pairs at 1M people).
    seen: set[int] = set()
    found = 0
    batch: list[tuple[int, int]] = []
    for pair in _candidate_pairs(object_type):
        packed = pair[0] << 40 | pair[1]  # ids below 2**40
        if packed in seen:
            continue
        seen.add(packed)
        batch.append(pair)
        if len(batch) >= BATCH:
            found += _score_and_store(object_type, batch)
            batch = []
            if progress:
                progress(found)
    if batch:
        found += _score_and_store(object_type, batch)
    return found


def _score_and_store(object_type: str, pairs: list[tuple[int, int]]) -> int:
    ids = sorted({i for p in pairs for i in p})
    known = {k.id: k for k in known_records(_model(object_type), ids)}
    rows: list[DuplicatePair] = []
    for a, b in pairs:
        if a not in known or b not in known:
            continue
        score, reasons = pair_score(known[a], known[b])
        if score >= MIN_SCORE:
            rows.append(
                DuplicatePair(object_type=object_type, a_id=a, b_id=b, score=score, reasons=reasons)
            )
    return store_pairs(rows)


def store_pairs(rows: Iterable[DuplicatePair]) -> int:
    """Insert new pairs; a pair already judged (dismissed, merged) keeps its status."""
    rows = list(rows)
    if not rows:
        return 0
    with transaction.atomic():
        DuplicatePair.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def check_record(object_type: str, record_id: int) -> int:
    """Pairs for one new or changed record, through the duplicate guard's candidates."""
    from rapport.parties.duplicates import find_duplicates

    model = _model(object_type)
    known = known_records(model, [record_id])
    if not known:
        return 0
    me = known[0]
    obj = model.objects.get(pk=record_id)
    cands = find_duplicates(
        object_type=object_type,
        name=str(obj),
        tax_id=me.tax_id,
        phones=sorted(me.phones),
        emails=sorted(me.emails),
        exclude_id=record_id,
        limit=20,
    )
    others = {k.id: k for k in known_records(model, [c.object_id for c in cands])}
    rows = []
    for oid, other in others.items():
        score, reasons = pair_score(me, other)
        if score >= MIN_SCORE:
            a, b = sorted((record_id, oid))
            rows.append(
                DuplicatePair(object_type=object_type, a_id=a, b_id=b, score=score, reasons=reasons)
            )
    return store_pairs(rows)


def open_pairs_of(object_type: str, record_id: int) -> Any:
    return DuplicatePair.objects.filter(
        Q(a_id=record_id) | Q(b_id=record_id), object_type=object_type, status=PairStatus.OPEN
    )
