"""Shared kernel tables and base models every app composes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TimestampedModel(models.Model):
    """Creation and last-change times, in UTC."""

    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        abstract = True


class VersionedModel(models.Model):
    """An integer version bumped by every service write (optimistic concurrency, R10)."""

    version = models.PositiveIntegerField(_("version"), default=1)

    class Meta:
        abstract = True


class SoftDeleteModel(models.Model):
    """Users never hard-delete: a deleted row is kept and listed in the recycle bin."""

    deleted_at = models.DateTimeField(_("deleted"), null=True, blank=True, db_index=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        abstract = True

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class CustomFieldsModel(models.Model):
    """Values of admin-defined fields, validated against CustomFieldDefinition."""

    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)

    class Meta:
        abstract = True


class AuditEntry(models.Model):
    """One audited write: who, when, which object, field old -> new. Append-only."""

    class Action(models.TextChoices):
        CREATE = "create", _("created")
        UPDATE = "update", _("updated")
        DELETE = "delete", _("moved to recycle bin")
        RESTORE = "restore", _("restored")
        MERGE = "merge", _("merged")

    at = models.DateTimeField(_("when"), auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("who"),
    )
    object_type = models.CharField(_("object type"), max_length=40)
    object_id = models.BigIntegerField(_("object id"))
    object_repr = models.CharField(_("object"), max_length=300, blank=True)
    action = models.CharField(_("action"), max_length=10, choices=Action.choices)
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "-at"], name="audit_object_idx")
        ]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.object_type}#{self.object_id} {self.action} at {self.at:%Y-%m-%d %H:%M}"


class OutboxEvent(models.Model):
    """A domain event recorded in the same transaction as the change it reports.

    The worker claims rows with a lease; the reaper re-queues expired leases, so a
    killed worker delays an event but never loses it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        CLAIMED = "claimed", _("in progress")
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    name = models.CharField(_("event"), max_length=60, db_index=True)
    object_type = models.CharField(max_length=40)
    object_id = models.BigIntegerField()
    payload = models.JSONField(default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    available_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=80, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    # Not stored: set by ``outbox_claim`` when the event came straight from "pending" with no
    # attempt before, so no handler can have run on it yet (nothing to look up).
    first_claim = False

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["status", "available_at"], name="outbox_due_idx"),
            models.Index(fields=["object_type", "object_id"], name="outbox_object_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.object_type}#{self.object_id} ({self.status})"


class HandlerRun(models.Model):
    """Proof that one handler processed one event: its unique key makes a replay a no-op."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="runs")
    handler = models.CharField(max_length=120)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "handler"], name="handler_run_once"),
        ]

    def __str__(self) -> str:
        return f"{self.handler} on event {self.event_id}"


class CustomFieldDefinition(TimestampedModel):
    """An admin-defined field on companies, people (later deals and leads)."""

    class Type(models.TextChoices):
        TEXT = "text", _("text")
        NUMBER = "number", _("number")
        MONEY = "money", _("money")
        DATE = "date", _("date")
        CHOICE = "choice", _("choice")
        MULTI_CHOICE = "multi_choice", _("multiple choice")
        BOOL = "bool", _("yes / no")
        USER = "user", _("user")

    class ObjectType(models.TextChoices):
        COMPANY = "company", _("company")
        PERSON = "person", _("person")
        DEAL = "deal", _("deal")
        LEAD = "lead", _("lead")

    object_type = models.CharField(_("applies to"), max_length=20, choices=ObjectType.choices)
    name = models.SlugField(
        _("name"),
        max_length=50,
        help_text=_("Stable key used by the API, imports and rules: a-z, 0-9 and _."),
    )
    label = models.CharField(_("label"), max_length=100)
    type = models.CharField(_("type"), max_length=20, choices=Type.choices)
    required = models.BooleanField(_("required"), default=False)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    order = models.PositiveIntegerField(_("order"), default=100)
    help_text = models.CharField(_("help text"), max_length=200, blank=True)

    class Meta:
        ordering = ["object_type", "order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["object_type", "name"], name="custom_field_name_unique"
            ),
        ]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return f"{self.object_type}.{self.name}"


def _attachment_path(instance: Attachment, filename: str) -> str:
    from django.utils import timezone

    return (
        f"attachments/{timezone.now():%Y/%m}/{instance.object_type}-{instance.object_id}/{filename}"
    )


class Attachment(models.Model):
    """A file attached to a company, person, deal or lead. Removal keeps the file (audited)."""

    object_type = models.CharField(_("object type"), max_length=20)
    object_id = models.BigIntegerField(_("object id"))
    file = models.FileField(_("file"), upload_to=_attachment_path, max_length=400)
    name = models.CharField(_("name"), max_length=255)
    size = models.PositiveBigIntegerField(_("size"), default=0)
    content_type = models.CharField(max_length=120, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(_("uploaded"), auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="attachment_object_idx")]
        verbose_name = _("file")
        verbose_name_plural = _("files")

    def __str__(self) -> str:
        return self.name


class SearchDocument(models.Model):
    """One row per searchable record: names, emails, tax ids and phone digits as text.

    SQLite keeps an FTS5 index over ``body`` (triggers in the migration);
    PostgreSQL a trigram GIN index. ``rapport.core.search`` hides the difference.
    """

    object_type = models.CharField(max_length=20)
    object_id = models.BigIntegerField()
    title = models.CharField(max_length=300)
    subtitle = models.CharField(max_length=300, blank=True)
    body = models.TextField()
    team_id = models.BigIntegerField(null=True, blank=True)
    responsible_id = models.BigIntegerField(null=True, blank=True)
    deleted = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["object_type", "object_id"], name="search_doc_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}#{self.object_id} {self.title}"
