"""Lists of rules and of their runs (the execution log). Administrators only."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
    if rule_id:
        qs = qs.filter(rule_id=rule_id)
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
