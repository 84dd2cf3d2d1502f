"""Rules: save (every part checked against what exists), switch on/off, reorder, delete,
test against a record. Only administrators change rules."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.automations.actions import ACTIONS
from rapport.automations.conditions import conditions_clean
from rapport.automations.engine import rule_dry_run, rules_cache_clear
from rapport.automations.models import Rule
from rapport.automations.schema import OBJECT_MODELS, fields_for, load
from rapport.automations.triggers import TRIGGERS, config_clean, rule_object_type
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.scopes import scope_allows

RULE_FIELDS = [
    "name",
    "description",
    "trigger",
    "trigger_config",
    "object_type",
    "conditions",
    "actions",
    "is_active",
    "order",
    "once_per_record",
]
MAX_ACTIONS = 20


def _require_admin(actor: User | None) -> None:
    if actor is not None and not (actor.is_superuser or actor.is_rapport_admin):
        raise PermissionDenied(_("Only administrators may change automation rules."))


def rule_clean(data: dict[str, Any], existing: Rule | None = None) -> dict[str, Any]:
    """The rule's fields, checked: trigger, conditions by field type, each action's settings.
    Raises FieldErrors naming every problem (e.g. ``conditions.2.value``)."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}

    def pick(name: str, default: Any) -> Any:
        if name in data:
            return data[name]
        return getattr(existing, name) if existing is not None else default

    out["name"] = str(pick("name", "") or "").strip()[:200]
    if not out["name"]:
        errors["name"] = [_("This field is required.")]
    out["description"] = str(pick("description", "") or "").strip()
    trigger = str(pick("trigger", "") or "")
    out["trigger"] = trigger
    spec = TRIGGERS.get(trigger)
    config, config_errors = config_clean(trigger, pick("trigger_config", {}))
    errors.update(config_errors)
    out["trigger_config"] = config
    object_type = rule_object_type(trigger, config)
    out["object_type"] = object_type
    fields = fields_for(object_type) if object_type else {}
    conditions, cond_errors = conditions_clean(
        pick("conditions", {}), fields, has_changes=bool(spec and spec.has_changes)
    )
    errors.update(cond_errors)
    out["conditions"] = conditions
    actions_in = pick("actions", [])
    actions: list[dict[str, Any]] = []
    if not isinstance(actions_in, list) or not actions_in:
        errors["actions"] = [_("Add at least one action.")]
    elif len(actions_in) > MAX_ACTIONS:
        errors["actions"] = [_("A rule has at most %(n)s actions.") % {"n": MAX_ACTIONS}]
    else:
        for n, item in enumerate(actions_in, start=1):
            code = str((item or {}).get("type") or "") if isinstance(item, dict) else ""
            action = ACTIONS.get(code)
            if action is None:
                errors[f"actions.{n}.type"] = [_("Action %(n)s: choose what to do.") % {"n": n}]
                continue
            if action.object_types is not None and object_type not in action.object_types:
                errors[f"actions.{n}.type"] = [
                    _("Action %(n)s: “%(action)s” does not apply to this trigger's record.")
                    % {"n": n, "action": action.label}
                ]
                continue
            param_errors: dict[str, list[str]] = {}
            params = action.clean(dict(item.get("params") or {}), object_type, param_errors)
            for key, messages in param_errors.items():
                errors[f"actions.{n}.{key}"] = [
                    _("Action %(n)s: %(message)s") % {"n": n, "message": m} for m in messages
                ]
            actions.append({"type": code, "params": params})
    out["actions"] = actions
    out["is_active"] = bool(pick("is_active", True))
    out["once_per_record"] = bool(pick("once_per_record", False))
    try:
        out["order"] = int(pick("order", 100) or 0)
        if out["order"] < 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["order"] = [_("Enter a whole number.")]
    if errors:
        raise FieldErrors(errors)
    return out


def rule_problems(rule: Rule) -> list[str]:
    """What no longer holds in a saved rule (a field, user, stage or template removed)."""
    try:
        rule_clean({}, existing=rule)
    except FieldErrors as exc:
        return [f"{' '.join(str(m) for m in msgs)}" for msgs in exc.errors.values()]
    return []


@transaction.atomic
def rule_save(
    *,
    actor: User | None,
    data: dict[str, Any],
    rule: Rule | None = None,
    version: int | None = None,
) -> Rule:
    _require_admin(actor)
    if rule is not None:
        rule = Rule.objects.select_for_update().get(pk=rule.pk, deleted_at__isnull=True)
        if version is not None and int(version) != rule.version:
            raise StaleVersion(current_version=rule.version)
    fields = rule_clean(data, existing=rule)
    if rule is None:
        rule = Rule(**fields, created_by=actor if getattr(actor, "pk", None) else None)
        if rule.trigger in ("date", "schedule"):
            rule.checked_until = timezone.now()
        rule.save()
        audit_record(
            actor=actor,
            instance=rule,
            object_type="rule",
            action="create",
            changes={k: [None, v] for k, v in snapshot(rule, RULE_FIELDS).items()},
        )
    else:
        before = snapshot(rule, RULE_FIELDS)
        for key, value in fields.items():
            setattr(rule, key, value)
        if rule.is_active:
            rule.inactive_reason = ""
        if before["trigger"] != rule.trigger or before["trigger_config"] != rule.trigger_config:
            rule.checked_until = timezone.now()
        changes = diff(before, snapshot(rule, RULE_FIELDS))
        if changes:
            changes["version"] = [rule.version, rule.version + 1]
            rule.version += 1
            rule.save()
            audit_record(
                actor=actor, instance=rule, object_type="rule", action="update", changes=changes
            )
    transaction.on_commit(rules_cache_clear)
    return rule


@transaction.atomic
def rule_set_active(*, actor: User | None, rule: Rule, active: bool) -> Rule:
    _require_admin(actor)
    rule = Rule.objects.select_for_update().get(pk=rule.pk, deleted_at__isnull=True)
    if active:
        problems = rule_problems(rule)
        if problems:
            raise FieldErrors.single("is_active", "; ".join(problems))
    if rule.is_active == active:
        return rule
    audit_record(
        actor=actor,
        instance=rule,
        object_type="rule",
        action="update",
        changes={
            "is_active": [rule.is_active, active],
            "version": [rule.version, rule.version + 1],
        },
    )
    rule.is_active = active
    rule.inactive_reason = ""
    rule.version += 1
    if active and rule.trigger in ("date", "schedule"):
        rule.checked_until = timezone.now()  # no firing for the time it was off
    rule.save()
    transaction.on_commit(rules_cache_clear)
    return rule


@transaction.atomic
def rule_delete(*, actor: User | None, rule: Rule) -> None:
    _require_admin(actor)
    Rule.objects.filter(pk=rule.pk).update(
        deleted_at=timezone.now(), is_active=False, updated_at=timezone.now()
    )
    audit_record(actor=actor, instance=rule, object_type="rule", action="delete")
    transaction.on_commit(rules_cache_clear)


@transaction.atomic
def rules_reorder(*, actor: User | None, rule_ids: list[int]) -> None:
    _require_admin(actor)
    for position, pk in enumerate(rule_ids, start=1):
        Rule.objects.filter(pk=pk).update(order=position * 10, updated_at=timezone.now())
    transaction.on_commit(rules_cache_clear)


def rule_test(*, actor: User | None, rule: Rule, object_id: Any) -> dict[str, Any]:
    """Evaluate ``rule`` against a record the actor may see; do nothing."""
    _require_admin(actor)
    if not rule.object_type:
        return rule_dry_run(rule, None)
    try:
        obj = load(rule.object_type, int(object_id))
    except (TypeError, ValueError):
        obj = None
    if obj is None or (
        actor is not None
        and rule.object_type in OBJECT_MODELS
        and not scope_allows(
            actor,
            rule.object_type,
            "view",
            owner_id=getattr(obj, "responsible_id", None),
            team_id=getattr(obj, "team_id", None),
        )
    ):
        raise FieldErrors.single("object_id", _("No such record, or it is outside your access."))
    result = rule_dry_run(rule, obj)
    result["record"] = str(obj)
    return result
