"""After an import's rows: which company each row names, decided again over every import.

Row by row (``matching.choose_company``) a row without a tax id naming a company the base
holds once is linked to it by the name alone, and with several of that name gets a record
of its own. Later rows, of the same file or of a later import, may show either guess wrong:
another company of that name comes with another tax id (the guess was one of two), or the
same person or switchboard comes back with the tax id (the record of its own is that
company). So when a run's rows are written, every name it brought is decided again over
the evidence of all imports not undone (each report line keeps the name's key and the tax
id it gave), with the rule the rows would get if they all came at once:

- rows with the same tax id, of the same person, or sharing a phone (a switchboard) name
  the same company, never one with two tax ids; a company of that name known by its tax id
  joins the rows giving it;
- the rest (no tax id, nothing shared) name the one company of that name known by its tax
  id, when there is exactly one; all one company when none is known by a tax id; with
  several, each stays apart (a duplicate to review beats two companies merged).

The records then follow: rows move (their people's employments and report lines) to the
record chosen for their company; a record the import created and left without rows is
merged into the one they went to (``dedupe.merge``, undoable, audited); a company split off
with no record left for it gets a new one. Each step is logged on the run
(``ImportRun.review``) and taken back first when the run is undone (``review_undo``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.imports.matching import form_family, select_in
from rapport.imports.models import ImportRow, ImportRun, RunStatus
from rapport.parties import services as parties
from rapport.parties.models import Company, Employment, Person

KEYS_PER_QUERY = 500


@dataclass(slots=True)
class _Line:
    id: int
    tax_id: str
    person_id: int | None
    company_id: int
    phones: list[str]
    created: bool  # this line's row created its company
    form: str = ""  # the legal form of its company, one spelling per form ("" for none)


@dataclass
class _Group:
    """The evidence of one name: report lines and the companies of that name with a tax id."""

    lines: list[_Line] = field(default_factory=list)
    taxed: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (tax id, form)


class _Clusters:
    """Union-find over a group's lines and taxed companies; a set never holds two tax ids
    nor two legal forms ("АО Ромашка" and "ООО Ромашка" are two companies)."""

    def __init__(self, group: _Group) -> None:
        self.lines = group.lines
        self.companies = sorted(group.taxed)
        n = len(self.lines)
        self.parent = list(range(n + len(self.companies)))
        self.tax: list[set[str]] = [{x.tax_id} if x.tax_id else set() for x in self.lines]
        self.tax += [{group.taxed[c][0]} for c in self.companies]
        self.forms: list[set[str]] = [{x.form} - {""} for x in self.lines]
        self.forms += [{group.taxed[c][1]} - {""} for c in self.companies]

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or len(self.tax[ra] | self.tax[rb]) > 1:
            return
        if len(self.forms[ra] | self.forms[rb]) > 1:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.tax[ra] |= self.tax[rb]
        self.forms[ra] |= self.forms[rb]

    def link(self, keys: Iterator[tuple[Any, int]]) -> None:
        first: dict[Any, int] = {}
        for key, i in keys:
            if key in first:
                self.union(first[key], i)
            else:
                first[key] = i

    def solve(self) -> list[list[int]]:
        """The sets of node indices (lines, then companies at ``len(lines) + k``)."""
        n = len(self.lines)
        taxes = (
            *((x.tax_id, i) for i, x in enumerate(self.lines) if x.tax_id),
            *((next(iter(self.tax[n + k])), n + k) for k in range(len(self.companies))),
        )
        self.link(iter(taxes))
        self.link((x.person_id, i) for i, x in enumerate(self.lines) if x.person_id)
        self.link((p, i) for i, x in enumerate(self.lines) for p in x.phones)
        roots = sorted({self.find(i) for i in range(len(self.parent))})
        taxed = [r for r in roots if self.tax[r]]
        untaxed = [r for r in roots if not self.tax[r]]
        lone: list[int] = []
        for r in untaxed:
            fits = [t for t in taxed if not self.forms[r] or self.forms[t] <= self.forms[r]]
            if len(fits) == 1:
                self.union(fits[0], r)
            elif not fits:
                lone.append(r)
        for r in lone[1:]:  # none known by a tax id: one company (a form apart)
            self.union(lone[0], self.find(r))
        sets: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            sets.setdefault(self.find(i), []).append(i)
        return list(sets.values())


def _groups(keys: list[str]) -> dict[str, _Group]:
    """The evidence of the names ``keys``: lines of imports not undone whose company is live."""
    groups: dict[str, _Group] = {k: _Group() for k in keys}
    rows = list(
        ImportRow.objects.filter(company_key__in=keys, company_id__isnull=False)
        .exclude(company_key="")  # the index's condition, so that it is used
        .exclude(run__status=RunStatus.UNDONE)
        .order_by("id")
        .values_list("id", "company_key", "company_tax_id", "person_id", "company_id", "phones")
    )
    # in parts: one name can have more lines than SQLite takes parameters
    ids = sorted({r[4] for r in rows if r[4] is not None})
    live = {
        pk: form_family(form)
        for pk, form in select_in(Company, ["id", "legal_form"], "id", ids, live=True)
    }
    created = _created(sorted({r[0] for r in rows}))
    for lid, key, tax_id, pid, cid, phones in rows:
        if cid is not None and cid in live:
            groups[key].lines.append(
                _Line(lid, tax_id, pid, cid, list(phones or []), (lid, cid) in created, live[cid])
            )
    # A name whose rows all give a tax id, each tax id's rows in one record, is settled:
    # nothing would move. The others need the companies of that name known by a tax id.
    unsettled = sorted(k for k, g in groups.items() if g.lines and not _settled(g))
    for part in range(0, len(unsettled), KEYS_PER_QUERY):
        taxed = Company.objects.filter(
            name_key__in=unsettled[part : part + KEYS_PER_QUERY], deleted_at=None
        ).exclude(tax_id="")
        for cid, key, tax_id, form in taxed.values_list("pk", "name_key", "tax_id", "legal_form"):
            groups[key].taxed[cid] = (tax_id, form_family(form))
    return {k: groups[k] for k in unsettled}


def _settled(group: _Group) -> bool:
    records: dict[str, int] = {}
    for x in group.lines:
        if not x.tax_id or records.setdefault(x.tax_id, x.company_id) != x.company_id:
            return False
    return True


def _created(line_ids: list[int]) -> set[tuple[int, int]]:
    """(line, company) for the lines among ``line_ids`` whose row created the company."""
    out: set[tuple[int, int]] = set()
    for lid, changes in select_in(ImportRow, ["id", "changes"], "id", line_ids):
        if isinstance(changes, str):  # plain SQL: the JSON as stored
            changes = json.loads(changes)
        for ch in changes or []:
            if ch.get("type") == "company" and ch.get("action") == "create":
                out.add((lid, int(ch["id"])))
    return out


@dataclass
class _Plan:
    moves: dict[int, int] = field(default_factory=dict)  # line id -> company it goes to
    new: list[list[_Line]] = field(default_factory=list)  # sets with no record to go to


def _plan(group: _Group, taxes: dict[int, str]) -> _Plan:
    """Which record each line's company is (``taxes``: the current records' tax ids)."""
    clusters = _Clusters(group)
    sets = clusters.solve()
    n = len(group.lines)
    # Sets holding a company known by its tax id go first: that company is theirs.
    sets.sort(key=lambda s: (not any(i >= n for i in s), -len(s), s[0]))
    plan, taken = _Plan(), set[int]()
    for members in sets:
        lines = [group.lines[i] for i in members if i < n]
        own = sorted(clusters.companies[i - n] for i in members if i >= n)
        if not lines:
            taken.update(own)
            continue
        tax = next(iter(clusters.tax[clusters.find(members[0])]), "")
        target = own[0] if own else None
        if target is None:
            counts = Counter(x.company_id for x in lines)
            for cid, _n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                if cid not in taken and taxes.get(cid, "") in ("", tax):
                    target = cid
                    break
        if target is None:
            plan.new.append(lines)
            continue
        taken.add(target)
        for x in lines:
            if x.company_id != target:
                plan.moves[x.id] = target
    return plan


class _Log:
    def __init__(self, run: ImportRun) -> None:
        self.run = run
        self.ops: list[dict[str, Any]] = list(run.review or [])

    def add(self, **op: Any) -> None:
        self.ops.append(op)

    def save(self) -> None:
        ImportRun.objects.filter(pk=self.run.pk).update(review=self.ops)
        self.run.review = self.ops


# Two imports finishing together would each decide a shared name over what the other is
# moving and merging; the later one's transaction could fail on the records the first changed
# (its run left "failed", to be resumed). On PostgreSQL a transaction-level advisory lock
# makes one review (or the undo of one) wait for the other; SQLite writers already take turns.
REVIEW_LOCK = 0x52415056  # "RAPV"


def _one_review_at_a_time() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [REVIEW_LOCK])


def review_companies(run: ImportRun, actor: User | None) -> int:
    """Decide again the companies of the names ``run`` brought (see the module); call inside
    the transaction that finishes the run. How many report lines changed company."""
    from rapport.dedupe import services as dedupe

    _one_review_at_a_time()

    keys = sorted(
        set(run.rows.exclude(company_key="").values_list("company_key", flat=True).distinct())
    )
    log = _Log(run)
    changed = 0
    for start in range(0, len(keys), KEYS_PER_QUERY):
        groups = _groups(keys[start : start + KEYS_PER_QUERY])
        current = sorted({x.company_id for g in groups.values() for x in g.lines})
        taxes = dict(select_in(Company, ["id", "tax_id"], "id", current))
        for group in groups.values():
            if not group.lines:
                continue
            plan = _plan(group, taxes)
            if not plan.moves and not plan.new:
                continue
            for lines in plan.new:
                template = Company.objects.get(pk=lines[0].company_id)
                tax = next((x.tax_id for x in lines if x.tax_id), "")
                company = parties.company_create(
                    actor=actor,
                    data={
                        "short_name": template.short_name,
                        "full_name": template.full_name,
                        "legal_form": template.legal_form,
                        "tax_id": tax,
                        "country": template.country,
                    },
                    force=True,
                )
                log.add(op="company", id=company.pk)
                taxes[company.pk] = tax
                plan.moves.update((x.id, company.pk) for x in lines)
            changed += _apply(group, plan.moves, log, actor, dedupe)
    if len(log.ops) != len(run.review or []):
        log.save()
    return changed


def _apply(group: _Group, moves: dict[int, int], log: _Log, actor: User | None, dedupe: Any) -> int:
    live = {
        pk for (pk,) in select_in(Company, ["id"], "id", sorted(set(moves.values())), live=True)
    }
    moves = {lid: cid for lid, cid in moves.items() if cid in live}
    moved = len(moves)
    by_record: dict[int, list[_Line]] = {}
    for x in group.lines:
        by_record.setdefault(x.company_id, []).append(x)
    for source, lines in sorted(by_record.items()):
        going = [x for x in lines if x.id in moves]
        if not going:
            continue
        targets = {moves[x.id] for x in going}
        if len(going) == len(lines) and len(targets) == 1 and any(x.created for x in lines):
            # A record the import created, with all its rows going to one company: merged
            # into it (everything else pointing at it moves too; the merge is undoable).
            target = targets.pop()
            record = dedupe.merge(
                actor=None, object_type="company", survivor_id=target, merged_id=source
            )
            log.add(op="merge", id=record.pk)
            # Rows of other names on it (a spelling linked by tax id or person) follow.
            mine = {x.id for x in going}
            others = ImportRow.objects.filter(company_id=source).exclude(pk__in=mine)
            for lid in others.values_list("pk", flat=True):
                ImportRow.objects.filter(pk=lid).update(company_id=target)
                log.add(op="line", id=lid, company=source)
                moved += 1
        else:
            people = {x.person_id for x in going if x.person_id}
            for pid in sorted(people):
                target = next(moves[x.id] for x in going if x.person_id == pid)
                _move_job(pid, source, target, log)
        for x in going:
            ImportRow.objects.filter(pk=x.id).update(company_id=moves[x.id])
            log.add(op="line", id=x.id, company=source)
    return moved


def _move_job(person_id: int, source: int, target: int, log: _Log) -> None:
    job = Employment.objects.filter(person_id=person_id, company_id=source).first()
    if job is None:
        return
    if Employment.objects.filter(person_id=person_id, company_id=target).exists():
        data = {
            "person_id": person_id,
            "company_id": source,
            "position": job.position,
            "role": job.role,
            "is_current": job.is_current,
        }
        job.delete()
        log.add(op="job_dropped", id=job.pk, data=data)
    else:
        Employment.objects.filter(pk=job.pk).update(company_id=target)
        log.add(op="job", id=job.pk, company=source)
    person = Person.objects.filter(pk=person_id).first()
    if person is not None:
        parties._reindex(person)  # noqa: SLF001  (its subtitle names the company)


def review_undo(run: ImportRun, actor: User | None) -> list[str]:
    """Take back what the review of ``run`` changed; what could not be.

    Merges first (last first): a merge that cannot be undone (its survivor changed since)
    keeps its rows' report lines on the survivor. Then the moved rows and employments, then
    the companies the review made, once nothing points at them."""
    from rapport.dedupe import services as dedupe
    from rapport.dedupe.models import MergeRecord

    _one_review_at_a_time()
    kept: list[str] = []
    people: set[int] = set()
    ops = list(reversed(run.review or []))
    merged_away: set[int] = set()  # records whose merge stays
    for op in ops:
        if op["op"] != "merge":
            continue
        record = MergeRecord.objects.filter(pk=op["id"], undone_at=None).first()
        if record is None:
            continue
        try:
            dedupe.merge_undo(actor=None, record=record)
        except (StaleVersion, FieldErrors, PermissionDenied):
            merged_away.add(record.merged_id)
            kept.append(
                _(
                    "Company %(id)s was changed after the import merged another into it; "
                    "the merge is kept."
                )
                % {"id": record.survivor_id}
            )
    for op in ops:
        kind = op["op"]
        if kind == "line" and op["company"] not in merged_away:
            ImportRow.objects.filter(pk=op["id"]).update(company_id=op["company"])
        elif kind == "job":
            job = Employment.objects.filter(pk=op["id"]).first()
            if job is not None:
                Employment.objects.filter(pk=job.pk).update(company_id=op["company"])
                people.add(job.person_id)
        elif kind == "job_dropped":
            data = op["data"]
            if not Employment.objects.filter(
                person_id=data["person_id"], company_id=data["company_id"]
            ).exists():
                Employment.objects.create(pk=op["id"], **data)
                people.add(data["person_id"])
    for op in ops:
        if op["op"] != "company":
            continue
        company = Company.objects.filter(pk=op["id"]).first()
        if company is not None:
            refused = parties.parties_purge(
                actor=actor, object_type="company", objs=[company], reason=f"import {run.pk} undone"
            )
            kept.extend(refused.values())
    for person in Person.objects.filter(pk__in=people):
        parties._reindex(person)  # noqa: SLF001
    ImportRun.objects.filter(pk=run.pk).update(review=[])
    run.review = []
    return kept
