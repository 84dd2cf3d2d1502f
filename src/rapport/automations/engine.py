"""Running rules: events from the outbox, dates and schedules from the worker's clock.

Exactly-once inside the database: every event's rules run in one transaction with the
outbox handler's run record (``core.events``), and each action carries a key
(rule, occurrence, action) that its effect stores (task ``origin_key``, notification
``key``, outgoing message ``key``). External sends are queued as outgoing messages in
that same transaction and delivered at least once with a stable Message-ID /
Idempotency-Key by the messaging app.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import logging
import time
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.automations.actions import ACTIONS, ActionFailed, Context, Result, RuleBroken
from rapport.automations.conditions import (
    Outcome,
    conditions_check,
    conditions_eval,
    outcomes_shown,
)
from rapport.automations.models import (
    ActionOutcome,
    ActionRun,
    Rule,
    RuleRecordOnce,
    RuleRun,
    RunOutcome,
)
from rapport.automations.schema import (
    OBJECT_MODELS,
    RELATIONS,
    FieldSpec,
    fields_for,
    load,
    load_many,
    model_for,
)
from rapport.automations.triggers import (
    BY_EVENT,
    DATE_KIND,
    SCHEDULE,
    TRIGGERS,
    schedule_occurrences,
)
from rapport.core.errors import FieldErrors, PermissionDenied, StaleVersion
from rapport.core.events import batch_handler, event_depth
from rapport.core.models import CustomFieldDefinition, OutboxEvent

log = logging.getLogger("rapport.automations")


def max_depth() -> int:
    return int(getattr(settings, "AUTOMATION_MAX_DEPTH", 3))


# --- the rules cache --------------------------------------------------------------------------


@dataclass
class _Cache:
    stamp: Any = None
    checked: float = 0.0
    by_trigger: dict[str, list[Rule]] = field(default_factory=dict)
    by_event: dict[str, list[Rule]] = field(default_factory=dict)
    paths: dict[str, set[str]] = field(default_factory=dict)
    watched: dict[int, tuple[str, ...]] = field(default_factory=dict)
    fields: dict[str, dict[str, FieldSpec]] = field(default_factory=dict)


_cache = _Cache()


def rules_cache_clear() -> None:
    _cache.stamp = None
    _cache.checked = 0.0


def _stamp() -> tuple[Any, ...]:
    rules = Rule.objects.aggregate(m=Max("updated_at"), c=Count("id"))
    defs = CustomFieldDefinition.objects.aggregate(m=Max("updated_at"), c=Count("id"))
    return (rules["m"], rules["c"], defs["m"], defs["c"])


def _refresh() -> None:
    ttl = float(getattr(settings, "AUTOMATION_RULES_TTL", 2.0))
    now = time.monotonic()
    if _cache.stamp is not None and now - _cache.checked < ttl:
        return
    stamp = _stamp()
    _cache.checked = now
    if stamp == _cache.stamp:
        return
    by_trigger: dict[str, list[Rule]] = {}
    for rule in Rule.objects.filter(is_active=True, deleted_at__isnull=True).order_by(
        "order", "id"
    ):
        by_trigger.setdefault(rule.trigger, []).append(rule)
    _cache.by_trigger = by_trigger
    _cache.by_event = {}
    _cache.paths = {}
    _cache.watched = {}
    _cache.fields = {}
    _cache.stamp = stamp


def rules_for(codes: Iterable[str]) -> list[Rule]:
    _refresh()
    out: list[Rule] = []
    for code in codes:
        out.extend(_cache.by_trigger.get(code, ()))
    out.sort(key=lambda r: (r.order, r.pk))
    return out


def fields_cached(object_type: str) -> dict[str, FieldSpec]:
    _refresh()
    if object_type not in _cache.fields:
        _cache.fields[object_type] = fields_for(object_type)
    return _cache.fields[object_type]


# --- running one rule -------------------------------------------------------------------------


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, FieldErrors):
        return "; ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in exc.errors.items())
    if isinstance(exc, ValidationError):
        return "; ".join(exc.messages)
    if isinstance(exc, StaleVersion):
        return _("The record was changed meanwhile.")
    return str(exc) or exc.__class__.__name__


def rule_flag_broken(rule: Rule, reason: str) -> None:
    """Switch the rule off with the reason; the rules page shows it."""
    Rule.objects.filter(pk=rule.pk).update(
        is_active=False, inactive_reason=reason[:500], updated_at=timezone.now()
    )
    rule.is_active = False
    rule.inactive_reason = reason[:500]
    rules_cache_clear()
    log.warning("rule %s switched off: %s", rule.pk, reason)


def _repr(obj: Any) -> str:
    return str(obj)[:300] if obj is not None else ""


def _run_fields(
    rule: Rule,
    occurrence: str,
    object_type: str,
    obj: Any,
    depth: int,
    event_id: int | None,
    event_name: str,
) -> dict[str, Any]:
    return {
        "rule": rule,
        "occurrence": occurrence,
        "event_id": event_id,
        "event_name": event_name,
        "object_type": object_type,
        "object_id": obj.pk if obj is not None else None,
        "object_repr": _repr(obj),
        "depth": depth,
    }


def execute(  # noqa: C901 - the steps of one run, in order
    rule: Rule,
    *,
    occurrence: str,
    object_type: str,
    obj: Any,
    payload: Mapping[str, Any] | None = None,
    depth: int = 0,
    event_id: int | None = None,
    event_name: str = "",
    group: _Grouped | None = None,
) -> RuleRun | None:
    """Evaluate ``rule`` for one occurrence and do its actions; returns the logged run."""
    payload = payload or {}
    base = _run_fields(rule, occurrence, object_type, obj, depth, event_id, event_name)
    if depth >= max_depth():
        return RuleRun.objects.create(
            **base,
            outcome=RunOutcome.LOOP_STOPPED,
            message=_(
                "Stopped: this change was made by rules %(depth)s steps deep (the limit is "
                "%(limit)s). A rule may be triggering itself."
            )
            % {"depth": depth, "limit": max_depth()},
        )
    if object_type and obj is None:
        return RuleRun.objects.create(
            **base, outcome=RunOutcome.NO_MATCH, message=_("The record no longer exists.")
        )
    if (
        rule.once_per_record
        and obj is not None
        and RuleRecordOnce.objects.filter(
            rule=rule, object_type=object_type, object_id=obj.pk
        ).exists()
    ):
        return RuleRun.objects.create(**base, outcome=RunOutcome.ALREADY_RAN)
    fields = fields_cached(object_type) if object_type else {}
    if group is None:
        passed, results = conditions_check(
            rule.conditions or {}, fields, obj, payload.get("changes")
        )
    else:
        passed, outcomes = conditions_eval(
            rule.conditions or {}, fields, obj, payload.get("changes"), group.memo
        )
        if not passed:  # logged in the event's grouped run
            group.rules.append((rule.pk, outcomes))
            return None
        results = outcomes_shown(outcomes, group.shown())
    if not passed:
        return RuleRun.objects.create(
            **base, matched=False, conditions_result=results, outcome=RunOutcome.NO_MATCH
        )
    run = RuleRun.objects.create(
        **base, matched=True, conditions_result=results, outcome=RunOutcome.DONE
    )
    failed = done = 0
    with event_depth(depth + 1):
        for index, spec in enumerate(rule.actions or []):
            key = f"r{rule.pk}:{occurrence}:a{index}"
            code = str(spec.get("type") or "")
            action = ACTIONS.get(code)
            ctx = Context(
                rule=rule,
                object_type=object_type,
                obj=obj,
                event_name=event_name,
                payload=payload,
                key=key,
            )
            try:
                if action is None:
                    raise RuleBroken(_("The action “%(code)s” is not available.") % {"code": code})
                with transaction.atomic():
                    result = action.run(dict(spec.get("params") or {}), ctx)
                    ActionRun.objects.create(
                        run=run,
                        index=index,
                        action=code,
                        key=key,
                        outcome=result.outcome,
                        detail=result.detail[:2000],
                    )
                done += 1
                if (
                    obj is not None
                    and action.changes_record
                    and result.outcome == ActionOutcome.DONE
                ):
                    fresh = load(object_type, obj.pk)
                    if fresh is not None:
                        obj = ctx.obj = fresh
            except RuleBroken as exc:
                failed += 1
                _action_failed(run, index, code, key, _error_text(exc))
                rule_flag_broken(rule, _error_text(exc))
            except (
                ActionFailed,
                FieldErrors,
                PermissionDenied,
                StaleVersion,
                ValidationError,
            ) as exc:
                failed += 1
                _action_failed(run, index, code, key, _error_text(exc))
            except IntegrityError:
                # The effect with this key exists already (a retry after a crash).
                done += 1
                _action_failed(run, index, code, key, "", outcome=ActionOutcome.SKIPPED)
            except DatabaseError:
                raise  # the database is unwell: the event is retried as a whole
            except Exception as exc:  # a bug in an action must not stop the worker
                failed += 1
                log.exception("rule %s action %s failed", rule.pk, code)
                _action_failed(run, index, code, key, repr(exc))
    if failed:
        run.outcome = RunOutcome.PARTIAL if done else RunOutcome.FAILED
        run.save(update_fields=["outcome"])
    if rule.once_per_record and obj is not None:
        RuleRecordOnce.objects.get_or_create(rule=rule, object_type=object_type, object_id=obj.pk)
    return run


def _action_failed(
    run: RuleRun,
    index: int,
    code: str,
    key: str,
    error: str,
    *,
    outcome: str = ActionOutcome.FAILED,
) -> None:
    ActionRun.objects.update_or_create(
        key=key,
        defaults={
            "run": run,
            "index": index,
            "action": code,
            "outcome": outcome,
            "error": error[:4000],
        },
    )


# --- events -----------------------------------------------------------------------------------


_RUN_COLUMNS = (
    "rule_id",
    "rule_ids",
    "occurrence",
    "event_id",
    "event_name",
    "object_type",
    "object_id",
    "object_repr",
    "depth",
    "matched",
    "conditions_result",
    "outcome",
    "message",
)


@dataclass
class _Grouped:
    """An event's evaluations whose conditions were not met, logged as one row: what the
    record held (``memo``, shared by the rules) and each rule's conditions' outcomes."""

    memo: dict[str, Any] = field(default_factory=dict)
    rules: list[tuple[int, list[Outcome]]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {key: read[1] for key, read in self.memo.items()}


def _grouped_row(
    event: OutboxEvent,
    object_type: str,
    obj: Any,
    depth: int,
    group: _Grouped,
) -> tuple[Any, ...]:
    """The runs of ``event`` whose conditions were not met, as one row for ``runs_insert``:
    the rules in ``rule_ids``; in ``conditions_result`` what the record held (``values``,
    once) and each rule's conditions' outcomes (``rules``: [rule id, [[field, op, value,
    met], …]]). The log's selector shows it as one run per rule."""
    return (
        None,
        " " + " ".join(str(pk) for pk, _outcomes in group.rules) + " ",
        f"e{event.pk}",
        event.pk,
        event.name,
        object_type,
        obj.pk if obj is not None else None,
        _repr(obj),
        depth,
        False,
        {"values": group.shown(), "rules": group.rules},
        RunOutcome.NO_MATCH,
        "",
    )


# The grouped rows' results are plain lists, dicts, strings, numbers and booleans (no
# cycles): compact separators and no cycle check make the encoding a third cheaper.
_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False, ensure_ascii=False)


def runs_insert(rows: list[tuple[Any, ...]]) -> None:
    """Write evaluated runs (``_RUN_COLUMNS`` order) in bulk, skipping any already there
    (a replayed event).

    A claim's grouped rows (one per event, the rules whose conditions it did not meet) go
    in through one prepared statement without a model instance each (building those and the
    ORM's insert took most of the engine's time)."""
    if not rows:
        return
    from django.db import connection

    meta = RuleRun._meta
    by_name = {f.attname: f for f in meta.concrete_fields}
    names = [*_RUN_COLUMNS, "at"]
    columns = ", ".join(connection.ops.quote_name(by_name[n].column) for n in names)
    json_at = _RUN_COLUMNS.index("conditions_result")
    dumps = _JSON.encode
    now = timezone.now()
    at = now if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(now)
    table = connection.ops.quote_name(meta.db_table)
    if connection.vendor == "postgresql":
        # COPY: a quarter of the cost of INSERT per row. No ON CONFLICT there: the callers
        # left out the runs already logged, and a run logged meanwhile by another worker
        # (a lease that ran out) makes the batch fail and go one event at a time.
        raw = connection.connection
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row[:json_at], dumps(row[json_at]), *row[json_at + 1 :], at))
        return
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608 - names from the model
    params = [
        (
            *row[:json_at],
            dumps(row[json_at]),
            *row[json_at + 1 :],
            at,
        )
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)  # one prepared statement, looped in C


def _event_rules(event: OutboxEvent) -> list[Rule]:
    _refresh()
    rules = _cache.by_event.get(event.name)
    if rules is None:
        triggers = BY_EVENT.get(event.name)
        rules = _cache.by_event[event.name] = (
            rules_for(t.code for t in triggers) if triggers else []
        )
    return rules


def on_event(event: OutboxEvent) -> None:
    """Run every active rule whose trigger this event is (one transaction, keyed)."""
    rules = _event_rules(event)
    if not rules:
        return
    payload = event.payload or {}
    depth = int(payload.get("_depth") or 0)
    object_type = event.object_type if event.object_type in OBJECT_MODELS else ""
    obj = load(object_type, event.object_id) if object_type else None
    occurrence = f"e{event.pk}"
    # A replayed event (a worker died after the rules ran but before the outbox knew):
    # the rules that ran keep their run, nothing is done twice.
    ran: set[int] = set()
    grouped = False
    logged = (
        RuleRun.objects.none()  # a first claim: no worker can have logged anything for it
        if event.first_claim
        else RuleRun.objects.filter(occurrence=occurrence)
        .filter(Q(rule__in=[r.pk for r in rules]) | Q(rule__isnull=True))
        .order_by()
    )
    for rule_id, rule_ids in logged.values_list("rule_id", "rule_ids"):
        if rule_id is None:
            grouped = True
            ran.update(int(x) for x in rule_ids.split())
        else:
            ran.add(rule_id)
    deferred = _Grouped()
    for rule in rules:
        if rule.pk in ran:
            continue
        trigger = TRIGGERS[rule.trigger]
        if trigger.test is not None and not trigger.test(payload, obj, rule.trigger_config or {}):
            continue
        execute(
            rule,
            occurrence=occurrence,
            object_type=trigger.object_type,
            obj=obj,
            payload=payload,
            depth=depth,
            event_id=event.pk,
            event_name=event.name,
            group=deferred,
        )
    if deferred.rules and not grouped:
        first = TRIGGERS[rules[0].trigger].object_type
        runs_insert([_grouped_row(event, first, obj, depth, deferred)])


def _watched(rule: Rule, trigger: Any, config: Mapping[str, Any]) -> tuple[str, ...]:
    """The change keys ``rule``'s trigger waits for, kept with the cached rules."""
    keys = _cache.watched.get(rule.pk)
    if keys is None:
        keys = _cache.watched[rule.pk] = trigger.watches(config)
    return keys


def _condition_paths(event_name: str) -> set[str]:
    """The fields the conditions of the rules on ``event_name`` read (kept with the rules)."""
    paths = _cache.paths.get(event_name)
    if paths is None:
        paths = _cache.paths[event_name] = {
            str(item.get("field") or "")
            for rule in _cache.by_event.get(event_name, ())
            for item in (rule.conditions or {}).get("items") or ()
        }
    return paths


def on_events(events: list[OutboxEvent]) -> list[OutboxEvent]:
    """A claim's events at once: records read in one query per type, every rule evaluated
    in memory, the runs of events that no rule acts on written in bulk. Events with a rule
    to act on (or anything unusual: the depth limit, a gone record, "once per record")
    are returned, to run one by one through ``on_event`` in their own transactions."""
    todo = [(event, rules) for event in events if (rules := _event_rules(event))]
    if not todo:
        return []
    ids: dict[str, set[int]] = {}
    paths: dict[str, set[str]] = {}
    for event, _rules in todo:
        if event.object_type in OBJECT_MODELS:
            ids.setdefault(event.object_type, set()).add(event.object_id)
            paths.setdefault(event.object_type, set()).update(_condition_paths(event.name))
    # Joined: only the related records and columns the conditions read (actions run one by
    # one through on_event, which reads the whole record again).
    records = {ot: load_many(ot, pks, paths=paths[ot]) for ot, pks in ids.items()}
    # No "already ran?" query here: an event's runs commit in one transaction with its
    # handler-run record, and the outbox gives this handler only events without one.
    limit = max_depth()
    fields_of: dict[str, dict[str, FieldSpec]] = {}
    rest: list[OutboxEvent] = []
    runs: list[tuple[Any, ...]] = []
    for event, rules in todo:
        payload = event.payload or {}
        depth = int(payload.get("_depth") or 0)
        object_type = event.object_type if event.object_type in OBJECT_MODELS else ""
        obj = records[object_type].get(event.object_id) if object_type else None
        if depth >= limit or (object_type and obj is None):
            rest.append(event)
            continue
        mine = _Grouped()
        run_type = ""
        changes = payload.get("changes")
        for rule in rules:
            trigger = TRIGGERS[rule.trigger]
            config = rule.trigger_config or {}
            if trigger.watches is not None and not any(
                key in (changes or ()) for key in _watched(rule, trigger, config)
            ):
                continue  # the field its trigger waits for did not change
            if trigger.test is not None and not trigger.test(payload, obj, config):
                continue
            fields = fields_of.get(trigger.object_type)
            if fields is None:
                fields = fields_of[trigger.object_type] = (
                    fields_cached(trigger.object_type) if trigger.object_type else {}
                )
            passed, outcomes = conditions_eval(
                rule.conditions or {}, fields, obj, changes, mine.memo, cached=True
            )
            if passed or rule.once_per_record:
                rest.append(event)
                break
            mine.rules.append((rule.pk, outcomes))
            run_type = run_type or trigger.object_type
        else:
            if mine.rules:
                runs.append(_grouped_row(event, run_type, obj, depth, mine))
    runs_insert(runs)
    return rest


for _name in BY_EVENT:
    batch_handler(
        _name, key="automations.rules", one=on_event, wants=lambda e: bool(_event_rules(e))
    )(on_events)


# --- dates and schedules ----------------------------------------------------------------------

CATCH_UP_DAYS = 7


def _org_tz() -> dt.tzinfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _live_records(object_type: str) -> Any:
    """Every record of the kind not in the recycle bin, in id order (the rules' clock acts
    for the organisation, not for a user: no scope applies)."""
    qs = model_for(object_type)._default_manager.order_by("pk")
    return qs.filter(deleted_at__isnull=True) if hasattr(qs.model, "deleted_at") else qs


def _date_matches(rule: Rule, local_day: dt.date) -> Any:
    """Records whose date field makes ``rule`` fire on ``local_day``."""
    config = rule.trigger_config or {}
    object_type, path = config["object_type"], config["field"]
    target = local_day - dt.timedelta(days=int(config.get("offset_days") or 0))
    qs = _live_records(object_type)
    if path.startswith("custom."):
        return qs.filter(**{f"custom_fields__{path[7:]}": target.isoformat()})
    if path == "birthday":  # every year; 29 February is kept on the 28th in other years
        same_day = Q(birthday__month=target.month, birthday__day=target.day)
        if target.month == 2 and target.day == 28 and not calendar.isleap(target.year):
            same_day |= Q(birthday__month=2, birthday__day=29)
        return qs.filter(same_day)
    spec = fields_cached(object_type).get(path)
    if spec is not None and spec.type == "datetime":
        return qs.filter(**{f"{path}__date": target})
    return qs.filter(**{path: target})


def rules_clock(*, now: dt.datetime | None = None, limit: int = 5000) -> int:
    """Fire date and schedule rules whose moment came since the last look — once each,
    catching up (up to a week) after the worker was down."""
    now = now or timezone.now()
    fired = 0
    tz = _org_tz()
    for rule in Rule.objects.filter(
        is_active=True, deleted_at__isnull=True, trigger__in=("date", "schedule")
    ):
        try:
            fired += _clock_rule(rule, now=now, tz=tz, limit=limit - fired)
        except DatabaseError:
            raise
        except Exception as exc:  # one broken rule must not stop the others' clock
            log.exception("date/schedule rule %s failed", rule.pk)
            rule_flag_broken(rule, _error_text(exc))
    return fired


def _clock_rule(rule: Rule, *, now: dt.datetime, tz: dt.tzinfo, limit: int) -> int:
    fired = 0
    since = max(rule.checked_until or rule.created_at, now - dt.timedelta(days=CATCH_UP_DAYS))
    if TRIGGERS[rule.trigger].kind == SCHEDULE:
        moments = schedule_occurrences(rule.trigger_config or {}, since, now, tz)
        each = str((rule.trigger_config or {}).get("object_type") or "")
        if each and moments:
            # One pass over the records, for the latest moment only: a reminder "for each
            # open deal" missed three times while the worker was down comes once, not thrice.
            fired += _fire_each(rule, f"s{moments[-1]:%Y%m%d%H%M}", each)
        elif not each:
            for moment in moments:
                fired += _fire(rule, f"s{moment:%Y%m%d%H%M}", "", None, "schedule")
    elif TRIGGERS[rule.trigger].kind == DATE_KIND:
        config = rule.trigger_config or {}
        hh, mm = (int(x) for x in str(config.get("at") or "09:00").split(":"))
        day = since.astimezone(tz).date()
        while day <= now.astimezone(tz).date() and fired < limit:
            moment = dt.datetime.combine(day, dt.time(hh, mm), tzinfo=tz)
            if since < moment <= now:
                for obj in _date_matches(rule, day).iterator():
                    fired += _fire(
                        rule, f"d{obj.pk}:{day:%Y%m%d}", config["object_type"], obj, "date"
                    )
            day += dt.timedelta(days=1)
    Rule.objects.filter(pk=rule.pk).update(checked_until=now)
    return fired


def _fire_each(rule: Rule, moment: str, object_type: str) -> int:
    """A schedule "for each record": every record of the kind that meets the rule's
    conditions gets the actions once for this moment. Records that do not are not logged
    (a daily rule over a large base would write a row per record per day)."""
    fields = fields_cached(object_type)
    model = model_for(object_type)
    qs = _live_records(object_type).select_related(*RELATIONS.get(object_type, ()))
    # Read first, act after: the actions may change the records being read.
    matching = [
        obj.pk
        for obj in qs.iterator(chunk_size=1000)
        if conditions_check(rule.conditions or {}, fields, obj, None)[0]
    ]
    fired = 0
    for pk in matching:
        fired += _fire(rule, f"{moment}:{pk}", object_type, model(pk=pk), "schedule")
    return fired


def _fire(rule: Rule, occurrence: str, object_type: str, obj: Any, name: str) -> int:
    if RuleRun.objects.filter(rule=rule, occurrence=occurrence).exists():
        return 0
    try:
        with transaction.atomic():
            if object_type and obj is not None:
                obj = load(object_type, obj.pk)
            execute(rule, occurrence=occurrence, object_type=object_type, obj=obj, event_name=name)
    except IntegrityError:  # another worker fired it meanwhile
        return 0
    return 1


# --- the log's upkeep -------------------------------------------------------------------------


def runs_prune(*, now: dt.datetime | None = None, chunk: int = 5000) -> int:
    """Remove runs whose conditions were not met after ``AUTOMATION_NO_MATCH_LOG_DAYS``.

    Every event is evaluated by every rule on its trigger, so these (one grouped row per
    event) are most of the log; runs that acted (or failed, or were stopped) stay. Deleted
    in chunks, so a large backlog does not hold the database's write lock for long."""
    days = int(getattr(settings, "AUTOMATION_NO_MATCH_LOG_DAYS", 30))
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    removed = 0
    while True:
        ids = list(
            RuleRun.objects.filter(outcome=RunOutcome.NO_MATCH, at__lt=cutoff)
            .order_by("id")
            .values_list("id", flat=True)[:chunk]
        )
        if not ids:
            return removed
        removed += RuleRun.objects.filter(pk__in=ids).delete()[0]


# --- checking rules against what exists now ---------------------------------------------------


def rules_check() -> int:
    """Switch off active rules that refer to a removed field, user, stage or template."""
    from rapport.automations.services import rule_problems

    flagged = 0
    for rule in Rule.objects.filter(is_active=True, deleted_at__isnull=True):
        problems = rule_problems(rule)
        if problems:
            rule_flag_broken(rule, "; ".join(problems))
            flagged += 1
    return flagged


# --- the rule's test button -------------------------------------------------------------------


def rule_dry_run(rule: Rule, obj: Any) -> dict[str, Any]:
    """What the rule would do for ``obj``, without doing it."""
    object_type = rule.object_type
    fields = fields_cached(object_type) if object_type else {}
    passed, results = conditions_check(rule.conditions or {}, fields, obj, {})
    labels = {path: spec.label for path, spec in fields.items()}
    for r in results:
        r["label"] = labels.get(r["field"], r["field"])
    plans: list[dict[str, Any]] = []
    for index, spec in enumerate(rule.actions or []):
        action = ACTIONS.get(str(spec.get("type") or ""))
        ctx = Context(rule=rule, object_type=object_type, obj=obj, key="", dry_run=True)
        if action is None:
            plans.append({"index": index, "text": _("Unknown action"), "ok": False})
            continue
        try:
            text = action.describe(dict(spec.get("params") or {}), ctx)
            ok = True
        except (ActionFailed, FieldErrors) as exc:
            text, ok = _error_text(exc), False
        plans.append({"index": index, "label": str(action.label), "text": text, "ok": ok})
    return {"passed": passed, "conditions": results, "actions": plans}


__all__ = [
    "Result",
    "RuleBroken",
    "execute",
    "on_event",
    "rule_dry_run",
    "rules_cache_clear",
    "rules_check",
    "rules_clock",
]
