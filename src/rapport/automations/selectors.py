"""Lists of rules and of their runs (the execution log). Administrators only."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from rapport.automations.conditions import outcomes_shown
from rapport.automations.models import ActionRun, Rule, RuleRun


def _admin(user: Any) -> bool:
    return bool(
        user is not None and (user.is_superuser or getattr(user, "is_rapport_admin", False))
    )


def rule_list(*, user: Any, trigger: str = "", active: str = "") -> QuerySet[Rule]:
    qs = Rule.objects.filter(deleted_at__isnull=True)
    if not _admin(user):
        return qs.none()
    if trigger:
        qs = qs.filter(trigger=trigger)
    if active in ("1", "0"):
        qs = qs.filter(is_active=active == "1")
    return qs.order_by("order", "id")


def rule_get(*, user: Any, rule_id: int) -> Rule:
    return rule_list(user=user).get(pk=rule_id)


def run_list(
    *,
    user: Any,
    rule_id: int | None = None,
    object_type: str = "",
    object_id: int | None = None,
    outcome: str = "",
    matched: str = "",
) -> QuerySet[RuleRun]:
    qs = RuleRun.objects.select_related("rule")
    if not _admin(user):
        return qs.none()
    if rule_id:  # its own runs and the events' grouped rows naming it
        qs = qs.filter(Q(rule_id=rule_id) | Q(rule__isnull=True, rule_ids__contains=f" {rule_id} "))
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if matched in ("1", "0"):
        qs = qs.filter(matched=matched == "1")
    return qs.order_by("-id")


def run_actions(runs: list[RuleRun]) -> dict[int, list[ActionRun]]:
    out: dict[int, list[ActionRun]] = {}
    for a in ActionRun.objects.filter(run__in=runs).order_by("run_id", "index"):
        out.setdefault(a.run_id, []).append(a)
    return out


def run_entries(runs: list[RuleRun], *, rule_id: int | None = None) -> list[dict[str, Any]]:
    """The log's lines for ``runs``: each with its actions and, per rule it concerns, that
    rule and its conditions' results. A grouped row (the rules whose conditions one event
    did not meet) reads as the run of ``rule_id`` alone when a rule is chosen: its instance
    is narrowed to that rule in memory (never saved)."""
    wanted = {pk for r in runs if r.rule_id is None for pk in r.grouped_rule_ids}
    rules = Rule.objects.in_bulk(wanted) if wanted else {}
    actions = run_actions([r for r in runs if r.rule_id is not None])
    out: list[dict[str, Any]] = []
    for run in runs:
        if run.rule_id is not None:
            parts = [
                {"rule_id": run.rule_id, "rule": run.rule, "conditions": run.conditions_result}
            ]
        else:
            result = run.conditions_result or {}
            values = result.get("values") or {}
            parts = [
                {
                    "rule_id": pk,
                    "rule": rules.get(pk),
                    "conditions": outcomes_shown(outcomes, values),
                }
                for pk, outcomes in result.get("rules") or ()
                if not rule_id or pk == rule_id
            ]
            if rule_id and parts:
                run.rule_id, run.rule = rule_id, parts[0]["rule"]
                run.rule_ids, run.conditions_result = "", parts[0]["conditions"]
        out.append({"run": run, "parts": parts, "actions": actions.get(run.pk, [])})
    return out
