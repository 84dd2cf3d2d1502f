"""Likely duplicates found in the base, and the merges made of them (undoable)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel

# The fields a merge chooses between, per record type (contact details, tags, custom fields
# and related rows are combined, not chosen).
PERSON_CHOICES = [
    "last_name", "first_name", "middle_name", "birthday", "time_zone", "city", "address",
    "source", "notes", "responsible",
]  # fmt: skip
COMPANY_CHOICES = [
    "short_name", "full_name", "legal_form", "tax_id", "registration_number", "industry",
    "website", "legal_address", "postal_address", "city", "client_since", "source", "notes",
    "responsible",
]  # fmt: skip


def choice_fields(object_type: str) -> list[str]:
    return COMPANY_CHOICES if object_type == "company" else PERSON_CHOICES


class PairStatus(models.TextChoices):
    OPEN = "open", _("to review")
    DISMISSED = "dismissed", _("not duplicates")
    MERGED = "merged", _("merged")


class DuplicatePair(TimestampedModel):
    """Two records of one type that are likely the same (``a_id`` < ``b_id``)."""

    object_type = models.CharField(max_length=20)  # company, person
    a_id = models.BigIntegerField()
    b_id = models.BigIntegerField()
    score = models.PositiveSmallIntegerField()
    # Codes, shown translated: email, phone, tax_id, name:<similarity>
    reasons = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=PairStatus.choices, default=PairStatus.OPEN)

    class Meta:
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(fields=["object_type", "a_id", "b_id"], name="dup_pair_unique"),
        ]
        indexes = [
            models.Index(fields=["object_type", "status", "-score"], name="dup_pair_open_idx"),
            models.Index(fields=["object_type", "b_id"], name="dup_pair_b_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type} {self.a_id}~{self.b_id} ({self.score})"


class MergeRecord(TimestampedModel):
    """One merge: what moved from the merged record to the survivor, to undo it."""

    object_type = models.CharField(max_length=20)
    survivor_id = models.BigIntegerField()
    merged_id = models.BigIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The survivor's values before (service input), and its version after the merge.
    before = models.JSONField(default=dict)
    version_after = models.PositiveIntegerField(default=0)
    # Both records' versions before the merge: an undo puts them back, so whatever waits on
    # a record's version (an import's undo, a form opened before) sees it unchanged.
    survivor_version_before = models.PositiveIntegerField(null=True, blank=True)
    merged_version_before = models.PositiveIntegerField(null=True, blank=True)
    # [{"model": "app_label.model", "pk": 1, "field": "person"}]: rows re-pointed.
    moved = models.JSONField(default=list)
    # [{"model": ..., "pk": ..., "data": {...}}]: rows of the merged record that were removed
    # because the survivor already had the same (an employment at the same company).
    dropped = models.JSONField(default=list)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.object_type} {self.merged_id} → {self.survivor_id}"


class ScanStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class DuplicateScan(TimestampedModel):
    """One search of the whole base for duplicates, run by the worker; its status and count."""

    object_type = models.CharField(max_length=20)  # company, person
    status = models.CharField(max_length=10, choices=ScanStatus.choices, default=ScanStatus.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    pairs_found = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "status"], name="dup_scan_status_idx")]

    def __str__(self) -> str:
        return f"scan {self.object_type} {self.pk} ({self.status})"
