"""Merging two records into one, undoing a merge, and dismissing a pair.

A merge keeps the survivor and, field by field, the value the user chose; the merged
record's phones, emails and tags are added to the survivor; every row that refers to
the merged record (employments, relations, deals, leads, interactions, tasks,
participants, files) is re-pointed to the survivor — one that would duplicate a row
the survivor already has (the same company twice) is removed and kept in the merge
record; the merged record goes to the recycle bin. All of it is audited and undoable
while the survivor has not been changed since.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.apps import apps
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.audit import audit_record, audit_value
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.events import event_record
from rapport.core.models import Attachment
from rapport.core.scopes import scope_allows
from rapport.dedupe.models import (
    DuplicatePair,
    DuplicateScan,
    MergeRecord,
    PairStatus,
    ScanStatus,
    choice_fields,
)
from rapport.parties import services as parties
from rapport.parties.models import Company, Person

# Rows derived from the record itself, handled apart: contact points go through the update
# service; the duplicate guard's name keys stay with their record (the survivor's are
# rebuilt by the update); search documents are rebuilt; audit entries stay with each record.
_SKIP = {"contactpoint", "personnamekey", "companynamekey"}


def _model(object_type: str) -> type[Company] | type[Person]:
    if object_type not in ("company", "person"):
        raise FieldErrors.single("object_type", _("Choose companies or people."))
    return Company if object_type == "company" else Person


def _value(obj: Company | Person, field: str) -> Any:
    if field == "responsible":
        return obj.responsible_id
    value = getattr(obj, field)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _service_data(obj: Company | Person, fields: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for f in fields:
        value = _value(obj, f)
        data["responsible_id" if f == "responsible" else f] = value
    if isinstance(obj, Company) and "tax_id" in fields:
        data["tax_country"] = obj.tax_country
    return data


def _union_points(survivor: Company | Person, merged: Company | Person, channel: str) -> Any:
    """The survivor's phones or emails as service input, before and with the merged record's
    ones it lacks (same number or address, or the same text as typed, is not added twice)."""
    mine = parties.contact_points_input(survivor, channel)
    have = [p for p in survivor.contact_points.all() if p.channel == channel]
    values = {p.value for p in have if p.value}
    raws = {p.raw.strip().lower() for p in have}
    # contact_points_input lists the record's points of the channel in their saved order.
    theirs = [p for p in merged.contact_points.all() if p.channel == channel]
    added = [
        item
        for p, item in zip(theirs, parties.contact_points_input(merged, channel), strict=True)
        if not ((p.value and p.value in values) or p.raw.strip().lower() in raws)
    ]
    return (mine, mine + added) if added else (mine, None)


def _references(model: type[Company] | type[Person]) -> list[tuple[Any, str]]:
    """(model, field name) of every foreign key to ``model`` in any app, hidden ones too
    (``related_name="+"``, which ``_meta.related_objects`` leaves out)."""
    out: list[tuple[Any, str]] = []
    for other in apps.get_models():
        if other._meta.model_name in _SKIP:
            continue
        for f in other._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and f.related_model is model:
                out.append((other, f.name))
    return out


@transaction.atomic
def merge(
    *,
    actor: User | None,
    object_type: str,
    survivor_id: int,
    merged_id: int,
    keep: dict[str, str] | None = None,
    survivor_version: int | None = None,
    merged_version: int | None = None,
) -> MergeRecord:
    """Merge ``merged_id`` into ``survivor_id``; ``keep[field]`` = "merged" takes its value.

    With ``survivor_version``/``merged_version`` (the versions the user compared), a record
    changed since is refused with StaleVersion: the choice was made on other values."""
    model = _model(object_type)
    if survivor_id == merged_id:
        raise FieldErrors.single("merged_id", _("Choose two different records."))
    survivor = model.objects.select_for_update().filter(pk=survivor_id).first()
    merged = model.objects.select_for_update().filter(pk=merged_id).first()
    if survivor is None or merged is None or survivor.deleted_at or merged.deleted_at:
        raise FieldErrors.single("id", _("Both records must exist and not be in the recycle bin."))
    for obj, version in ((survivor, survivor_version), (merged, merged_version)):
        if version is not None and int(version) != obj.version:
            raise StaleVersion(current_version=obj.version)
    for obj, action in ((survivor, "edit"), (merged, "delete")):
        if actor is not None and not scope_allows(
            actor, object_type, action, owner_id=obj.responsible_id, team_id=obj.team_id
        ):
            raise PermissionDenied(_("You may not merge these records."))
    keep = keep or {}
    unknown = sorted(set(keep) - set(choice_fields(object_type)))
    if unknown or any(v not in ("survivor", "merged") for v in keep.values()):
        raise FieldErrors.single(
            "keep", _("Unknown fields or choices: %(f)s.") % {"f": ", ".join(unknown) or "?"}
        )
    survivor_version_before, merged_version_before = survivor.version, merged.version
    taken = [f for f, side in keep.items() if side == "merged"]
    # Empty fields of the survivor are filled from the merged record too.
    filled = [
        f
        for f in choice_fields(object_type)
        if f not in keep
        and _value(survivor, f) in ("", None)
        and _value(merged, f) not in ("", None)
    ]
    data = _service_data(merged, taken + filled)
    before = _service_data(survivor, taken + filled)
    for channel, key in (("phone", "phones"), ("email", "emails")):
        old, new = _union_points(survivor, merged, channel)
        if new is not None:
            data[key], before[key] = new, old
    custom = {
        **(merged.custom_fields or {}),
        **{k: v for k, v in (survivor.custom_fields or {}).items() if v not in (None, "", [])},
    }
    if custom != (survivor.custom_fields or {}):
        data["custom_fields"], before["custom_fields"] = custom, survivor.custom_fields or {}
    tags = sorted(
        set(survivor.tags.values_list("name", flat=True))
        | set(merged.tags.values_list("name", flat=True))
    )
    if tags != sorted(survivor.tags.values_list("name", flat=True)):
        data["tags"], before["tags"] = tags, sorted(survivor.tags.values_list("name", flat=True))
    if data:
        if isinstance(survivor, Person):
            survivor = parties.person_update(actor=actor, person=survivor, data=data)
        else:
            survivor = parties.company_update(actor=actor, company=survivor, data=data)
    moved: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    for related, field in _references(model):
        label = related._meta.label_lower
        for row in related.objects.filter(**{field: merged}):
            other_ends = [
                getattr(row, f.attname)
                for f in related._meta.concrete_fields
                if isinstance(f, models.ForeignKey) and f.related_model is model and f.name != field
            ]
            if survivor.pk in other_ends:  # a relation between the two: it would point at itself
                dropped.append({"model": label, "pk": row.pk, "data": _row_data(row)})
                row.delete()
                continue
            try:
                with transaction.atomic():
                    related.objects.filter(pk=row.pk).update(**{field: survivor})
                moved.append({"model": label, "pk": row.pk, "field": field})
            except IntegrityError:  # the survivor already has the same row
                dropped.append({"model": label, "pk": row.pk, "data": _row_data(row)})
                row.delete()
    for att in Attachment.objects.filter(object_type=object_type, object_id=merged.pk):
        Attachment.objects.filter(pk=att.pk).update(object_id=survivor.pk)
        moved.append({"model": "core.attachment", "pk": att.pk, "field": "object_id"})
    parties.party_delete(actor=actor, obj=merged)
    survivor.refresh_from_db()
    parties._reindex(survivor)  # noqa: SLF001  (employments moved: the subtitle changes)
    record = MergeRecord.objects.create(
        object_type=object_type,
        survivor_id=survivor.pk,
        merged_id=merged.pk,
        actor=actor if actor and actor.pk else None,
        before=before,
        version_after=survivor.version,
        survivor_version_before=survivor_version_before,
        merged_version_before=merged_version_before,
        moved=moved,
        dropped=dropped,
    )
    DuplicatePair.objects.filter(
        object_type=object_type,
        a_id=min(survivor.pk, merged.pk),
        b_id=max(survivor.pk, merged.pk),
    ).update(status=PairStatus.MERGED)
    audit_record(
        actor=actor,
        instance=survivor,
        object_type=object_type,
        action="merge",
        changes={"merged": [None, merged.pk], "moved": [None, len(moved)]},
    )
    event_record(
        name=f"{object_type}.merged",
        object_type=object_type,
        object_id=survivor.pk,
        actor=actor,
        payload={"merged_id": merged.pk, "merge_id": record.pk},
    )
    return record


def _row_data(row: models.Model) -> dict[str, Any]:
    return {
        f.attname: audit_value(getattr(row, f.attname))
        for f in row._meta.concrete_fields
        if not f.primary_key
    }


@transaction.atomic
def merge_undo(*, actor: User | None, record: MergeRecord) -> None:
    """Put both records back as they were, if the survivor was not changed since."""
    record = MergeRecord.objects.select_for_update().get(pk=record.pk)
    if record.undone_at:
        raise FieldErrors.single("id", _("This merge was already undone."))
    model = _model(record.object_type)
    survivor = model.objects.get(pk=record.survivor_id)
    merged = model.objects.get(pk=record.merged_id)
    if survivor.version != record.version_after:
        raise StaleVersion(current_version=survivor.version)
    if actor is not None and not scope_allows(
        actor,
        record.object_type,
        "edit",
        owner_id=survivor.responsible_id,
        team_id=survivor.team_id,
    ):
        raise PermissionDenied(_("You may not undo this merge."))
    for item in reversed(record.moved):
        related = apps.get_model(item["model"])
        if item["model"] == "core.attachment":
            related.objects.filter(pk=item["pk"]).update(object_id=merged.pk)
        else:
            related.objects.filter(pk=item["pk"]).update(**{item["field"]: merged})
    for item in record.dropped:
        related = apps.get_model(item["model"])
        related.objects.create(pk=item["pk"], **item["data"])
    _restore(actor, merged)
    if record.before:
        if isinstance(survivor, Person):
            parties.person_update(
                actor=actor, person=survivor, data=record.before, version=survivor.version
            )
        else:
            parties.company_update(
                actor=actor, company=survivor, data=record.before, version=survivor.version
            )
    # Both records are as they were before the merge: so are their versions.
    for obj, version in (
        (survivor, record.survivor_version_before),
        (merged, record.merged_version_before),
    ):
        if version is not None:
            model.objects.filter(pk=obj.pk).update(version=version)
    survivor.refresh_from_db()
    parties._reindex(survivor)  # noqa: SLF001
    record.undone_at = timezone.now()
    record.save(update_fields=["undone_at", "updated_at"])
    DuplicatePair.objects.filter(
        object_type=record.object_type,
        a_id=min(survivor.pk, merged.pk),
        b_id=max(survivor.pk, merged.pk),
    ).update(status=PairStatus.OPEN)
    audit_record(
        actor=actor,
        instance=survivor,
        object_type=record.object_type,
        action="update",
        changes={"merge_undone": [record.merged_id, None]},
    )
    event_record(
        name=f"{record.object_type}.merge_undone",
        object_type=record.object_type,
        object_id=survivor.pk,
        actor=actor,
        payload={"merged_id": merged.pk, "merge_id": record.pk},
    )


def _restore(actor: User | None, obj: Company | Person) -> None:
    """The merged record leaves the recycle bin: whoever may undo the merge may bring it
    back, even where only administrators restore other deletions (audited with the actor)."""
    parties.party_restore(actor=None, obj=obj)
    audit_record(
        actor=actor,
        instance=obj,
        object_type="company" if isinstance(obj, Company) else "person",
        action="restore",
        changes={"merge_undone": [None, True]},
    )


@transaction.atomic
def pair_dismiss(*, actor: User | None, pair: DuplicatePair) -> DuplicatePair:
    """ "Not duplicates": the pair is not shown again (a later scan keeps the verdict)."""
    pair.status = PairStatus.DISMISSED
    pair.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        instance=pair,
        object_type="duplicate_pair",
        action="update",
        changes={"status": [PairStatus.OPEN, PairStatus.DISMISSED]},
    )
    return pair


# --- scans of the whole base ------------------------------------------------------------------

# A scan queued or running without a sign of life for this long lost its worker.
SCAN_STALE = dt.timedelta(minutes=30)


def scan_start(*, actor: User | None, object_type: str) -> DuplicateScan:
    """Queue a search of the whole base for the worker (administrators only: it reads every
    record). A scan of the same type already queued or running is returned, not doubled."""
    _model(object_type)
    if actor is not None and not actor.is_rapport_admin:
        raise PermissionDenied(_("Only an administrator can search the whole base."))
    now = timezone.now()
    with transaction.atomic():
        busy = (
            DuplicateScan.objects.select_for_update()
            .filter(object_type=object_type, status__in=[ScanStatus.QUEUED, ScanStatus.RUNNING])
            .first()
        )
        if busy is not None and busy.updated_at > now - SCAN_STALE:
            return busy
        if busy is not None:
            busy.status = ScanStatus.FAILED
            busy.error = str(_("The worker stopped before the scan finished."))
            busy.finished_at = now
            busy.save(update_fields=["status", "error", "finished_at", "updated_at"])
        scan = DuplicateScan.objects.create(
            object_type=object_type, requested_by=actor if actor and actor.pk else None
        )
        audit_record(
            actor=actor,
            instance=scan,
            object_type="duplicate_scan",
            action="create",
            changes={"object_type": [None, object_type]},
        )
        from django_q.tasks import async_task

        scan_id = scan.pk
        transaction.on_commit(
            lambda: async_task(
                "rapport.dedupe.jobs.scan_run", scan_id, task_name=f"duplicates-{scan_id}"
            )
        )
    return scan


def scan_execute(scan_id: int) -> DuplicateScan:
    """Run a queued scan (the worker's job): running, then done with the pairs found, or
    failed with the reason. A scan already taken by another worker is left alone."""
    from rapport.dedupe import finder

    taken = DuplicateScan.objects.filter(pk=scan_id, status=ScanStatus.QUEUED).update(
        status=ScanStatus.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    scan = DuplicateScan.objects.get(pk=scan_id)
    if not taken:
        return scan

    def progress(found: int) -> None:
        DuplicateScan.objects.filter(pk=scan_id).update(
            pairs_found=found, updated_at=timezone.now()
        )

    try:
        found = finder.scan(scan.object_type, progress=progress)
    except Exception as exc:
        DuplicateScan.objects.filter(pk=scan_id).update(
            status=ScanStatus.FAILED,
            error=str(exc)[:2000],
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )
        raise
    DuplicateScan.objects.filter(pk=scan_id).update(
        status=ScanStatus.DONE,
        pairs_found=found,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    scan.refresh_from_db()
    return scan
