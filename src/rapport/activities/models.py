"""Interactions with clients, tasks, and in-app notifications."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rapport.core.models import SoftDeleteModel, TimestampedModel, VersionedModel


class InteractionKind(models.TextChoices):
    CALL = "call", _("phone call")
    EMAIL = "email", _("email")
    MEETING = "meeting", _("meeting")
    PLANNED = "planned", _("planned interaction")
    NOTE = "note", _("note")
    MESSAGE = "message", _("SMS / messenger")


class InteractionStatus(models.TextChoices):
    PLANNED = "planned", _("planned")
    DONE = "done", _("done")
    CANCELLED = "cancelled", _("cancelled")


class Direction(models.TextChoices):
    NONE = "", "—"
    IN = "in", _("incoming")
    OUT = "out", _("outgoing")


class Linked(TimestampedModel, VersionedModel, SoftDeleteModel):
    """What interactions and tasks share: an owner (scopes) and the cards they belong to."""

    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("responsible"),
    )
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    company = models.ForeignKey(
        "parties.Company",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("company"),
    )
    person = models.ForeignKey(
        "parties.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("person"),
    )
    deal = models.ForeignKey(
        "sales.Deal",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("deal"),
    )
    lead = models.ForeignKey(
        "sales.Lead",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("lead"),
    )

    class Meta:
        abstract = True


class Thread(models.Model):
    """Interactions about one subject, in order."""

    subject = models.CharField(_("subject"), max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.subject or f"#{self.pk}"


class Interaction(Linked):
    """A call, email, meeting, note or message with a client, planned or done."""

    kind = models.CharField(_("kind"), max_length=10, choices=InteractionKind.choices)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=InteractionStatus.choices,
        default=InteractionStatus.DONE,
    )
    direction = models.CharField(
        _("direction"), max_length=3, choices=Direction.choices, blank=True, default=""
    )
    subject = models.CharField(_("subject"), max_length=300, blank=True)
    body = models.TextField(_("text"), blank=True)
    at = models.DateTimeField(_("when"), default=timezone.now)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(_("duration, seconds"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=300, blank=True)
    place = models.CharField(_("place"), max_length=300, blank=True)
    recording_url = models.URLField(_("recording"), max_length=500, blank=True)
    email_from = models.CharField(_("from"), max_length=300, blank=True)
    email_to = models.TextField(_("to"), blank=True)
    email_cc = models.TextField(_("cc"), blank=True)
    message_id = models.CharField(_("message id"), max_length=300, blank=True, db_index=True)
    thread = models.ForeignKey(
        Thread, null=True, blank=True, on_delete=models.SET_NULL, related_name="interactions"
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        indexes = [
            models.Index(fields=["company", "-at"], name="interaction_company_idx"),
            models.Index(fields=["person", "-at"], name="interaction_person_idx"),
            models.Index(fields=["deal", "-at"], name="interaction_deal_idx"),
            models.Index(fields=["lead", "-at"], name="interaction_lead_idx"),
            models.Index(fields=["responsible", "-at"], name="interaction_resp_idx"),
        ]

    def __str__(self) -> str:
        return self.subject or self.get_kind_display()


class Participant(models.Model):
    """Someone in an interaction: a person, company or user of Rapport, or free text."""

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="participants"
    )
    person = models.ForeignKey(
        "parties.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    company = models.ForeignKey(
        "parties.Company", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.CharField(_("as typed"), max_length=300, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return str(self.person or self.company or self.user or self.text)


class TaskStatus(models.TextChoices):
    OPEN = "open", _("open")
    IN_PROGRESS = "in_progress", _("in progress")
    DONE = "done", _("done")
    CANCELLED = "cancelled", _("cancelled")


class Priority(models.IntegerChoices):
    LOW = 1, _("low")
    NORMAL = 2, _("normal")
    HIGH = 3, _("high")
    URGENT = 4, _("urgent")


class Task(Linked):
    """Work to do by a date: an assignee (``responsible``), co-executors, subtasks, a reminder."""

    title = models.CharField(_("title"), max_length=300)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=Priority.choices, default=Priority.NORMAL
    )
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    remind_at = models.DateTimeField(_("remind at"), null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    overdue_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="subtasks",
        verbose_name=_("parent task"),
    )
    coexecutors = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="cotasks", verbose_name=_("co-executors")
    )
    # Set by the stalled-deal reminder: which breach this task is about (one task per breach).
    origin_key = models.CharField(
        max_length=120, blank=True, null=True, unique=True, editable=False
    )

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes = [
            models.Index(fields=["responsible", "status", "due_at"], name="task_mine_idx"),
            models.Index(fields=["team", "status", "due_at"], name="task_team_idx"),
            models.Index(fields=["status", "remind_at"], name="task_remind_idx"),
            models.Index(fields=["deal", "-id"], name="task_deal_idx"),
            models.Index(fields=["company", "-id"], name="task_company_idx"),
            models.Index(fields=["person", "-id"], name="task_person_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)

    @property
    def is_overdue(self) -> bool:
        return bool(self.is_open and self.due_at and self.due_at < timezone.now())


class NotificationKind(models.TextChoices):
    REMINDER = "reminder", _("reminder due")
    TASK_ASSIGNED = "task_assigned", _("task assigned")
    TASK_OVERDUE = "task_overdue", _("task overdue")
    DEAL_STALLED = "deal_stalled", _("deal stalled")
    AUTOMATION = "automation", _("message from an automation rule")
    HANDOVER = "handover", _("work handed over for an absence")
    LEAD_UNROUTED = "lead_unrouted", _("lead left without a manager")


class Notification(models.Model):
    """One message in a user's notification centre; ``key`` makes each one exactly once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=NotificationKind.choices)
    title = models.CharField(_("title"), max_length=300)
    body = models.TextField(_("text"), blank=True)
    url = models.CharField(max_length=300, blank=True)
    key = models.CharField(max_length=160, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [models.Index(fields=["user", "read_at", "-id"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return self.title


class CalendarFeed(models.Model):
    """A private, revocable address of a user's calendar as an ICS feed (token stored hashed)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feeds"
    )
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}…"


class CalDavAccount(models.Model):
    """A user's link to one calendar on a CalDAV server, synced both ways by the worker.

    The password is stored as typed (no encryption library is installed; see
    docs/decisions/0003-calendar-sync.md) and is never rendered back into a page."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="caldav_account"
    )
    server_url = models.URLField(_("server address"), max_length=500)
    username = models.CharField(_("user name"), max_length=200, blank=True)
    password = models.CharField(_("password"), max_length=500, blank=True)
    calendar_name = models.CharField(_("calendar"), max_length=200, blank=True)
    calendar_url = models.URLField(_("calendar address"), max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sync_at = models.DateTimeField(_("last sync"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        verbose_name = _("CalDAV account")
        verbose_name_plural = _("CalDAV accounts")

    def __str__(self) -> str:
        return f"{self.user} @ {self.server_url}"


class SyncedKind(models.TextChoices):
    INTERACTION = "interaction", _("interaction")
    TASK = "task", _("task")


class SyncedItem(models.Model):
    """One Rapport interaction or task as it was when last synced with one CalDAV calendar.

    ``object_id`` is empty for a remote item seen but not imported (outside the sync window);
    a later remote change brings it back for another look."""

    account = models.ForeignKey(CalDavAccount, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=12, choices=SyncedKind.choices)
    object_id = models.BigIntegerField(null=True, blank=True)
    href = models.CharField(max_length=500)
    uid = models.CharField(max_length=500)
    etag = models.CharField(max_length=200, blank=True)
    synced_version = models.PositiveIntegerField(default=0)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "kind", "object_id"], name="synceditem_object_uniq"
            ),
            models.UniqueConstraint(fields=["account", "uid"], name="synceditem_uid_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}#{self.object_id} ↔ {self.href}"
