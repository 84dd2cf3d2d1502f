"""The duplicate finder: likely duplicates across the whole base, without comparing all pairs.

Blocking first, scoring after:
- exact keys: the same email, phone or tax id (groups over ``GROUP_CAP`` records are
  skipped: a switchboard number says nothing), or the same name key (over ``NAME_CAP``:
  "Ivanov Ivan" in a big base says nothing by itself);
- sorted neighbourhood: distinct name keys in sorted order and in sorted order of their
  reversed tokens, each compared with the next ``WINDOW`` keys (a typo late or early in a
  name).
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

from rapport.core.bulk import gc_paused
from rapport.core.names import key_similarity
from rapport.dedupe.models import DuplicatePair, PairStatus
from rapport.parties.models import Company, ContactPoint, Employment, Person

MIN_SCORE = 85
WINDOW = 8
GROUP_CAP = 50  # records sharing one phone, email or tax id
# Records of one name with nothing else shared: a name held by more says nothing by itself
# (on the 1M-people bench base, 3.36M of the first 4.5M pairs a scan stored were identical
# names in groups of up to 50, told by nothing else); their duplicates share a phone or an
# email, found by those.
NAME_CAP = 5
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
    """Candidate pairs, (smaller id, larger id), each group or window read and let go in
    turn: nothing of the whole base is kept but its ids and name keys for the sorted pass.

    A pair can come twice: from two exact keys (a phone and an email) or from an exact key
    and the names; it is scored twice and stored once (``store_pairs``). The two sorted
    orders hand over each pair once, and identical names only come from the name-key
    groups, where ``NAME_CAP`` applies (thirty people called "Ivanov Ivan" are not
    duplicates of each other by their name)."""
    yield from _exact_key_pairs(object_type, since_id)
    yield from _neighbour_pairs(object_type, since_id)


def _group_pairs(members: list[int], since_id: int) -> Iterator[tuple[int, int]]:
    ids = sorted(set(members))
    for x in range(len(ids)):
        for y in range(x + 1, len(ids)):
            if ids[y] > since_id:
                yield ids[x], ids[y]


def _exact_key_pairs(object_type: str, since_id: int) -> Iterator[tuple[int, int]]:
    """Records sharing an email, a phone or a tax id (groups of 2..``GROUP_CAP``) or a name
    key (2..``NAME_CAP``)."""
    model = _model(object_type)
    live = model.objects.filter(deleted_at__isnull=True)
    owner = "company" if object_type == "company" else "person"
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
    by_channel: dict[str, list[str]] = defaultdict(list)
    for p in points:
        by_channel[p["channel"]].append(p["value"])
    for channel, values in by_channel.items():
        for i in range(0, len(values), BATCH):
            groups: dict[str, list[int]] = defaultdict(list)
            for oid, value in ContactPoint.objects.filter(
                **{f"{owner}__isnull": False},
                channel=channel,
                value__in=values[i : i + BATCH],
            ).values_list(f"{owner}_id", "value"):
                groups[value].append(oid)
            for members in groups.values():
                yield from _group_pairs(members, since_id)
    for f in ["name_key"] + (["tax_id"] if model is Company else []):
        cap = NAME_CAP if f == "name_key" else GROUP_CAP
        dupes = (
            live.exclude(**{f: ""})
            .values(f)
            .annotate(n=Count("id"))
            .filter(n__gt=1, n__lte=cap)
            .order_by()
            .values_list(f, flat=True)
        )
        values = list(dupes)
        for i in range(0, len(values), BATCH):
            groups = defaultdict(list)
            for oid, value in live.filter(**{f"{f}__in": values[i : i + BATCH]}).values_list(
                "id", f
            ):
                groups[value].append(oid)
            for members in groups.values():
                yield from _group_pairs(members, since_id)


def _reversed_tokens(key: str) -> str:
    return " ".join(reversed(key.split()))


def _neighbour_pairs(object_type: str, since_id: int) -> Iterator[tuple[int, int]]:
    """Sorted neighbourhood over the distinct name keys: each against the next ``WINDOW``
    keys in sorted order, then in the order of its reversed tokens (a typo late or early
    in a name), each pair of keys once over both orders; the records of two alike keys are
    paired when neither name is held by more than ``NAME_CAP`` records (identical names
    are the name-key groups')."""
    live = _model(object_type).objects.filter(deleted_at__isnull=True).exclude(name_key="")
    holders: dict[str, list[int]] = {}
    for oid, key in live.values_list("id", "name_key").iterator(chunk_size=BATCH * 10):
        members = holders.get(key)
        if members is None:
            holders[key] = [oid]
        elif len(members) <= NAME_CAP:  # one more says the name is too common
            members.append(oid)
    keys = sorted(holders)
    second = sorted(range(len(keys)), key=lambda i: _reversed_tokens(keys[i]))
    for n, order in enumerate((range(len(keys)), second)):
        for place, i in enumerate(order):
            mine = holders[keys[i]]
            if len(mine) > NAME_CAP:
                continue
            for j in order[place + 1 : place + 1 + WINDOW]:
                if n == 1 and abs(i - j) <= WINDOW:
                    continue  # neighbours in the first order too: paired there
                theirs = holders[keys[j]]
                if len(theirs) > NAME_CAP or fuzz.ratio(keys[i], keys[j]) < 70:
                    continue
                for a in mine:
                    for b in theirs:
                        if a > since_id or b > since_id:
                            yield (a, b) if a < b else (b, a)


def scan(object_type: str, *, progress: Callable[[int], None] | None = None) -> int:
    """Find likely duplicates over the whole base; returns the number of new pairs stored.

    Memory stays that of the base's ids and name keys (the sorted pass) plus one batch:
    a pair handed over twice is scored twice and stored once."""
    before = DuplicatePair.objects.filter(object_type=object_type).count()
    stored = 0
    batch: list[tuple[int, int]] = []
    # The sorted pass holds every record's id and key: each run of the collector's oldest
    # generation walked them (13 % of a scan of 1M people: 186 s, 161 s without). The scan
    # makes no cyclic garbage worth collecting: its peak memory was the same (345 MB).
    with gc_paused():
        for pair in _candidate_pairs(object_type):
            batch.append(pair)
            if len(batch) >= BATCH:
                stored += _score_and_store(object_type, batch)
                batch = []
                if progress:
                    progress(stored)
        if batch:
            _score_and_store(object_type, batch)
    return DuplicatePair.objects.filter(object_type=object_type).count() - before


def _score_and_store(object_type: str, pairs: list[tuple[int, int]]) -> int:
    pairs = sorted(set(pairs))  # the same pair twice in one batch is scored once
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
