"""Lead routing (the routing table and its round-robin cursors) and absences with handovers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel, VersionedModel


class RoutingMethod(models.TextChoices):
    ROUND_ROBIN = "round_robin", _("round-robin")
    LEAST_BUSY = "least_busy", _("least busy")


class RoutingRule(TimestampedModel, VersionedModel):
    """One row of the routing table: conditions on a new lead, and who gets it.

    Empty conditions match every lead. The first active rule (by ``order``) that matches
    and has someone present decides.
    """

    name = models.CharField(_("name"), max_length=150)
    order = models.PositiveIntegerField(_("order"), default=100)
    is_active = models.BooleanField(_("active"), default=True)
    # Region, from the phone or the address: the lead's phone country or its company's /
    # person's country (ISO 3166 codes), a phone prefix ("+7495"), or a place named in the
    # company's or person's city and addresses ("Kazan", "Lombardia"). A lead matches the
    # region condition when any of the three lists matches.
    countries = models.JSONField(_("countries"), default=list, blank=True)
    phone_prefixes = models.JSONField(_("phone prefixes"), default=list, blank=True)
    places = models.JSONField(_("places"), default=list, blank=True)
    channels = models.JSONField(_("channels"), default=list, blank=True)
    # Matched against the lead's source and its utm_source, ignoring case.
    sources = models.JSONField(_("sources"), default=list, blank=True)
    amount_min = models.DecimalField(
        _("amount from"), max_digits=16, decimal_places=2, null=True, blank=True
    )
    amount_max = models.DecimalField(
        _("amount up to"), max_digits=16, decimal_places=2, null=True, blank=True
    )
    # Words looked for in the lead's "product or service", ignoring case; any one matches.
    products = models.JSONField(_("product or service"), default=list, blank=True)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("manager"),
    )
    target_team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("team"),
    )
    method = models.CharField(
        _("method"),
        max_length=12,
        choices=RoutingMethod.choices,
        default=RoutingMethod.ROUND_ROBIN,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(target_user__isnull=False) | models.Q(target_team__isnull=False),
                name="routing_rule_has_target",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RoutingCursor(models.Model):
    """Whose turn it is in a round-robin: the last user given a lead under ``key``.

    ``key`` is "rule:<id>" for a routing rule and "team:<id>" for a team picked directly
    (automation actions). The row is read under a lock, so two leads never take one turn.
    """

    key = models.CharField(max_length=60, unique=True)
    last_user_id = models.BigIntegerField(null=True, blank=True)
    turns = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key} → {self.last_user_id}"


class AbsenceKind(models.TextChoices):
    PLANNED = "planned", _("planned (vacation, trip)")
    UNPLANNED = "unplanned", _("unplanned (sick leave etc.)")


class AbsenceStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    ACTIVE = "active", _("away now")
    ENDED = "ended", _("ended")
    CANCELLED = "cancelled", _("cancelled")


class Absence(TimestampedModel, VersionedModel):
    """A user away from ``starts_at`` to ``ends_at``; their work goes to the deputy meanwhile.

    The worker starts and ends it (status scheduled → active → ended) exactly once each.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="absences",
        verbose_name=_("who is away"),
    )
    starts_at = models.DateTimeField(_("from"))
    ends_at = models.DateTimeField(_("until"))
    deputy = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deputy_for",
        verbose_name=_("deputy"),
    )
    kind = models.CharField(
        _("kind"), max_length=10, choices=AbsenceKind.choices, default=AbsenceKind.PLANNED
    )
    note = models.CharField(_("note"), max_length=300, blank=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=AbsenceStatus.choices,
        default=AbsenceStatus.SCHEDULED,
    )
    # What goes to the deputy at the start.
    hand_over_tasks = models.BooleanField(_("hand over open tasks"), default=True)
    hand_over_leads = models.BooleanField(_("hand over open leads"), default=True)
    hand_over_deals = models.BooleanField(_("hand over deals due in the period"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(_("started"), null=True, blank=True, editable=False)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True, editable=False)
    # Items that could not be handed over at the start (nobody present), with why.
    not_handed_over = models.JSONField(default=list, blank=True, editable=False)

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("absence")
        verbose_name_plural = _("absences")
        indexes = [
            models.Index(fields=["status", "starts_at"], name="absence_due_start_idx"),
            models.Index(fields=["status", "ends_at"], name="absence_due_end_idx"),
            models.Index(fields=["user", "starts_at"], name="absence_user_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="absence_ends_after"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.starts_at:%Y-%m-%d} – {self.ends_at:%Y-%m-%d}"


class HandoverObject(models.TextChoices):
    TASK = "task", _("task")
    LEAD = "lead", _("lead")
    DEAL = "deal", _("deal")


class Handover(models.Model):
    """One task, lead or deal moved from the absent user to someone else, and its return."""

    absence = models.ForeignKey(Absence, on_delete=models.CASCADE, related_name="handovers")
    object_type = models.CharField(_("what"), max_length=10, choices=HandoverObject.choices)
    object_id = models.BigIntegerField()
    object_repr = models.CharField(_("item"), max_length=300, blank=True)
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("handed to"),
    )
    at = models.DateTimeField(_("handed over"))
    returned_at = models.DateTimeField(_("taken back"), null=True, blank=True)

    class Meta:
        ordering = ["absence_id", "object_type", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["absence", "object_type", "object_id"], name="handover_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}#{self.object_id} {self.from_user_id}→{self.to_user_id}"
