"""A rule read as a sentence: "When a deal is created, if Amount > 100000, then …"."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from rapport.automations.actions import ACTIONS
from rapport.automations.conditions import NO_VALUE, OPERATORS
from rapport.automations.models import Rule
from rapport.automations.schema import fields_for, object_label
from rapport.automations.triggers import TRIGGERS


def _weekday(n: int) -> str:
    names = (
        _("Monday"),
        _("Tuesday"),
        _("Wednesday"),
        _("Thursday"),
        _("Friday"),
        _("Saturday"),
        _("Sunday"),
    )
    return names[n % 7]


def trigger_text(rule: Rule, labels: dict[str, str]) -> str:
    spec = TRIGGERS.get(rule.trigger)
    if spec is None:
        return rule.trigger
    config: dict[str, Any] = rule.trigger_config or {}
    text = str(spec.label)
    if rule.trigger.endswith(".field_changed") and config.get("field"):
        text = _("%(field)s of a %(record)s changes") % {
            "field": labels.get(config["field"], config["field"]),
            "record": object_label(rule.trigger.split(".")[0]),
        }
        if config.get("to") not in (None, ""):
            text += " " + _("to “%(value)s”") % {"value": config["to"]}
    elif rule.trigger == "date":
        days = int(config.get("offset_days") or 0)
        field = labels.get(config.get("field", ""), config.get("field", ""))
        if days < 0:
            text = _("%(days)s days before %(field)s, at %(at)s") % {
                "days": -days,
                "field": field,
                "at": config.get("at"),
            }
        elif days > 0:
            text = _("%(days)s days after %(field)s, at %(at)s") % {
                "days": days,
                "field": field,
                "at": config.get("at"),
            }
        else:
            text = _("on %(field)s, at %(at)s") % {"field": field, "at": config.get("at")}
    elif rule.trigger == "schedule":
        every = config.get("every")
        if every == "hour":
            text = _("every hour at minute %(m)s") % {"m": str(config.get("at", "00:00"))[3:]}
        elif every == "week":
            text = _("every %(day)s at %(at)s") % {
                "day": _weekday(int(config.get("weekday", 0))),
                "at": config.get("at"),
            }
        elif every == "month":
            text = _("on day %(day)s of every month at %(at)s") % {
                "day": config.get("day", 1),
                "at": config.get("at"),
            }
        else:
            text = _("every day at %(at)s") % {"at": config.get("at")}
        if config.get("object_type"):
            text = _("%(when)s, for each %(record)s") % {
                "when": text,
                "record": object_label(str(config["object_type"])),
            }
    return text


def rule_sentence(rule: Rule) -> dict[str, Any]:
    """The parts of the rule as text: when, if (list), then (list)."""
    fields = fields_for(rule.object_type) if rule.object_type else {}
    labels = {p: str(s.label) for p, s in fields.items()}
    conditions = []
    for item in (rule.conditions or {}).get("items", []):
        op = str(OPERATORS.get(item["op"], item["op"]))
        value = item.get("value")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        label = labels.get(item["field"], item["field"])
        text = f"{label} {op}" if item["op"] in NO_VALUE else f"{label} {op} {value}"
        conditions.append(text)
    match = (rule.conditions or {}).get("match", "all")
    actions = []
    for spec in rule.actions or []:
        action = ACTIONS.get(spec.get("type", ""))
        actions.append(str(action.label) if action else spec.get("type", ""))
    return {
        "when": trigger_text(rule, labels),
        "if": conditions,
        "joiner": _("and") if match == "all" else _("or"),
        "then": actions,
    }
