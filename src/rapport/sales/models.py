"""Leads, pipelines with stages, deals and their stage history."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rapport.core.models import CustomFieldsModel, SoftDeleteModel, TimestampedModel, VersionedModel
from rapport.sales.choices import DealStatus, LeadChannel, LeadStatus, PipelineKind


class Pipeline(TimestampedModel, VersionedModel):
    """A sales process the company configures: strict, free or stageless."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(
        _("kind"), max_length=12, choices=PipelineKind.choices, default=PipelineKind.FREE
    )
    order = models.PositiveIntegerField(_("order"), default=100)
    is_active = models.BooleanField(_("active"), default=True)
    no_contact_days = models.PositiveIntegerField(
        _("remind after days without contact"),
        null=True,
        blank=True,
        help_text=_(
            "The manager of an open deal is reminded when its client has had no call, email, "
            "meeting or message for this many days. Empty: no reminder."
        ),
    )

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")

    def __str__(self) -> str:
        return self.name

    @property
    def is_strict(self) -> bool:
        return self.kind == PipelineKind.STRICT

    @property
    def has_stages(self) -> bool:
        return self.kind != PipelineKind.STAGELESS


class Stage(TimestampedModel):
    """One step of a pipeline: order, colour, win probability, time limit, entry conditions."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(_("name"), max_length=100)
    order = models.PositiveIntegerField(_("order"), default=100)
    color = models.CharField(_("colour"), max_length=7, default="#4f7cff")
    probability = models.PositiveSmallIntegerField(_("win probability, %"), default=0)
    time_limit_hours = models.PositiveIntegerField(
        _("time limit, hours"),
        null=True,
        blank=True,
        help_text=_("How long a deal may stay in this stage; empty for no limit."),
    )
    required_fields = models.JSONField(
        _("required to enter"),
        default=list,
        blank=True,
        help_text=_("Deal fields that must be filled before a deal enters this stage."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["pipeline_id", "order", "id"]
        verbose_name = _("stage")
        verbose_name_plural = _("stages")

    def __str__(self) -> str:
        return self.name

    @property
    def time_limit(self) -> dt.timedelta | None:
        return dt.timedelta(hours=self.time_limit_hours) if self.time_limit_hours else None


class LossReason(models.Model):
    """Why a deal was lost; the list is configurable."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    order = models.PositiveIntegerField(_("order"), default=100)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("loss reason")
        verbose_name_plural = _("loss reasons")

    def __str__(self) -> str:
        return self.name


class Owned(TimestampedModel, VersionedModel, SoftDeleteModel, CustomFieldsModel):
    """What leads and deals share: responsible manager, team (scopes), creator, source."""

    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("responsible manager"),
    )
    team = models.ForeignKey(
        "accounts.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("team"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(_("source"), max_length=100, blank=True)

    class Meta:
        abstract = True


class Lead(Owned):
    """An incoming request: who asked, what they want, how it came in."""

    name = models.CharField(_("name"), max_length=200, blank=True)
    phone = models.CharField(_("phone"), max_length=100, blank=True)
    phone_e164 = models.CharField(max_length=20, blank=True, db_index=True, editable=False)
    email = models.CharField(_("email"), max_length=254, blank=True)
    company_name = models.CharField(_("company name"), max_length=300, blank=True)
    text = models.TextField(_("request"), blank=True)
    interest = models.CharField(_("product or service"), max_length=200, blank=True)
    # Where the client is, as they gave it (a web form's city field): routes by region.
    address = models.CharField(_("city or address"), max_length=300, blank=True)
    amount = models.DecimalField(
        _("estimated amount"), max_digits=16, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    channel = models.CharField(
        _("channel"), max_length=12, choices=LeadChannel.choices, default=LeadChannel.MANUAL
    )
    utm_source = models.CharField("utm_source", max_length=100, blank=True)
    utm_medium = models.CharField("utm_medium", max_length=100, blank=True)
    utm_campaign = models.CharField("utm_campaign", max_length=100, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=LeadStatus.choices, default=LeadStatus.NEW
    )
    reject_reason = models.CharField(_("rejection reason"), max_length=300, blank=True)
    company = models.ForeignKey(
        "parties.Company", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    person = models.ForeignKey(
        "parties.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    converted_at = models.DateTimeField(_("converted"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        indexes = [
            models.Index(fields=["status", "-id"], name="lead_status_idx"),
            models.Index(fields=["responsible", "-id"], name="lead_resp_idx"),
            models.Index(fields=["team", "-id"], name="lead_team_idx"),
            models.Index(fields=["channel", "-id"], name="lead_channel_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.company_name or self.phone or self.email or f"#{self.pk}"


class Deal(Owned):
    """A sale in progress: who, how much, which pipeline and stage, open / won / lost."""

    title = models.CharField(_("title"), max_length=200)
    company = models.ForeignKey(
        "parties.Company",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
        verbose_name=_("company"),
    )
    person = models.ForeignKey(
        "parties.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deals",
        verbose_name=_("person"),
    )
    contact = models.ForeignKey(
        "parties.Person",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contact_deals",
        verbose_name=_("contact person"),
    )
    pipeline = models.ForeignKey(
        Pipeline, on_delete=models.PROTECT, related_name="deals", verbose_name=_("pipeline")
    )
    stage = models.ForeignKey(
        Stage,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deals",
        verbose_name=_("stage"),
    )
    amount = models.DecimalField(
        _("amount"), max_digits=16, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    expected_close = models.DateField(_("expected close date"), null=True, blank=True)
    coworkers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="cowork_deals",
        verbose_name=_("co-workers"),
    )
    lead = models.ForeignKey(
        Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="deals"
    )
    status = models.CharField(
        _("status"), max_length=8, choices=DealStatus.choices, default=DealStatus.OPEN
    )
    loss_reason = models.ForeignKey(
        LossReason,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("loss reason"),
    )
    loss_comment = models.TextField(_("loss comment"), blank=True)
    won_amount = models.DecimalField(
        _("actual amount"), max_digits=16, decimal_places=2, null=True, blank=True
    )
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    stage_entered_at = models.DateTimeField(_("in stage since"), default=timezone.now)
    # When the stage's time limit runs out (null: no limit or closed) and when the stalled
    # reminder for the current stay went out (reset on every move): exactly once per breach.
    stage_deadline = models.DateTimeField(null=True, blank=True, editable=False)
    stalled_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The last done call, email, meeting or message with the deal's client (activities keep
    # it), and when the manager was last reminded of a silence: once per silence.
    last_contact_at = models.DateTimeField(null=True, blank=True, editable=False)
    no_contact_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("deal")
        verbose_name_plural = _("deals")
        indexes = [
            models.Index(fields=["pipeline", "status", "stage", "-id"], name="deal_board_idx"),
            models.Index(fields=["responsible", "-id"], name="deal_resp_idx"),
            # a manager's deals in one stage (the deal list filtered by both)
            models.Index(fields=["responsible", "stage", "-id"], name="deal_resp_stage_idx"),
            models.Index(fields=["team", "-id"], name="deal_team_idx"),
            models.Index(fields=["status", "stage_deadline"], name="deal_deadline_idx"),
            models.Index(fields=["company", "-id"], name="deal_company_idx"),
            models.Index(fields=["person", "-id"], name="deal_person_idx"),
            # The board's column counts and sums, read from the index alone.
            models.Index(
                fields=["pipeline", "status", "stage", "amount"],
                condition=models.Q(deleted_at__isnull=True),
                name="deal_board_sum_idx",
            ),
            # The funnel's results by manager, team and source, grouped in index order.
            models.Index(
                fields=[
                    "pipeline",
                    "responsible",
                    "team",
                    "source",
                    "status",
                    "closed_at",
                    "won_amount",
                ],
                condition=models.Q(deleted_at__isnull=True),
                name="deal_results_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status == DealStatus.OPEN

    @property
    def is_overdue(self) -> bool:
        return bool(
            self.status == DealStatus.OPEN
            and self.stage_deadline is not None
            and self.stage_deadline < timezone.now()
        )

    @property
    def days_in_stage(self) -> int:
        return max(0, (timezone.now() - self.stage_entered_at).days)


class StageChange(models.Model):
    """One move of a deal: from → to (stage or status), when, by whom, time spent before."""

    deal = models.ForeignKey(Deal, on_delete=models.CASCADE, related_name="stage_changes")
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    from_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_stage = models.ForeignKey(
        Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_status = models.CharField(max_length=8, blank=True)
    to_status = models.CharField(max_length=8, choices=DealStatus.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    seconds_in_previous = models.PositiveBigIntegerField(null=True, blank=True)
    limit_exceeded = models.BooleanField(default=False)
    amount = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    # Why the deal was lost, on the losing move (the deal's own reason changes if it is
    # reopened and lost again; "lost by reason" reports read this one).
    loss_reason = models.ForeignKey(
        LossReason,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # never searched by; reasons are retired, not deleted
    )

    class Meta:
        ordering = ["deal_id", "at", "id"]
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")
        indexes = [
            # a deal's history in order (cards, the funnel's first-entry check, rebuilds)
            models.Index(fields=["deal", "at"], name="stagechange_deal_idx"),
            models.Index(fields=["to_stage", "at"], name="stagechange_to_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.deal_id}: {self.from_stage_id}->{self.to_stage_id} ({self.to_status})"

    @property
    def previous_since(self) -> dt.datetime | None:
        """When the deal entered the previous stage (for "time in stage" displays)."""
        if self.seconds_in_previous is None:
            return None
        return self.at - dt.timedelta(seconds=self.seconds_in_previous)


class StageDay(models.Model):
    """The funnel's counters, added up from the stage history per pipeline, day, stage and
    the deal's manager, team and loss reason (``sales/stage_days.py`` keeps them with every
    move and transfer, and rebuilds them from the history). A funnel for a year reads
    days × stages × managers rows instead of every move of the year.

    ``day`` is in the company's time zone (``TIME_ZONE``). The key columns hold 0 for
    "none" (no stage, manager, team or reason): the upsert's conflict target needs values
    that compare equal, and NULLs never do. On the "to" side of a move: ``created`` and the
    deal's first ``entered`` into the stage (with its amount then); on the "from" side:
    time spent in the stage (``timed``/``timed_seconds``/``over``) and closing as ``won`` or
    ``lost`` from it."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    stage = models.PositiveIntegerField(default=0)
    responsible = models.PositiveIntegerField(default=0)
    team = models.PositiveIntegerField(default=0)
    loss_reason = models.PositiveIntegerField(default=0)
    created = models.IntegerField(default=0)
    entered = models.IntegerField(default=0)
    entered_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    timed = models.IntegerField(default=0)
    timed_seconds = models.BigIntegerField(default=0)
    over = models.IntegerField(default=0)
    won = models.IntegerField(default=0)
    won_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    lost = models.IntegerField(default=0)
    lost_amount = models.DecimalField(max_digits=18, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "day", "stage", "responsible", "team", "loss_reason"],
                name="stageday_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.pipeline_id} {self.day} stage {self.stage}"
