"""Rules ("when … if … then …") and their execution log.

A rule is data: a trigger code, conditions and a list of actions, each checked
against the registries in ``triggers.py``, ``schema.py`` and ``actions.py`` when it
is saved. A run is logged per (rule, trigger occurrence); each action of a run is
keyed (rule, occurrence, action) so a retried event never does the same work twice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from rapport.core.models import TimestampedModel, VersionedModel


class Rule(TimestampedModel, VersionedModel):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    trigger = models.CharField(_("when"), max_length=40, db_index=True)
    trigger_config = models.JSONField(_("trigger settings"), default=dict, blank=True)
    object_type = models.CharField(_("record"), max_length=20, blank=True)
    conditions = models.JSONField(_("if"), default=dict, blank=True)
    actions = models.JSONField(_("then"), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    order = models.PositiveIntegerField(_("order"), default=100)
    once_per_record = models.BooleanField(_("run once per record"), default=False)
    inactive_reason = models.CharField(_("why inactive"), max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Date and schedule triggers: the last moment the scheduler looked (catch-up starts here).
    checked_until = models.DateTimeField(null=True, blank=True, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["order", "id"]
        verbose_name = _("rule")
        verbose_name_plural = _("rules")

    def __str__(self) -> str:
        return self.name


class RunOutcome(models.TextChoices):
    DONE = "done", _("done")
    NO_MATCH = "no_match", _("conditions not met")
    PARTIAL = "partial", _("some actions failed")
    FAILED = "failed", _("failed")
    LOOP_STOPPED = "loop_stopped", _("stopped: rule chain too deep")
    ALREADY_RAN = "already_ran", _("skipped: already ran for this record")
    RULE_BROKEN = "rule_broken", _("skipped: rule needs fixing")


class RuleRun(models.Model):
    # Empty on a grouped row: the rules whose conditions one event did not meet. No index
    # of its own: the unique (rule, occurrence) index starts with it.
    rule = models.ForeignKey(
        Rule,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runs",
        db_index=False,
    )
    # A grouped row's rules as " 3 7 12 " (the log filters it by " 7 "); empty otherwise.
    rule_ids = models.TextField(blank=True, default="")
    # What made it run: "event:<id>", "date:<object>:<yyyy-mm-dd>", "schedule:<iso time>".
    occurrence = models.CharField(max_length=120)
    event_id = models.BigIntegerField(null=True, blank=True)
    event_name = models.CharField(_("event"), max_length=60, blank=True)
    object_type = models.CharField(max_length=20, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    object_repr = models.CharField(_("record"), max_length=300, blank=True)
    depth = models.PositiveSmallIntegerField(default=0)
    matched = models.BooleanField(_("conditions met"), default=False)
    conditions_result = models.JSONField(default=list, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=RunOutcome.choices)
    message = models.TextField(_("message"), blank=True)
    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "occurrence"], name="ruleruns_once"),
            models.UniqueConstraint(
                fields=["occurrence"],
                condition=models.Q(rule__isnull=True),
                name="ruleruns_grouped_once",
            ),
        ]
        indexes = [
            models.Index(fields=["object_type", "object_id", "-id"], name="rulerun_object"),
            models.Index(fields=["outcome", "-id"], name="rulerun_outcome"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id or self.rule_ids.strip()}:{self.occurrence}"

    @property
    def grouped_rule_ids(self) -> list[int]:
        return [int(x) for x in self.rule_ids.split()]


class ActionOutcome(models.TextChoices):
    DONE = "done", _("done")
    QUEUED = "queued", _("queued for sending")
    SKIPPED = "skipped", _("nothing to do")
    FAILED = "failed", _("failed")


class ActionRun(models.Model):
    run = models.ForeignKey(RuleRun, on_delete=models.CASCADE, related_name="action_runs")
    index = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=40)
    key = models.CharField(max_length=200, unique=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=ActionOutcome.choices)
    detail = models.TextField(_("detail"), blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["run", "index"]

    def __str__(self) -> str:
        return self.key


class RuleRecordOnce(models.Model):
    """A rule marked "run once per record" has acted on this record."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="+")
    object_type = models.CharField(max_length=20)
    object_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "object_type", "object_id"], name="rule_once_per_record"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.object_type}:{self.object_id}"
