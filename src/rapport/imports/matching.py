"""Is this row a record we already have? The guard finds candidates; this decides.

The duplicate guard (``rapport.parties.duplicates.find_duplicates``) is the one
matcher: it proposes candidates by tax id, phone, email and fuzzy name. A person at a
page decides whether a candidate is the same; an import has nobody to ask, so the
decision takes evidence from both sides:

- the same email, or the same tax id for a company, is the same record (unless the
  names have nothing in common);
- two different emails, two different tax ids, or two different companies for a
  person with no shared phone or email, are different records;
- a similar name (>= 85) is the same person only with a second signal: a shared phone
  or the same company; an identical name alone only when nothing contradicts it.
  A shared phone alone never is: colleagues share a switchboard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from rapport.core.names import (
    key_similarity,
    name_block_keys,
    name_key,
    name_probe_keys,
)
from rapport.imports.normalize import RowData
from rapport.parties.duplicates import FUZZY_THRESHOLD, _may_reach
from rapport.parties.models import (
    Company,
    CompanyNameKey,
    ContactPoint,
    Employment,
    Person,
    PersonNameKey,
)

SIMILAR = 85
NAME_ONLY = 100
CANDIDATES = 10


@dataclass(slots=True)
class Known:
    id: int
    key: str
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    companies: set[int] = field(default_factory=set)
    tax_id: str = ""
    form: str = ""  # a company's legal form
    # Loaded for a chunk, ``phones``/``emails`` hold only the values the chunk's rows
    # have; this says whether the record has other emails too.
    other_emails: bool = False
    detailed: bool = True  # employments and other emails read


PENDING = 1 << 60  # ids of records a chunk creates, until they are written


def _in_parts(values: list[Any], size: int = 2000) -> Iterator[list[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


# Name blocking keys are asked for in parts of this many: with ~2,000 values in one IN
# (...), SQLite's planner (its statistics say ~150 records per company key at 1M people)
# scans the whole key table instead of seeking each key (0.16 s a part at 1.7M keys).
KEY_PART = 500


def select_in(
    model: Any,
    columns: list[str],
    column: str,
    values: list[Any],
    *,
    size: int = 2000,
    live: bool = False,
    channel: str = "",
) -> Iterator[tuple[Any, ...]]:
    """``model.objects.filter(<column>__in=values[, deleted_at=None][, channel=…])
    .values_list(*columns)`` as plain parameterised SQL, without ordering: a chunk asks
    for ~50,000 values, and the ORM's preparation of each IN parameter and each fetched
    row cost more than the queries themselves. Table and column names come from the
    model; every value is a parameter."""
    qn = connection.ops.quote_name
    meta = model._meta
    cols = ", ".join(qn(meta.get_field(c).column) for c in columns)
    where = ""
    if live:
        where += f" AND {qn(meta.get_field('deleted_at').column)} IS NULL"
    extra: list[Any] = []
    if channel:
        where += f" AND {qn(meta.get_field('channel').column)} = %s"
        extra = [channel]
    target = qn(meta.get_field(column).column)
    head = f"SELECT {cols} FROM {qn(meta.db_table)} WHERE {target}"  # noqa: S608 - names from the model
    with connection.cursor() as cur:
        for part in _in_parts(values, size):
            if connection.vendor == "postgresql":
                # one array parameter: psycopg composed a query of 2,000 "%s" anew each
                # time (~4 % of an import's process time on PostgreSQL, py-spy)
                cur.execute(f"{head} = ANY(%s){where}", [list(part), *extra])
            else:
                marks = ", ".join(["%s"] * len(part))
                cur.execute(f"{head} IN ({marks}){where}", [*part, *extra])
            yield from cur.fetchall()


def _companies(column: str, values: list[Any]) -> Iterator[Known]:
    """The live companies whose ``column`` ("id", "tax_id") is one of ``values``, as
    candidates (name, tax id, legal form)."""
    cols = ["id", "name_key", "tax_id", "legal_form"]
    for oid, key, tax_id, form in select_in(Company, cols, column, values, live=True):
        yield Known(id=oid, key=key, tax_id=tax_id, form=form or "")


class ChunkCandidates:
    """The guard's candidates for every row of a chunk, read with a few set-based queries.

    ``find`` answers what ``find_duplicates`` answers for one row (the same keys, scores
    and order) from what ``load`` read for the whole chunk: contact points by value IN
    (...), companies by tax id IN (...), name blocking keys IN (...), then the records
    with their contact points and employments. The records the chunk itself creates or
    changes are ``put`` back, so a later row of the same chunk finds them as it would
    find them in the database (rows repeating one another are merged).
    """

    def __init__(self) -> None:
        self.known: dict[str, dict[int, Known]] = {"company": {}, "person": {}}
        self.by_phone: dict[str, dict[str, set[int]]] = {"company": {}, "person": {}}
        self.by_email: dict[str, dict[str, set[int]]] = {"company": {}, "person": {}}
        self.by_block: dict[str, dict[int, set[int]]] = {"company": {}, "person": {}}
        self.by_tax: dict[str, set[int]] = {}
        self.staff: dict[str, set[int]] = {}  # phone -> people holding it (switchboards)
        # (kind, name key) -> the records a name finds, with their name scores; rows of a
        # chunk repeat names (a company on many rows), so each is scored once, until a
        # record joins or leaves one of the blocks it probes (``put``).
        self._named: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self._named_by_block: dict[tuple[str, int], set[str]] = {}

    @classmethod
    def load(cls, rows: list[RowData]) -> ChunkCandidates:
        self = cls()
        phones = sorted({p for rd in rows for p in rd.phones})
        emails = sorted({e for rd in rows for e in rd.emails})
        taxes = sorted({str(rd.company["tax_id"]) for rd in rows if rd.company.get("tax_id")})
        # A company whose tax id is in the base under a similar name is that company
        # (``company_candidates``): its row needs no name blocks. Common names are shared
        # by hundreds of companies, which the blocks would bring in for nothing.
        taxed: dict[str, list[Known]] = {}
        for company in _companies("tax_id", taxes):
            taxed.setdefault(company.tax_id, []).append(company)
        probes: dict[str, set[int]] = {"company": set(), "person": set()}
        for rd in rows:
            if rd.has_person:
                probes["person"].update(name_probe_keys(name_key(full_name(rd))))
            name = str(rd.company.get("short_name") or "")
            if name:
                key = name_key(name)
                tax_id = str(rd.company.get("tax_id") or "")
                if not any(_similarity(key, c.key) >= 50 for c in taxed.get(tax_id, ())):
                    probes["company"].update(name_probe_keys(key))
        ids: dict[str, set[int]] = {"company": set(), "person": set()}
        points: list[tuple[str, int, str, str]] = []  # (kind, id, channel, value)
        for channel, values in (("phone", phones), ("email", emails)):
            for pid, cid, value in select_in(
                ContactPoint, ["person", "company", "value"], "value", values, channel=channel
            ):
                kind, oid = ("person", pid) if pid is not None else ("company", cid)
                if oid is not None:
                    ids[kind].add(oid)
                    points.append((kind, oid, channel, value))
        ids["company"].update(c.id for same in taxed.values() for c in same)
        key_models: dict[str, Any] = {"company": CompanyNameKey, "person": PersonNameKey}
        for kind, model in key_models.items():
            found = list(
                select_in(model, ["key", kind], "key", sorted(probes[kind]), size=KEY_PART)
            )
            ids[kind].update(oid for _k, oid in found)
            self._read(kind, sorted(ids[kind]))
            known = self.known[kind]
            by_block = self.by_block[kind]
            for block, oid in found:
                if oid in known:
                    members = by_block.get(block)
                    if members is None:
                        by_block[block] = {oid}
                    else:
                        members.add(oid)
        for kind, oid, channel, value in points:
            k = self.known[kind].get(oid)
            if k is None:
                continue
            (k.phones if channel == "phone" else k.emails).add(value)
            index = self.by_phone if channel == "phone" else self.by_email
            index[kind].setdefault(value, set()).add(oid)
        for k in self.known["company"].values():
            if k.tax_id:
                self.by_tax.setdefault(k.tax_id, set()).add(k.id)
        return self

    def _read(self, kind: str, ids: list[int]) -> None:
        """Names (and tax ids, legal forms) of the live records among ``ids``."""
        model: Any = Company if kind == "company" else Person
        cols = ["id", "name_key", *(["tax_id", "legal_form"] if kind == "company" else [])]
        known = self.known[kind]
        if kind == "company":
            known.update((k.id, k) for k in _companies("id", ids))
        else:
            for oid, key in select_in(model, cols, "id", ids, live=True):
                known[oid] = Known(id=oid, key=key, detailed=False)

    def details(self, ids: set[int]) -> None:
        """Read the employments and whether they have other emails, of the people among
        ``ids`` that need them (the candidates a decision looks at), in one go."""
        todo = sorted(i for i in ids if i < PENDING and not self.known["person"][i].detailed)
        known = self.known["person"]
        for pid, cid in select_in(Employment, ["person", "company"], "person", todo):
            known[pid].companies.add(cid)
        for pid, value in select_in(
            ContactPoint, ["person", "value"], "person", todo, channel="email"
        ):
            k = known[pid]
            k.other_emails = k.other_emails or value not in k.emails
        for pid in todo:
            known[pid].detailed = True

    def put(self, kind: str, k: Known) -> None:
        """Add or replace a record (one the chunk created or changed)."""
        for phone in k.phones:
            self.by_phone[kind].setdefault(phone, set()).add(k.id)
        for email in k.emails:
            self.by_email[kind].setdefault(email, set()).add(k.id)
        old = self.known[kind].get(k.id)
        if old is None or old.key != k.key:
            blocks = name_block_keys(k.key)
            for block in blocks:
                self.by_block[kind].setdefault(block, set()).add(k.id)
            if old is not None:  # renamed: it stays in its earlier blocks, scored anew
                self._named = {n: v for n, v in self._named.items() if n[0] != kind}
            for block in blocks:  # names whose candidates a new record joins
                for cached in self._named_by_block.pop((kind, block), ()):
                    self._named.pop((kind, cached), None)
        if k.tax_id:
            self.by_tax.setdefault(k.tax_id, set()).add(k.id)
        self.known[kind][k.id] = k

    def get(self, kind: str, oid: int) -> Known | None:
        return self.known[kind].get(oid)

    def find(
        self,
        kind: str,
        *,
        name: str,
        tax_id: str = "",
        phones: list[str] = (),  # type: ignore[assignment]
        emails: list[str] = (),  # type: ignore[assignment]
        limit: int = CANDIDATES,
        details: bool = True,
    ) -> list[Known]:
        """``find_duplicates`` for one row, best first, as Known records (``details``: with
        the people's employments read; a first pass over a chunk collects them instead)."""
        known = self.known[kind]
        scores: dict[int, int] = {}
        likeness: dict[int, int] = {}  # name similarity: orders candidates of one score

        def merge(oid: int, score: int) -> None:
            old = scores.get(oid)
            # Two independent signals make a match surer than either alone.
            scores[oid] = score if old is None else min(100, max(old, score) + 5)

        if tax_id and kind == "company":
            for oid in sorted(self.by_tax.get(tax_id, ()))[:limit]:
                if known[oid].tax_id == tax_id:
                    merge(oid, 100)
        for values, index, score in (
            (phones, self.by_phone[kind], 70),
            (emails, self.by_email[kind], 95),
        ):
            for value in values:
                for oid in sorted(index.get(value, ())):
                    k = known[oid]
                    if value in k.phones or value in k.emails:
                        merge(oid, score)
        key = name_key(name)
        if key:
            for oid, sim in self._by_name(kind, key):
                merge(oid, min(sim, 90))
                likeness[oid] = sim
        # the order of ``candidate_order``: score, likeness of the names, oldest first
        best = sorted(scores.items(), key=lambda kv: (-kv[1], -likeness.get(kv[0], 0), kv[0]))
        best = best[:limit]
        if kind == "person" and details:
            self.details({oid for oid, _score in best})
        return [known[oid] for oid, _score in best]

    def _by_name(self, kind: str, key: str) -> list[tuple[int, int]]:
        """The records in the blocks ``key`` probes whose names reach the threshold, with
        the similarity of their names (``find`` scores it at most 90, as
        ``find_duplicates`` does)."""
        hit = self._named.get((kind, key))
        if hit is not None:
            return hit
        known = self.known[kind]
        out: list[tuple[int, int]] = []
        seen: set[int] = set()
        sims: dict[str, int] = {}
        probes = name_probe_keys(key)
        for probe in probes:
            for oid in self.by_block[kind].get(probe, ()):
                if oid in seen:
                    continue
                seen.add(oid)
                other = known[oid].key
                sim = sims.get(other)
                if sim is None:
                    sim = sims[other] = (
                        100
                        if other == key
                        else key_similarity(key, other)
                        if other and _may_reach(key, other, FUZZY_THRESHOLD)
                        else 0
                    )
                if sim >= FUZZY_THRESHOLD:
                    out.append((oid, sim))
        self._named[(kind, key)] = out
        for probe in probes:
            self._named_by_block.setdefault((kind, probe), set()).add(key)
        return out

    def staff_companies(self, phones: list[str], ids: list[int]) -> set[int]:
        """The companies among ``ids`` where a person has one of ``phones``."""
        out: set[int] = set()
        for phone in phones:
            for pid in self.by_phone["person"].get(phone, ()):
                k = self.known["person"][pid]
                if phone in k.phones:
                    out |= k.companies
        return out & set(ids)


def _similarity(key: str, other: str) -> int:
    if not key or not other:
        return 0
    return 100 if key == other else key_similarity(key, other)


GENERIC_FORMS = frozenset({"Co.", "Company", "شركة", "مؤسسة"})


# One legal form written in another script or language: "ООО «Ромашка»" exported in
# English is "Romashka LLC", in Latin letters "OOO Romashka"; not a second company.
SAME_FORMS: dict[str, str] = {
    **dict.fromkeys(("ООО", "OOO", "LLC", "MMC", "ذ.م.م"), "LLC"),
    **dict.fromkeys(("АО", "AO", "JSC"), "JSC"),
    **dict.fromkeys(("ОАО", "OAO", "OJSC", "ASC"), "OJSC"),
    **dict.fromkeys(("ЗАО", "ZAO", "CJSC", "QSC"), "CJSC"),
    **dict.fromkeys(("ПАО", "PAO", "PJSC"), "PJSC"),
    **dict.fromkeys(("ИП", "IP"), "IP"),
}


def form_family(legal_form: str) -> str:
    """One name per legal form, whatever its script or language ("ООО", "LLC" and "MMC" are
    "LLC", ``SAME_FORMS``); "" for none or a generic one ("Co.", "شركة")."""
    if not legal_form or legal_form in GENERIC_FORMS:
        return ""
    return SAME_FORMS.get(legal_form, legal_form)


def _form_conflict(a: str, b: str) -> bool:
    """Two specific legal forms that differ ("АО" / "ООО") make two companies; the same
    form in another script or language ("ООО" / "LLC") does not."""
    fa, fb = form_family(a), form_family(b)
    return bool(fa and fb and fa != fb)


def company_candidates(rd: RowData, found: list[Known]) -> list[Known]:
    """Of the guard's candidates (``found``, best first), the companies this row's company
    may be, best evidence first (not decided)."""
    name = str(rd.company.get("short_name") or "")
    tax_id = str(rd.company.get("tax_id") or "")
    if not name and not tax_id:
        return []
    key = name_key(name)
    form = str(rd.company.get("legal_form") or "")
    out: list[Known] = []
    for k in found:
        sim = _similarity(key, k.key)
        if tax_id and k.tax_id:
            if tax_id == k.tax_id and sim >= 50:
                return [k]  # the same tax id settles it
            continue  # two different tax ids: two companies
        if _form_conflict(form, k.form):
            continue
        if sim + (10 if _holds_contact(rd, k) else 0) >= 95:
            out.append(k)
    return out


def _holds_contact(rd: RowData, k: Known) -> bool:
    """A company row (no person on it) whose email or phone the company already has."""
    return not rd.has_person and bool(set(rd.emails) & k.emails or set(rd.phones) & k.phones)


def _by_name_alone(rd: RowData, cands: list[Known]) -> list[int]:
    """The candidates a name alone may link this row to: those of the same name, legal
    form, quotes, case and script aside ("ООО «Ромашка»" is "Romashka LLC"), and the ones
    holding the row's own email or phone. A name a letter off is another company as often
    as a typo ("Мясников" / "Мясникова"), so a similar name needs a second signal: a tax
    id, the person's employer or a shared switchboard."""
    key = name_key(str(rd.company.get("short_name") or ""))
    return [k.id for k in cands if (key and k.key == key) or _holds_contact(rd, k)]


def choose_company(
    rd: RowData,
    cands: list[Known],
    *,
    employers: set[int] | None = None,
    staff: Callable[[list[str], list[int]], set[int]],
) -> int | None:
    """One of the candidates, or None (a new company) when the evidence cannot tell.

    A company with the same tax id wins; then the one the person already works at (of
    several, the one with a tax id: the others are records an undecided row of theirs
    created); then the one whose people share this row's phone (a switchboard:
    ``staff(phones, ids)`` gives the companies among ``ids`` where someone has one of the
    phones); then the single candidate a name alone may link to (``_by_name_alone``).
    Several same-named companies and nothing to tell them apart: a new record, since
    merging two companies is worse than a duplicate the finder will show.
    """
    if not cands:
        return None
    tax_id = str(rd.company.get("tax_id") or "")
    if tax_id and len(cands) == 1 and cands[0].tax_id == tax_id:
        return cands[0].id
    ids = [k.id for k in cands]
    if employers:
        mine = [k for k in cands if k.id in employers]
        if len(mine) == 1:
            return mine[0].id
        taxed = [k.id for k in mine if k.tax_id]
        if len(taxed) == 1:
            return taxed[0]
    if rd.phones:
        via_staff = staff(rd.phones, ids) & set(ids)
        if len(via_staff) == 1:
            return via_staff.pop()
    named = _by_name_alone(rd, cands)
    if len(named) == 1:
        return named[0]
    return None


def full_name(rd: RowData) -> str:
    p = rd.person
    return " ".join(
        str(p.get(k) or "") for k in ("last_name", "first_name", "middle_name") if p.get(k)
    )


def match_person(
    rd: RowData, found: list[Known], *, company_ids: set[int] | None = None
) -> int | None:
    """The id of the existing person this row is (one of the guard's candidates
    ``found``, best first), or None.

    ``company_ids``: the companies the row's company may be (its candidates, or the one
    it was resolved to); working at one of them backs up a similar name."""
    company_ids = company_ids or set()
    key = name_key(full_name(rd))
    emails, phones = set(rd.emails), set(rd.phones)
    best: tuple[int, int] | None = None
    for k in found:
        sim = _similarity(key, k.key)
        same_email = bool(emails & k.emails)
        same_phone = bool(phones & k.phones)
        same_company = bool(company_ids & k.companies)
        if same_email:
            if sim >= 50:
                return k.id
            continue
        if emails and (k.emails or k.other_emails):
            continue  # both have emails and none is shared
        if rd.has_company and k.companies and not same_company and not same_phone:
            continue  # different employers and nothing shared
        if sim >= SIMILAR and (same_phone or same_company):
            score = sim + 5
        elif sim >= NAME_ONLY:
            score = sim
        else:
            continue
        if best is None or score > best[0]:
            best = (score, k.id)
    return best[1] if best else None
