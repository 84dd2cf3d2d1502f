"""Import runs: the file, its mapping, the checkpoint and one report line per source row."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel


class Target(models.TextChoices):
    PEOPLE = "people", _("people (with their companies)")
    COMPANIES = "companies", _("companies")


class OnDuplicate(models.TextChoices):
    SKIP = "skip", _("skip the row")
    UPDATE = "update", _("fill the record's empty fields")
    OVERWRITE = "overwrite", _("overwrite the record's fields")
    CREATE = "create", _("create a new record anyway")


class RunStatus(models.TextChoices):
    DRAFT = "draft", _("not started")
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    INVALID = "invalid", _("refused: rows with errors")
    FAILED = "failed", _("failed, resumable")
    DONE = "done", _("done")
    UNDONE = "undone", _("undone")


class Outcome(models.TextChoices):
    CREATED = "created", _("created")
    UPDATED = "updated", _("updated")
    MATCHED = "matched", _("matched existing")
    MERGED = "merged", _("merged with an earlier row")
    SKIPPED = "skipped", _("skipped")
    ERROR = "error", _("error")


class ImportRun(TimestampedModel):
    """One import of one file; ``rows_done`` is the committed checkpoint."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    target = models.CharField(_("import into"), max_length=20, choices=Target.choices)
    file_name = models.CharField(_("file"), max_length=255)
    file_path = models.CharField(max_length=500)
    file_size = models.BigIntegerField(default=0)
    file_sha256 = models.CharField(max_length=64, blank=True)
    file_format = models.CharField(max_length=10)
    encoding = models.CharField(max_length=40, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    sheet = models.CharField(_("sheet"), max_length=100, blank=True)
    header_row = models.PositiveIntegerField(_("header row"), default=1)
    headers = models.JSONField(default=list)
    # One entry per column: a field name, "custom:<name>" or "" (ignored).
    mapping = models.JSONField(default=list)
    default_region = models.CharField(_("default phone region"), max_length=2)
    on_duplicate = models.CharField(
        _("when a row matches an existing record"),
        max_length=10,
        choices=OnDuplicate.choices,
        default=OnDuplicate.UPDATE,
    )
    valid_rows_only = models.BooleanField(_("import valid rows only"), default=False)
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("responsible manager of new records"),
    )
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.DRAFT)
    total_rows = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    # What the company review after the rows changed (``imports.review``), for undo:
    # [{"op": "line" | "job" | "job_dropped" | "merge" | "company", ...}] in the order done.
    review = models.JSONField(default=list)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_target_display()})"


class ImportRow(models.Model):
    """The report line of one source row, written in the same transaction as its records."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="rows")
    row_number = models.PositiveIntegerField()  # the row's number in the sheet (1-based)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    person_id = models.BigIntegerField(null=True, blank=True)
    company_id = models.BigIntegerField(null=True, blank=True)
    merged_with_row = models.PositiveIntegerField(null=True, blank=True)
    phones = models.JSONField(default=list)
    emails = models.JSONField(default=list)
    messages = models.JSONField(default=list)
    # For undo: [{"type": "person", "id": 1, "action": "create", "version": 1}, or
    # {"type": ..., "action": "update", "version": <after>, "before": {service data}}].
    changes = models.JSONField(default=list)
    # The row's evidence of which company it names, for the review over every import: the
    # name's key (``core.names.name_key``, legal form aside) and the tax id given.
    company_key = models.CharField(max_length=300, blank=True, default="")
    company_tax_id = models.CharField(max_length=50, blank=True, default="")

    class Meta:
        ordering = ["run", "row_number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "row_number"], name="import_row_unique"),
        ]
        indexes = [
            models.Index(
                fields=["company_key"],
                name="import_row_company_key",
                condition=~models.Q(company_key=""),
            ),
            # the rows on a company the review merges away follow it
            models.Index(
                fields=["company_id"],
                name="import_row_company",
                condition=models.Q(company_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.row_number} {self.outcome}"


class MappingPreset(TimestampedModel):
    """A saved column mapping, offered again when a file with the same headers comes."""

    name = models.CharField(_("name"), max_length=100)
    target = models.CharField(max_length=20, choices=Target.choices)
    signature = models.CharField(max_length=64, db_index=True)
    headers = models.JSONField(default=list)
    mapping = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["name", "target"], name="mapping_preset_unique"),
        ]

    def __str__(self) -> str:
        return self.name
