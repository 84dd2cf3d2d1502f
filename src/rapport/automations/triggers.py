"""The "when" part: which events, dates and schedules start a rule."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from rapport.automations.conditions import _change_of, _compare
from rapport.automations.schema import DATE, DATETIME, fields_for

EVENT, DATE_KIND, SCHEDULE, KPI = "event", "date", "schedule", "kpi"


@dataclass(frozen=True)
class Trigger:
    code: str
    label: Any
    object_type: str  # "" for schedules and KPI thresholds: no record
    kind: str = EVENT
    events: tuple[str, ...] = ()
    has_changes: bool = False
    # Extra test on the event and its record (e.g. "an incoming email").
    test: Callable[[Mapping[str, Any], Any, Mapping[str, Any]], bool] | None = field(
        default=None, compare=False
    )
    # The keys of the event's changes of which one must be there for ``test`` to pass (a
    # cheap look the worker makes first, for each rule on every update); None: no such key.
    watches: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = field(
        default=None, compare=False
    )


def _field_changed(payload: Mapping[str, Any], obj: Any, config: Mapping[str, Any]) -> bool:
    path = str(config.get("field") or "")
    changed, _old, new = _change_of(payload.get("changes") or {}, path)
    if not changed:
        return False
    if config.get("to") in (None, ""):
        return True
    from rapport.automations.engine import fields_cached

    spec = fields_cached(obj_type_of(obj)).get(path)
    return spec is not None and _compare(spec.type, "eq", new, config["to"])


def _field_watched(config: Mapping[str, Any]) -> tuple[str, ...]:
    path = str(config.get("field") or "")
    if path.startswith("custom."):
        return ("custom_fields",)
    return (path, f"{path}_id")


def _stage_changed(payload: Mapping[str, Any], obj: Any, config: Mapping[str, Any]) -> bool:
    to = config.get("to_stage")
    return not to or str(payload.get("to_stage")) == str(to)


def _interaction(kind: str, direction: str, missed: bool = False) -> Any:
    def test(payload: Mapping[str, Any], obj: Any, config: Mapping[str, Any]) -> bool:
        if obj is None or obj.kind != kind or obj.direction != direction:
            return False
        return not missed or not obj.duration_seconds

    return test


def obj_type_of(obj: Any) -> str:
    return str(getattr(obj, "_rule_object_type", "") or obj._meta.model_name)


def _build() -> dict[str, Trigger]:
    t: list[Trigger] = []
    names = {
        "company": (gettext_lazy("a company is created"), gettext_lazy("a company is updated")),
        "person": (gettext_lazy("a person is created"), gettext_lazy("a person is updated")),
        "lead": (gettext_lazy("a lead is created"), gettext_lazy("a lead is updated")),
        "deal": (gettext_lazy("a deal is created"), gettext_lazy("a deal is updated")),
        "task": (gettext_lazy("a task is created"), gettext_lazy("a task is updated")),
        "interaction": (
            gettext_lazy("an interaction is logged"),
            gettext_lazy("an interaction is updated"),
        ),
    }
    changed = {
        "company": gettext_lazy("a company's field changes"),
        "person": gettext_lazy("a person's field changes"),
        "lead": gettext_lazy("a lead's field changes"),
        "deal": gettext_lazy("a deal's field changes"),
        "task": gettext_lazy("a task's field changes"),
        "interaction": gettext_lazy("an interaction's field changes"),
    }
    for ot, (created, updated) in names.items():
        created_event = "interaction.logged" if ot == "interaction" else f"{ot}.created"
        t.append(Trigger(f"{ot}.created", created, ot, events=(created_event,)))
        t.append(Trigger(f"{ot}.updated", updated, ot, events=(f"{ot}.updated",), has_changes=True))
        t.append(
            Trigger(
                f"{ot}.field_changed",
                changed[ot],
                ot,
                events=(f"{ot}.updated",),
                has_changes=True,
                test=_field_changed,
                watches=_field_watched,
            )
        )
    t += [
        Trigger(
            "deal.stage_changed",
            gettext_lazy("a deal moves to another stage"),
            "deal",
            events=("deal.stage_changed",),
            test=_stage_changed,
        ),
        Trigger("deal.won", gettext_lazy("a deal is won"), "deal", events=("deal.won",)),
        Trigger("deal.lost", gettext_lazy("a deal is lost"), "deal", events=("deal.lost",)),
        Trigger(
            "deal.stalled",
            gettext_lazy("a deal stalls (stage time limit or no contact)"),
            "deal",
            events=("deal.stalled",),
        ),
        Trigger(
            "lead.converted",
            gettext_lazy("a lead is converted"),
            "lead",
            events=("lead.converted",),
        ),
        Trigger(
            "email.received",
            gettext_lazy("an email is received"),
            "interaction",
            events=("interaction.logged",),
            test=_interaction("email", "in"),
        ),
        Trigger(
            "email.sent",
            gettext_lazy("an email is sent"),
            "interaction",
            events=("interaction.logged",),
            test=_interaction("email", "out"),
        ),
        Trigger(
            "call.incoming",
            gettext_lazy("an incoming call"),
            "interaction",
            events=("interaction.logged",),
            test=_interaction("call", "in"),
        ),
        Trigger(
            "call.missed",
            gettext_lazy("a missed call"),
            "interaction",
            events=("interaction.logged",),
            test=_interaction("call", "in", missed=True),
        ),
        Trigger(
            "task.overdue", gettext_lazy("a task is overdue"), "task", events=("task.overdue",)
        ),
        Trigger("date", gettext_lazy("a date field is reached"), "", kind=DATE_KIND),
        Trigger("schedule", gettext_lazy("on a schedule"), "", kind=SCHEDULE),
        Trigger(
            "kpi.crossed",
            gettext_lazy("a KPI crosses its threshold"),
            "",
            kind=KPI,
            events=("kpi.crossed",),
            test=lambda payload, obj, config: str(payload.get("kpi")) == str(config.get("kpi")),
        ),
    ]
    return {x.code: x for x in t}


TRIGGERS: dict[str, Trigger] = _build()

# Event name → the triggers it may start.
BY_EVENT: dict[str, list[Trigger]] = {}
for _trigger in TRIGGERS.values():
    for _name in _trigger.events:
        BY_EVENT.setdefault(_name, []).append(_trigger)


def rule_object_type(trigger: str, config: Mapping[str, Any]) -> str:
    spec = TRIGGERS.get(trigger)
    if spec is None:
        return ""
    if spec.kind in (DATE_KIND, SCHEDULE):  # a schedule "for each record" names its kind
        return str(config.get("object_type") or "")
    return spec.object_type


def _time(value: Any, key: str, errors: dict[str, list[str]]) -> str:
    text = str(value or "09:00").strip()
    try:
        parsed = dt.time.fromisoformat(text)
    except ValueError:
        errors[key] = [_("Enter a time as HH:MM.")]
        return text
    return parsed.strftime("%H:%M")


def config_clean(trigger: str, config: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:  # noqa: C901 - one branch per trigger kind
    errors: dict[str, list[str]] = {}
    spec = TRIGGERS.get(trigger)
    if spec is None:
        return {}, {"trigger": [_("Choose when the rule runs.")]}
    config = dict(config or {}) if isinstance(config, Mapping) else {}
    out: dict[str, Any] = {}
    if trigger.endswith(".field_changed"):
        fields = fields_for(spec.object_type)
        path = str(config.get("field") or "")
        own = {p: s for p, s in fields.items() if "." not in p or p.startswith("custom.")}
        if path not in own:
            errors["trigger_config.field"] = [_("Choose the field whose change starts the rule.")]
        out["field"] = path
        if config.get("to") not in (None, ""):
            out["to"] = config["to"]
    elif trigger == "deal.stage_changed":
        if config.get("to_stage"):
            from rapport.sales.models import Stage

            if not Stage.objects.filter(pk=config["to_stage"]).exists():
                errors["trigger_config.to_stage"] = [_("No such stage.")]
            out["to_stage"] = config["to_stage"]
    elif spec.kind == DATE_KIND:
        ot = str(config.get("object_type") or "")
        fields = fields_for(ot)
        path = str(config.get("field") or "")
        if not fields:
            errors["trigger_config.object_type"] = [_("Choose the kind of record.")]
        elif (
            path not in fields
            or fields[path].type not in (DATE, DATETIME)
            or ("." in path and not path.startswith("custom."))
        ):
            errors["trigger_config.field"] = [_("Choose a date field.")]
        try:
            offset = int(config.get("offset_days") or 0)
            if abs(offset) > 366:
                raise ValueError
        except (TypeError, ValueError):
            errors["trigger_config.offset_days"] = [
                _("Enter a number of days between -366 and 366.")
            ]
            offset = 0
        out.update(
            object_type=ot,
            field=path,
            offset_days=offset,
            at=_time(config.get("at"), "trigger_config.at", errors),
        )
    elif spec.kind == SCHEDULE:
        every = str(config.get("every") or "day")
        if every not in ("hour", "day", "week", "month"):
            errors["trigger_config.every"] = [_("Choose hour, day, week or month.")]
        out["every"] = every
        out["at"] = _time(config.get("at"), "trigger_config.at", errors)
        each = str(config.get("object_type") or "")
        if each:  # "for each deal (that meets the conditions)": the actions run per record
            if not fields_for(each):
                errors["trigger_config.object_type"] = [_("Choose the kind of record.")]
            out["object_type"] = each
        if every == "week":
            try:
                out["weekday"] = int(config.get("weekday") or 0)
                if not 0 <= out["weekday"] <= 6:
                    raise ValueError
            except (TypeError, ValueError):
                errors["trigger_config.weekday"] = [_("Choose a day of the week.")]
        if every == "month":
            try:
                out["day"] = int(config.get("day") or 1)
                if not 1 <= out["day"] <= 28:
                    raise ValueError
            except (TypeError, ValueError):
                errors["trigger_config.day"] = [_("Choose a day between 1 and 28.")]
    elif spec.kind == KPI:
        out["kpi"] = str(config.get("kpi") or "").strip()
        if not out["kpi"]:
            errors["trigger_config.kpi"] = [_("Name the KPI.")]
    return out, errors


# --- schedules --------------------------------------------------------------------------------


def schedule_occurrences(
    config: Mapping[str, Any], after: dt.datetime, until: dt.datetime, tz: dt.tzinfo
) -> list[dt.datetime]:
    """Moments of a schedule in (after, until], in UTC, oldest first (at most 100)."""
    hh, mm = (int(x) for x in str(config.get("at") or "09:00").split(":"))
    every = config.get("every", "day")
    out: list[dt.datetime] = []
    local_after = after.astimezone(tz)
    if every == "hour":
        moment = local_after.replace(minute=mm, second=0, microsecond=0)
        step = dt.timedelta(hours=1)
        while moment <= local_after:
            moment += step
        while moment <= until and len(out) < 100:
            out.append(moment.astimezone(dt.UTC))
            moment += step
        return out
    day = local_after.date()
    while len(out) < 100:
        candidate = dt.datetime.combine(day, dt.time(hh, mm), tzinfo=tz)
        if candidate > until:
            break
        ok = (
            every == "day"
            or (every == "week" and day.weekday() == int(config.get("weekday", 0)))
            or (every == "month" and day.day == int(config.get("day", 1)))
        )
        if ok and candidate > after:
            out.append(candidate.astimezone(dt.UTC))
        day += dt.timedelta(days=1)
    return out
