"""The import pipeline: one for the wizard, the API and ``rapport import``.

A run goes: file stored and sniffed → header row and mapping (detected, then adjusted)
→ every row normalised and validated (nothing written; a row with errors refuses the
run unless "valid rows only") → rows written in chunks through the directory
services, each chunk in one transaction together with its report lines and the
checkpoint (``rows_done``) → done. A worker killed mid-chunk loses only that chunk's
uncommitted work: the run is marked failed and resumes after the checkpoint. Undo
walks the report backwards: records the run created are purged, records it updated
get their previous values back — each only if nobody changed it since.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.bulk import gc_paused, objects_insert
from rapport.core.emails import normalize_email
from rapport.core.errors import FieldErrors, PermissionDenied, ServiceError, StaleVersion
from rapport.core.events import event_record
from rapport.core.names import name_key
from rapport.core.ownership import resolve_responsible
from rapport.core.phones import parse_phones
from rapport.core.scopes import scope_allows
from rapport.imports import mapping as mapping_mod
from rapport.imports.matching import (
    PENDING,
    ChunkCandidates,
    Known,
    choose_company,
    company_candidates,
    full_name,
    match_person,
)
from rapport.imports.models import (
    ImportRow,
    ImportRun,
    MappingPreset,
    OnDuplicate,
    Outcome,
    RunStatus,
    Target,
)
from rapport.imports.normalize import PhoneMemo, RowData, normalize_row
from rapport.imports.readers import (
    HEADER_SCAN_ROWS,
    MAX_COLUMNS,
    ImportFileError,
    is_empty,
    iter_rows,
    sniff,
)
from rapport.imports.review import review_companies, review_undo
from rapport.parties import services as parties
from rapport.parties.models import Company, Person

CHUNK_ROWS = 1000  # rows per transaction (reliability.md: ~1,000-row chunks)
PREVIEW_ROWS = 20
# A preview tries this many rows against the base (the write lock is held meanwhile on SQLite);
# the rest of the file is only checked for errors.
PREVIEW_SAMPLE = 500


def _import_dir() -> Path:
    path = Path(settings.MEDIA_ROOT) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_target(actor: User | None, target: str) -> None:
    if target not in Target.values:
        raise FieldErrors.single("target", _("Choose what to import: people or companies."))
    object_type = "person" if target == Target.PEOPLE else "company"
    if actor is not None and not scope_allows(
        actor, object_type, "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("Your role may not create these records."))


# --- a new run --------------------------------------------------------------------------------


def run_create(
    *,
    actor: User | None,
    source: Path,
    file_name: str,
    target: str,
    default_region: str = "",
    copy: bool = True,
) -> ImportRun:
    """Store the file, find its format, header row and a first mapping."""
    _check_target(actor, target)
    region = (default_region or settings.DEFAULT_PHONE_REGION).upper()
    if len(region) != 2 or not region.isalpha():
        raise FieldErrors.single("default_region", _("Enter a two-letter country code."))
    size = source.stat().st_size
    limit = int(settings.IMPORT_MAX_MB) * 1024 * 1024
    if size > limit:
        raise FieldErrors.single(
            "file",
            _("The file is %(size)s MB; an import takes at most %(limit)s MB. Split it.")
            % {"size": size // (1024 * 1024), "limit": settings.IMPORT_MAX_MB},
        )
    try:
        info = sniff(source, file_name)
    except ImportFileError as exc:
        raise FieldErrors.single("file", str(exc)) from exc
    stored = source
    if copy:
        stored = _import_dir() / f"{uuid.uuid4().hex}{Path(file_name).suffix.lower()}"
        shutil.copyfile(source, stored)
    digest = hashlib.sha256()
    with stored.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    run = ImportRun(
        created_by=actor if actor and actor.pk else None,
        target=target,
        file_name=Path(file_name).name[:255],
        file_path=str(stored),
        file_size=size,
        file_sha256=digest.hexdigest(),
        file_format=info.format,
        encoding=info.encoding,
        delimiter=info.delimiter,
        sheet=info.sheets[0] if info.sheets else "",
        default_region=region,
        responsible=actor if actor and actor.pk else None,
    )
    _read_header(run, header_row=None)
    run.save()
    return run


def _head(run: ImportRun) -> list[list[str]]:
    info = sniff(Path(run.file_path), run.file_name)
    rows: list[list[str]] = []
    for row in iter_rows(Path(run.file_path), info, run.sheet):
        rows.append(row)
        if len(rows) >= HEADER_SCAN_ROWS:
            break
    return rows


def _read_header(run: ImportRun, header_row: int | None) -> None:
    try:
        head = _head(run)
    except ImportFileError as exc:
        raise FieldErrors.single("file", str(exc)) from exc
    if all(is_empty(r) for r in head):
        raise FieldErrors.single("file", _("The sheet is empty."))
    run.header_row = header_row or mapping_mod.detect_header_row(head, run.target)
    if run.header_row > len(head):
        raise FieldErrors.single(
            "header_row",
            _("The header row must be one of the first %(n)s rows.") % {"n": len(head)},
        )
    headers = [h.strip() for h in head[run.header_row - 1]]
    if len(headers) > MAX_COLUMNS:
        raise FieldErrors.single(
            "file",
            _("The header has %(n)s columns; an import reads at most %(max)s.")
            % {"n": len(headers), "max": MAX_COLUMNS},
        )
    run.headers = headers
    preset = MappingPreset.objects.filter(
        signature=mapping_mod.signature(headers, run.target), target=run.target
    ).first()
    run.mapping = list(preset.mapping) if preset else mapping_mod.auto_map(headers, run.target)


@transaction.atomic
def run_configure(
    *,
    actor: User | None,
    run: ImportRun,
    sheet: str | None = None,
    header_row: int | None = None,
    mapping: list[str] | None = None,
    preset: str | None = None,
    save_preset: str = "",
    on_duplicate: str | None = None,
    valid_rows_only: bool | None = None,
    default_region: str | None = None,
    responsible_id: int | None = None,
) -> ImportRun:
    """Change what the wizard shows before the run starts; a changed header re-maps."""
    run = ImportRun.objects.select_for_update().get(pk=run.pk)
    if run.status not in (RunStatus.DRAFT, RunStatus.INVALID):
        raise FieldErrors.single("status", _("This import has already started."))
    errors: dict[str, list[str]] = {}
    if sheet is not None and sheet != run.sheet:
        run.sheet = sheet
        header_row = header_row or 0
    if header_row is not None:
        try:
            _read_header(run, header_row or None)
        except FieldErrors as exc:
            errors.update(exc.errors)
    if preset:
        found = MappingPreset.objects.filter(name=preset, target=run.target).first()
        if found is None:
            errors["preset"] = [_("No saved mapping named “%(name)s”.") % {"name": preset}]
        else:
            mapping = list(found.mapping)
    if mapping is not None:
        mapping = [str(m or "") for m in mapping][: len(run.headers)]
        mapping += [""] * (len(run.headers) - len(mapping))
        errors.update(mapping_mod.validate_mapping(mapping, run.headers, run.target))
        run.mapping = mapping
    if on_duplicate is not None:
        if on_duplicate not in OnDuplicate.values:
            errors["on_duplicate"] = [_("Choose skip, update, overwrite or create.")]
        else:
            run.on_duplicate = on_duplicate
    if valid_rows_only is not None:
        run.valid_rows_only = bool(valid_rows_only)
    if default_region is not None:
        region = default_region.strip().upper()
        if len(region) != 2 or not region.isalpha():
            errors["default_region"] = [_("Enter a two-letter country code.")]
        else:
            run.default_region = region
    if responsible_id is not None:
        object_type = "person" if run.target == Target.PEOPLE else "company"
        run.responsible = resolve_responsible(actor, object_type, responsible_id, errors)
    if errors:
        raise FieldErrors(errors)
    if save_preset.strip():
        MappingPreset.objects.update_or_create(
            name=save_preset.strip()[:100],
            target=run.target,
            defaults={
                "signature": mapping_mod.signature(run.headers, run.target),
                "headers": run.headers,
                "mapping": run.mapping,
                "created_by": actor if actor and actor.pk else None,
            },
        )
    run.status = RunStatus.DRAFT
    run.save()
    return run


# --- reading rows -----------------------------------------------------------------------------


def data_rows(run: ImportRun) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cells) of every row below the header."""
    path = Path(run.file_path)
    info = sniff(path, run.file_name)
    for number, row in enumerate(iter_rows(path, info, run.sheet), start=1):
        if number > run.header_row:
            yield number, row


def _normalized(
    run: ImportRun, number: int, cells: list[str], phones: PhoneMemo | None = None
) -> RowData:
    return normalize_row(
        row_number=number,
        cells=cells,
        mapping=run.mapping,
        target=run.target,
        default_region=run.default_region,
        parse=phones or parse_phones,
    )


@dataclass
class Validation:
    total: int = 0
    empty: int = 0
    invalid: list[RowData] = field(default_factory=list)


def run_validate(run: ImportRun, *, keep: int = 1000) -> Validation:
    """Every row normalised, nothing written: the rows with errors (the first ``keep``)."""
    errors = mapping_mod.validate_mapping(run.mapping, run.headers, run.target)
    if errors:
        raise FieldErrors(errors)
    result = Validation()
    for number, cells in data_rows(run):
        rd = _normalized(run, number, cells)
        if rd.empty:
            result.empty += 1
            continue
        result.total += 1
        if rd.errors and len(result.invalid) < keep:
            result.invalid.append(rd)
        elif rd.errors:
            result.invalid.append(RowData(row_number=number, errors=rd.errors))
    return result


# --- writing one row --------------------------------------------------------------------------


@dataclass
class RunContext:
    run: ImportRun
    actor: User | None
    # Records this run created: id -> the row that created them ("merged with row N").
    people: dict[int, int] = field(default_factory=dict)
    companies: dict[int, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # outcomes of the rows written
    phones: PhoneMemo = field(default_factory=PhoneMemo)  # a phone cell parsed once a chunk

    @classmethod
    def load(cls, run: ImportRun, actor: User | None) -> RunContext:
        ctx = cls(run=run, actor=actor, counts=_counts(run))
        for row in run.rows.filter(outcome=Outcome.CREATED).values("row_number", "changes"):
            for ch in row["changes"]:
                if ch.get("action") == "create":
                    target = ctx.people if ch["type"] == "person" else ctx.companies
                    target.setdefault(int(ch["id"]), row["row_number"])
        return ctx


Party = Company | Person


@dataclass
class _Chunk:
    """One chunk's work in memory: the batch of writes, the candidates, the new records'
    provisional ids, and what each report line refers to (ids are known after the flush)."""

    ctx: RunContext
    batch: parties.DirectoryBatch
    cands: ChunkCandidates
    pending: dict[int, Party] = field(default_factory=dict)  # provisional id -> record
    pending_ids: dict[int, int] = field(default_factory=dict)  # id(record) -> provisional id
    refs: dict[int, tuple[ImportRow, list[tuple[str, Party, str, int, Any]]]] = field(
        default_factory=dict
    )
    records: dict[int, dict[str, Party]] = field(default_factory=dict)  # id(line) -> records

    def id_of(self, obj: Party) -> int:
        return obj.pk if obj.pk is not None else self.pending_ids[id(obj)]

    def add_new(self, obj: Party) -> int:
        pid = PENDING + len(self.pending)
        self.pending[pid] = obj
        self.pending_ids[id(obj)] = pid
        return pid

    def record(self, kind: str, oid: int) -> Party:
        if oid >= PENDING:
            return self.pending[oid]
        obj = self.batch.get(kind, oid)
        if obj is None:  # a record the first pass did not foresee
            self.batch.load(
                companies=[oid] if kind == "company" else [],
                people=[oid] if kind == "person" else [],
                lock=self.ctx.run.pk is not None,
            )
            obj = self.batch.get(kind, oid)
        if obj is None:
            raise FieldErrors.single("", _("The record was removed meanwhile."))
        return obj

    def known(self, obj: Party) -> Known:
        """The record as the candidates see it, after this chunk's changes."""
        points = self.batch.points(obj)
        k = Known(
            id=self.id_of(obj),
            key=obj.name_key,
            phones={p.value for p in points if p.channel == "phone" and p.value},
            emails={p.value for p in points if p.channel == "email" and p.value},
        )
        if isinstance(obj, Company):
            k.tax_id, k.form = obj.tax_id, obj.legal_form
        else:
            k.companies = {self.id_of(c) for c, _p, _r in self.batch.jobs(obj)}
        return k


def _update_data(
    work: _Chunk, obj: Party, incoming: dict[str, Any], policy: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data for the update service, the values it replaces) under the policy."""
    data: dict[str, Any] = {}
    before: dict[str, Any] = {}
    for key, value in incoming.items():
        if key in ("phones", "emails", "default_region", "tags", "custom_fields") or not value:
            continue
        if key == "birthday":
            current: Any = obj.birthday.isoformat() if obj.birthday else ""  # type: ignore[union-attr]
        else:
            current = getattr(obj, key, None)
        if current in (None, ""):
            data[key], before[key] = value, current if current is not None else ""
        elif policy == OnDuplicate.OVERWRITE and str(current) != str(value):
            data[key], before[key] = value, current
    if incoming.get("custom_fields"):
        old = dict(obj.custom_fields or {})
        new = {
            k: v
            for k, v in incoming["custom_fields"].items()
            if policy == OnDuplicate.OVERWRITE or old.get(k) in (None, "", [])
        }
        if new:
            data["custom_fields"] = {**old, **new}
            before["custom_fields"] = old
    for channel, key in (("phone", "phones"), ("email", "emails")):
        wanted = incoming.get(key) or []
        if not wanted:
            continue
        old_points = work.batch.contact_points_input(obj, channel)
        known = {p["raw"].strip().lower() for p in old_points}
        values = {p.value for p in work.batch.points(obj) if p.channel == channel and p.value}
        added: list[dict[str, str]] = []
        region = str(incoming.get("default_region") or settings.DEFAULT_PHONE_REGION)
        for item in wanted:
            raw = str(item["raw"])
            if channel == "email":
                value = normalize_email(raw).normalized
                if value not in values and raw.strip().lower() not in known:
                    added.append({"raw": raw})
                    values.add(value)
                continue
            # Token by token: a cell may hold a known number and a new one, or junk.
            for parsed in work.ctx.phones(raw, default_region=region):
                if parsed.valid and parsed.e164:
                    if parsed.e164 not in values:
                        added.append({"raw": parsed.raw, "region": region})
                        values.add(parsed.e164)
                elif parsed.raw.strip().lower() not in known:
                    added.append({"raw": parsed.raw})
                    known.add(parsed.raw.strip().lower())
        if added:
            data[key] = old_points + added
            before[key] = old_points
            data["default_region"] = region
    return data, before


def _row_company(
    work: _Chunk, rd: RowData, changes: list[tuple[str, Party, str, int, Any]], cid: int | None
) -> Company | None:
    """The row's company: ``cid`` (matched) updated under the policy, or a new one."""
    if not rd.has_company:
        return None
    ctx, run = work.ctx, work.ctx.run
    if cid is None or (run.on_duplicate == OnDuplicate.CREATE and cid not in ctx.companies):
        data = dict(rd.company)
        if run.target == Target.PEOPLE:
            data.pop("phones", None)
            data.pop("emails", None)
        company = work.batch.company_create(data=data)
        work.add_new(company)
        changes.append(("company", company, "create", 0, None))
        return company
    found = work.record("company", cid)
    assert isinstance(found, Company)  # noqa: S101 - the kind asked for
    company = found
    policy = run.on_duplicate if cid not in ctx.companies else OnDuplicate.UPDATE
    if policy in (OnDuplicate.UPDATE, OnDuplicate.OVERWRITE):
        incoming = dict(rd.company)
        if run.target == Target.PEOPLE:
            incoming.pop("phones", None)
            incoming.pop("emails", None)
        data, before = _update_data(work, company, incoming, policy)
        if data:
            work.batch.company_update(company=company, data=data)
            changes.append(("company", company, "update", company.version, before))
    return company


def _company_outcome(
    work: _Chunk, company: Company | None, line: ImportRow, changes: list[Any]
) -> None:
    ctx = work.ctx
    cid = work.id_of(company) if company is not None else None
    if company is None:
        line.outcome = Outcome.SKIPPED
    elif any(c[2] == "create" for c in changes):
        line.outcome = Outcome.CREATED
    elif cid in ctx.companies:
        line.outcome = Outcome.MERGED
        line.merged_with_row = ctx.companies[cid]
    elif changes:
        line.outcome = Outcome.UPDATED
    else:
        line.outcome = Outcome.MATCHED


def _company_found(work: _Chunk, rd: RowData) -> list[Known]:
    return work.cands.find(
        "company",
        name=str(rd.company.get("short_name") or ""),
        tax_id=str(rd.company.get("tax_id") or ""),
        phones=rd.phones if not rd.has_person else [],
        emails=rd.emails if not rd.has_person else [],
    )


def _plan_row(
    work: _Chunk, rd: RowData, line: ImportRow, changes: list[tuple[str, Party, str, int, Any]]
) -> dict[str, Party]:
    """Decide one row and stage its writes in the batch; the records it names."""
    ctx, run, cands = work.ctx, work.ctx.run, work.cands
    if run.target == Target.COMPANIES or not rd.has_person:
        found = company_candidates(rd, _company_found(work, rd)) if rd.has_company else []
        cid = choose_company(rd, found, staff=cands.staff_companies)
        company = _row_company(work, rd, changes, cid)
        _company_outcome(work, company, line, changes)
        return {"company": company} if company is not None else {}
    # The person first (the company's candidates back up a similar name), then which of
    # the candidates the company is (the person's employers tell same-named ones apart).
    comp_cands = company_candidates(rd, _company_found(work, rd)) if rd.has_company else []
    pid = match_person(
        rd,
        cands.find("person", name=full_name(rd), phones=rd.phones, emails=rd.emails),
        company_ids={k.id for k in comp_cands},
    )
    if pid is not None and run.on_duplicate == OnDuplicate.CREATE and pid not in ctx.people:
        pid = None
    match = cands.get("person", pid) if pid is not None else None
    employers = set(match.companies) if match is not None else set()
    company = _row_company(
        work,
        rd,
        changes,
        choose_company(rd, comp_cands, employers=employers, staff=cands.staff_companies),
    )
    records: dict[str, Party] = {"company": company} if company is not None else {}
    if pid is None:
        person = work.batch.person_create(
            data=dict(rd.person),
            employments=[(company, rd.position)] if company is not None else [],
        )
        work.add_new(person)
        changes.append(("person", person, "create", 0, None))
        line.outcome = Outcome.CREATED
        return {**records, "person": person}
    found_person = work.record("person", pid)
    assert isinstance(found_person, Person)  # noqa: S101 - the kind asked for
    person = found_person
    records["person"] = person
    merged = pid in ctx.people
    policy = OnDuplicate.UPDATE if merged else run.on_duplicate
    if policy == OnDuplicate.SKIP:
        line.outcome = Outcome.MATCHED
        return records
    data, before = _update_data(work, person, rd.person, policy)
    jobs: list[tuple[Company, str]] = []
    if company is not None and work.id_of(company) not in employers:
        before["employments"] = [
            {"company_id": c, "position": pos, "role": role}
            for c, pos, role in work.batch.jobs(person)
        ]
        jobs = [(company, rd.position)]
    if data or jobs:
        work.batch.person_update(person=person, data=data, employments=jobs)
        changes.append(("person", person, "update", person.version, before))
    if merged:
        line.outcome = Outcome.MERGED
        line.merged_with_row = ctx.people[pid]
    elif any(c[2] == "create" for c in changes):
        line.outcome = Outcome.UPDATED
    else:
        line.outcome = Outcome.UPDATED if data or jobs else Outcome.MATCHED
    return records


def _line(ctx: RunContext, rd: RowData) -> ImportRow:
    line = ImportRow(
        run=ctx.run,
        row_number=rd.row_number,
        phones=rd.phones,
        emails=rd.emails,
        messages=[*rd.errors, *rd.warnings],
        changes=[],
    )
    if rd.empty:
        line.outcome = Outcome.SKIPPED
        line.messages = [_("Empty row.")]
    elif rd.errors:
        line.outcome = Outcome.ERROR
    return line


def _error(line: ImportRow, rd: RowData, exc: ServiceError) -> None:
    line.outcome = Outcome.ERROR
    line.changes = []
    line.person_id = line.company_id = None
    line.merged_with_row = None
    errs = exc.errors if isinstance(exc, FieldErrors) else {"": [str(exc)]}
    line.messages = [
        *(f"{k}: {m}" if k else m for k, ms in errs.items() for m in ms),
        *rd.warnings,
    ]


def _prefetch(work: _Chunk, rows: list[RowData]) -> None:
    """Read (and lock) the existing records the rows will most likely change, in one go."""
    ids: dict[str, set[int]] = {"company": set(), "person": set()}
    cands = work.cands
    found: list[tuple[RowData, list[Known], list[Known]]] = []
    for rd in rows:
        comp = company_candidates(rd, _company_found(work, rd)) if rd.has_company else []
        ids["company"].update(k.id for k in comp)
        if rd.has_person and work.ctx.run.target == Target.PEOPLE:
            people = cands.find(
                "person", name=full_name(rd), phones=rd.phones, emails=rd.emails, details=False
            )
            found.append((rd, comp, people))
    cands.details({k.id for _rd, _c, people in found for k in people})
    for rd, comp, people in found:
        pid = match_person(rd, people, company_ids={k.id for k in comp})
        if pid is not None:
            ids["person"].add(pid)
    work.batch.load(
        companies=sorted(i for i in ids["company"] if i < PENDING),
        people=sorted(i for i in ids["person"] if i < PENDING),
        lock=work.ctx.run.pk is not None,
    )


def _process_chunk(ctx: RunContext, rows: list[RowData], *, write: bool = True) -> list[ImportRow]:
    """Report lines of ``rows``: decided in memory against candidates read for the whole
    chunk, then (``write``) written with bulk statements. Call inside a transaction."""
    lines = [_line(ctx, rd) for rd in rows]
    todo = [(rd, line) for rd, line in zip(rows, lines, strict=True) if not line.outcome]
    if not todo:
        return lines
    try:
        batch = parties.DirectoryBatch(
            actor=ctx.actor, responsible_id=ctx.run.responsible_id, parse_phones=ctx.phones
        )
    except ServiceError as exc:
        for rd, line in todo:
            _error(line, rd, exc)
        return lines
    work = _Chunk(ctx=ctx, batch=batch, cands=ChunkCandidates.load([rd for rd, _l in todo]))
    _prefetch(work, [rd for rd, _l in todo])
    for rd, line in todo:
        mark = batch.mark()
        changes: list[tuple[str, Party, str, int, Any]] = []
        try:
            records = _plan_row(work, rd, line, changes)
        except (FieldErrors, PermissionDenied, StaleVersion) as exc:
            batch.undo_to(mark)  # the row's records all or none
            _error(line, rd, exc)
            continue
        for kind, obj, action, _v, _b in changes:
            if action == "create":
                (ctx.people if kind == "person" else ctx.companies)[work.id_of(obj)] = rd.row_number
        for kind, obj in records.items():
            work.cands.put(kind, work.known(obj))
        if "company" in records:
            line.company_key = name_key(str(rd.company.get("short_name") or ""))
            line.company_tax_id = str(rd.company.get("tax_id") or "")
        work.refs[id(line)] = (line, changes)
        work.records[id(line)] = records
    if write:
        batch.flush()
    # Provisional ids become the written ones.
    for pid, obj in work.pending.items():
        for mapping in (ctx.people, ctx.companies):
            if pid in mapping and obj.pk is not None:
                mapping[obj.pk] = mapping.pop(pid)
    for line, changes in work.refs.values():
        records = work.records[id(line)]
        line.person_id = records["person"].pk if "person" in records else None
        line.company_id = records["company"].pk if "company" in records else None
        line.changes = [
            {"type": kind, "id": obj.pk, "action": action}
            if action == "create"
            else {
                "type": kind,
                "id": obj.pk,
                "action": action,
                "version": version,
                "before": parties.bulk_render(before),
            }
            for kind, obj, action, version, before in changes
        ]
    return lines


# --- the run ----------------------------------------------------------------------------------


def _counts(run: ImportRun) -> dict[str, int]:
    from django.db.models import Count

    rows = run.rows.values("outcome").annotate(n=Count("id")).order_by()
    return {r["outcome"]: r["n"] for r in rows}


Progress = Callable[[ImportRun], None]


def run_start(*, actor: User | None, run: ImportRun) -> ImportRun:
    """Queue the run for the worker (or a resume of a failed one)."""
    with transaction.atomic():
        run = ImportRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in (RunStatus.DRAFT, RunStatus.INVALID, RunStatus.FAILED):
            raise FieldErrors.single("status", _("This import is already running or finished."))
        errors = mapping_mod.validate_mapping(run.mapping, run.headers, run.target)
        if errors:
            raise FieldErrors(errors)
        run.status = RunStatus.QUEUED
        run.error = ""
        run.save(update_fields=["status", "error", "updated_at"])
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task("rapport.imports.jobs.run_import", run.pk, task_name=f"import-{run.pk}")
    )
    return run


def run_execute(
    run_id: int, *, actor: User | None = None, progress: Progress | None = None
) -> ImportRun:
    """Validate, then write every row after the checkpoint in chunks. Resumable."""
    run = ImportRun.objects.get(pk=run_id)
    if run.status == RunStatus.DONE:
        return run
    if actor is None:
        actor = run.created_by
    try:
        return _execute(run, actor, progress)
    except (DatabaseError, OSError, ImportFileError) as exc:
        _fail(run.pk, str(exc))
        raise


def _fail(run_id: int, message: str) -> None:
    # A connection the server ended (a restart, an administrator) stays broken after an
    # error outside a transaction (inside one, the failed rollback drops it): drop it, so the
    # mark goes through a new one. If the database is gone too, the stale-run sweep marks
    # the run when it is back.
    connection = transaction.get_connection()
    if not connection.in_atomic_block and not connection.is_usable():
        connection.close()
    with contextlib.suppress(DatabaseError):
        ImportRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=message[:2000], heartbeat_at=timezone.now()
        )


def _execute(run: ImportRun, actor: User | None, progress: Progress | None) -> ImportRun:
    if run.rows_done == 0 and run.valid_rows_only:
        # Rows with errors are reported one by one as the chunks are written, so nothing
        # needs deciding before the first write: the pass over the file only counts the rows
        # (for the progress) and finds a broken file before anything is written; each row is
        # normalised once, in the write pass.
        errors = mapping_mod.validate_mapping(run.mapping, run.headers, run.target)
        if errors:
            raise FieldErrors(errors)
        run.total_rows = sum(1 for _row in data_rows(run))
    elif run.rows_done == 0:
        check = run_validate(run, keep=200)
        run.total_rows = check.total + check.empty
        if check.invalid:
            run.status = RunStatus.INVALID
            run.error = _(
                "%(n)s rows have errors; nothing was imported. Fix them, or choose "
                "“import valid rows only”."
            ) % {"n": len(check.invalid)}
            run.counts = {"invalid": len(check.invalid), "total": check.total}
            run.finished_at = timezone.now()
            run.save()
            return run
    run.status = RunStatus.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.heartbeat_at = timezone.now()
    run.save()
    ctx = RunContext.load(run, actor)
    chunk: list[RowData] = []
    for number, cells in data_rows(run):
        if number - run.header_row <= run.rows_done:
            continue  # committed before a restart
        chunk.append(_normalized(run, number, cells, ctx.phones))
        if len(chunk) >= CHUNK_ROWS:
            _commit_chunk(ctx, chunk)
            chunk = []
            if progress:
                progress(ctx.run)
    if chunk:
        _commit_chunk(ctx, chunk)
    run = ctx.run
    with transaction.atomic():  # a kill here leaves the run resumable: the review runs again
        reviewed = review_companies(run, actor)
        run.status = RunStatus.DONE
        run.finished_at = timezone.now()
        run.counts = _counts(run)
        if reviewed:
            run.counts["company_review"] = reviewed
        run.save()
    event_record(
        name="import.done",
        object_type="import",
        object_id=run.pk,
        actor=actor,
        payload={"counts": run.counts},
    )
    if progress:
        progress(run)
    return run


def _commit_chunk(ctx: RunContext, chunk: list[RowData]) -> None:
    """Rows, their report lines and the checkpoint in one transaction."""
    run = ctx.run
    people, companies, counts = dict(ctx.people), dict(ctx.companies), dict(ctx.counts)
    try:
        with gc_paused(), transaction.atomic():
            lines = _process_chunk(ctx, chunk)
            objects_insert(ImportRow, lines)
            for line in lines:
                ctx.counts[line.outcome] = ctx.counts.get(line.outcome, 0) + 1
            done = chunk[-1].row_number - run.header_row
            updated = ImportRun.objects.filter(pk=run.pk, rows_done=run.rows_done).update(
                rows_done=done, heartbeat_at=timezone.now(), counts=ctx.counts
            )
            if updated != 1:
                raise ServiceError(_("Another worker is running this import."))
    except BaseException:
        ctx.people, ctx.companies, ctx.counts = people, companies, counts
        raise
    run.rows_done = done
    run.heartbeat_at = timezone.now()


def runs_mark_stale() -> int:
    """Runs whose worker stopped beating (killed, machine restarted) become failed."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.IMPORT_STALE_SECONDS)
    return ImportRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff).update(
        status=RunStatus.FAILED,
        error=_("The worker stopped during the import; resume it to go on."),
    )


# --- dry run (preview) ------------------------------------------------------------------------


@dataclass
class Preview:
    lines: list[ImportRow]
    rows: list[RowData]
    counts: dict[str, int]  # outcomes of the rows tried (``tried``)
    total: int  # data rows in the file
    tried: int = 0
    invalid: int = 0  # rows of the whole file with errors


def run_preview(
    *,
    actor: User | None,
    run: ImportRun,
    limit: int = PREVIEW_ROWS,
    sample: int | None = PREVIEW_SAMPLE,
) -> Preview:
    """What would happen, with nothing written: the first ``sample`` rows (all when None) go
    through the whole pipeline in a transaction that is rolled back; every row of the file
    is normalised and checked for errors."""
    errors = mapping_mod.validate_mapping(run.mapping, run.headers, run.target)
    if errors:
        raise FieldErrors(errors)
    preview = Preview(lines=[], rows=[], counts={}, total=0)
    ctx = RunContext(run=run, actor=actor)
    tried: list[RowData] = []
    for number, cells in data_rows(run):
        rd = _normalized(run, number, cells, ctx.phones)
        if rd.empty:
            continue
        preview.total += 1
        preview.invalid += bool(rd.errors)
        if sample is None or len(tried) < sample:
            tried.append(rd)
    # Decided in memory as one chunk and never written: no write lock, nothing to roll back.
    for rd, line in zip(tried, _process_chunk(ctx, tried, write=False), strict=True):
        preview.tried += 1
        preview.counts[line.outcome] = preview.counts.get(line.outcome, 0) + 1
        if len(preview.lines) < limit:
            preview.lines.append(line)
            preview.rows.append(rd)
    return preview


# --- undo -------------------------------------------------------------------------------------


@dataclass
class UndoResult:
    removed: int = 0
    restored: int = 0
    kept: list[str] = field(default_factory=list)  # what could not be undone, and why


def run_undo(*, actor: User | None, run: ImportRun) -> UndoResult:
    """Take the run back; list what changed since and is kept.

    Per record: one the run created is purged if its version is still the one the run
    left; one it updated gets the values from before its first update in the run,
    checked against the version after its last one.
    """
    if run.status not in (RunStatus.DONE, RunStatus.FAILED):
        raise FieldErrors.single("status", _("Only a finished or failed import can be undone."))
    result = UndoResult()
    with transaction.atomic():
        run = ImportRun.objects.select_for_update().get(pk=run.pk)
        result.kept.extend(review_undo(run, actor))
        created: dict[tuple[str, int], int] = {}  # record -> row
        last_version: dict[tuple[str, int], int] = {}
        befores: dict[tuple[str, int], dict[str, Any]] = {}
        first_row: dict[tuple[str, int], int] = {}
        lines = run.rows.exclude(changes=[]).order_by("row_number")
        # read in parts: a big run's report, parsed at once, was most of the undo's memory
        for row_number, changes in lines.values_list("row_number", "changes").iterator(2000):
            for ch in changes:
                key = (str(ch["type"]), int(ch["id"]))
                if ch["action"] == "create":
                    created[key] = row_number
                    continue
                last_version[key] = int(ch["version"])
                first_row.setdefault(key, row_number)
                merged = befores.setdefault(key, {})
                for k, v in (ch.get("before") or {}).items():
                    merged.setdefault(k, v)  # the earliest value wins
        _undo_update(
            actor,
            [
                (key, first_row[key], before, last_version[key])
                for key, before in befores.items()
                if key not in created
            ],
            result,
        )
        for kind in ("person", "company"):  # people first: they take their company links along
            rows = {pk: row for (k, pk), row in created.items() if k == kind}
            versions = {pk: last_version.get((kind, pk), 1) for pk in rows}
            _undo_create(actor, run, kind, rows, versions, result)
        if result.kept and not (result.removed or result.restored):
            # Nothing could be taken back: the run stays as it was, to be undone later.
            transaction.set_rollback(True)
            return result
        run.status = RunStatus.UNDONE
        run.undone_at = timezone.now()
        run.counts = {
            **run.counts,
            "undo_removed": result.removed,
            "undo_restored": result.restored,
            "undo_kept": len(result.kept),
        }
        run.save()
        event_record(
            name="import.undone",
            object_type="import",
            object_id=run.pk,
            actor=actor,
            payload={"removed": result.removed, "restored": result.restored},
        )
    return result


def _undo_create(
    actor: User | None,
    run: ImportRun,
    kind: str,
    rows: dict[int, int],
    versions: dict[int, int],
    result: UndoResult,
) -> None:
    """Purge the records of one type the run created (id -> its row), a chunk at a time."""
    model: type[Company] | type[Person] = Company if kind == "company" else Person
    ids = list(rows)
    for start in range(0, len(ids), parties.PURGE_CHUNK):
        with gc_paused():  # a chunk's objects: no collector runs among them (core.bulk)
            part = ids[start : start + parties.PURGE_CHUNK]
            kept: dict[int, str] = {}
            purge: list[Company | Person] = []
            for obj in model.objects.filter(pk__in=part):
                if obj.version == versions[obj.pk] and obj.deleted_at is None:
                    purge.append(obj)
                    continue
                label = _("row %(row)s") % {"row": rows[obj.pk]}
                changed = _("%(row)s: %(record)s was changed after the import and is kept.")
                kept[obj.pk] = changed % {"row": label, "record": obj}
            # audit entries and events in the order of the rows
            purge.sort(key=lambda o: rows[o.pk])
            refused = parties.parties_purge(
                actor=actor, object_type=kind, objs=purge, reason=f"import {run.pk} undone"
            )
            for pk, why in refused.items():
                label = _("row %(row)s") % {"row": rows[pk]}
                kept[pk] = f"{label}: {why}"
            result.removed += len(purge) - len(refused)
            result.kept.extend(kept[pk] for pk in part if pk in kept)  # in the order of the rows


def _undo_update(
    actor: User | None,
    todo: list[tuple[tuple[str, int], int, dict[str, Any], int]],
    result: UndoResult,
) -> None:
    """Give the records the run updated ((type, id), first row, values before the run,
    version after it) their values back, a chunk at a time: read and locked together,
    each restored or kept on its own, written with bulk statements."""
    for start in range(0, len(todo), parties.PURGE_CHUNK):
        with gc_paused():  # a chunk's objects: no collector runs among them (core.bulk)
            part = todo[start : start + parties.PURGE_CHUNK]
            batch = parties.DirectoryBatch(actor=actor)
            batch.load(
                companies=[pk for (kind, pk), _r, _b, _v in part if kind == "company"],
                people=[pk for (kind, pk), _r, _b, _v in part if kind == "person"],
                lock=True,
            )
            for key, row, before, version in part:
                obj = batch.get(*key)
                if obj is None:  # purged since: nothing to give back
                    continue
                label = _("row %(row)s") % {"row": row}
                data = dict(before)
                if "birthday" in data and not data["birthday"]:
                    data["birthday"] = None
                mark = batch.mark()
                try:
                    if isinstance(obj, Person):
                        batch.person_update(person=obj, data=data, version=version)
                    else:
                        batch.company_update(company=obj, data=data, version=version)
                except StaleVersion:
                    batch.undo_to(mark)
                    result.kept.append(
                        _("%(row)s: %(record)s was changed after the import; its values are kept.")
                        % {"row": label, "record": obj}
                    )
                    continue
                except (FieldErrors, PermissionDenied) as exc:
                    batch.undo_to(mark)
                    result.kept.append(f"{label}: {exc}")
                    continue
                result.restored += 1
            batch.flush()


def invalid_lines(run: ImportRun) -> list[ImportRow]:
    """The report of a refused run: its rows with errors, and the others not imported."""
    lines: list[ImportRow] = []
    for number, cells in data_rows(run):
        rd = _normalized(run, number, cells)
        if rd.empty:
            outcome, messages = Outcome.SKIPPED, [_("Empty row.")]
        elif rd.errors:
            outcome, messages = Outcome.ERROR, [*rd.errors, *rd.warnings]
        else:
            outcome = Outcome.SKIPPED
            messages = [_("Not imported: other rows of the file have errors."), *rd.warnings]
        lines.append(
            ImportRow(
                run=run,
                row_number=number,
                outcome=outcome,
                phones=rd.phones,
                emails=rd.emails,
                messages=messages,
            )
        )
    return lines
