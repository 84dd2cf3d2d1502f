"""The "if" part: conditions on a record's fields, checked when saved and when run."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from rapport.automations.schema import (
    BOOL,
    CHOICE,
    DATE,
    DATETIME,
    LIST,
    NUMBER,
    REF,
    TEXT,
    BadValue,
    FieldSpec,
    coerce,
    value_of,
)

OPERATORS: dict[str, Any] = {
    "eq": gettext_lazy("="),
    "ne": gettext_lazy("≠"),
    "gt": gettext_lazy(">"),
    "gte": gettext_lazy("≥"),
    "lt": gettext_lazy("<"),
    "lte": gettext_lazy("≤"),
    "contains": gettext_lazy("contains"),
    "not_contains": gettext_lazy("does not contain"),
    "in": gettext_lazy("is one of"),
    "not_in": gettext_lazy("is none of"),
    "empty": gettext_lazy("is empty"),
    "not_empty": gettext_lazy("is not empty"),
    "changed": gettext_lazy("changed"),
    "changed_from": gettext_lazy("changed from"),
    "changed_to": gettext_lazy("changed to"),
}
NO_VALUE = {"empty", "not_empty", "changed"}
ORDERED = {"gt", "gte", "lt", "lte"}
TEXTUAL = {"contains", "not_contains"}
CHANGE_OPS = {"changed", "changed_from", "changed_to"}

_TYPE_LABELS = {
    TEXT: gettext_lazy("text"),
    NUMBER: gettext_lazy("a number"),
    DATE: gettext_lazy("a date"),
    DATETIME: gettext_lazy("a date and time"),
    BOOL: gettext_lazy("yes / no"),
    CHOICE: gettext_lazy("a choice"),
    REF: gettext_lazy("a reference"),
    LIST: gettext_lazy("a list"),
}


def _ops_for(kind: str) -> set[str]:
    base = {"eq", "ne", "in", "not_in", "empty", "not_empty", *CHANGE_OPS}
    if kind in (NUMBER, DATE, DATETIME):
        return base | ORDERED
    if kind in (TEXT, LIST):
        return base | TEXTUAL
    return base


def conditions_clean(
    conditions: Any, fields: Mapping[str, FieldSpec], *, has_changes: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Check the conditions against the field types; the cleaned form and the errors.

    A comparison the field's type cannot make (text > number, a number field against
    "abc") is refused here, when the rule is saved, not when it runs.
    """
    errors: dict[str, list[str]] = {}
    if not conditions:
        return {"match": "all", "items": []}, errors
    if not isinstance(conditions, Mapping):
        return {}, {"conditions": [_("Conditions must be an object with match and items.")]}
    match = conditions.get("match") or "all"
    if match not in ("all", "any"):
        errors["conditions.match"] = [_('Choose "all" or "any".')]
    items_in = conditions.get("items") or []
    if not isinstance(items_in, list):
        return {}, {"conditions.items": [_("Conditions must be a list.")]}
    items: list[dict[str, Any]] = []
    for n, item in enumerate(items_in, start=1):
        key = f"conditions.{n}"
        if not isinstance(item, Mapping):
            errors[key] = [_("Condition %(n)s is not readable.") % {"n": n}]
            continue
        path = str(item.get("field") or "")
        op = str(item.get("op") or "")
        spec = fields.get(path)
        if spec is None:
            errors[f"{key}.field"] = [
                _("Condition %(n)s: there is no field “%(field)s”.") % {"n": n, "field": path}
            ]
            continue
        if op not in OPERATORS:
            errors[f"{key}.op"] = [
                _("Condition %(n)s: unknown operator “%(op)s”.") % {"n": n, "op": op}
            ]
            continue
        if op not in _ops_for(spec.type):
            errors[f"{key}.op"] = [
                _("Condition %(n)s: “%(field)s” is %(type)s; “%(op)s” cannot compare it.")
                % {
                    "n": n,
                    "field": spec.label,
                    "type": _TYPE_LABELS[spec.type],
                    "op": OPERATORS[op],
                }
            ]
            continue
        if op in CHANGE_OPS and "." in path and not path.startswith("custom."):
            errors[f"{key}.op"] = [
                _("Condition %(n)s: a change is known for the record's own fields only.") % {"n": n}
            ]
            continue
        if op in CHANGE_OPS and not has_changes:
            errors[f"{key}.op"] = [
                _(
                    "Condition %(n)s: “changed” works only with triggers on a change "
                    "(record updated, field changed)."
                )
                % {"n": n}
            ]
            continue
        value = item.get("value")
        if op in NO_VALUE:
            value = None
        else:
            values = value if isinstance(value, list) else [value]
            if op in ("in", "not_in") and not isinstance(value, list):
                values = [v.strip() for v in str(value or "").split(",") if v.strip()]
                value = values
            if op in ("in", "not_in") and not values:
                errors[f"{key}.value"] = [_("Condition %(n)s: list at least one value.") % {"n": n}]
                continue
            kind = NUMBER if spec.type == LIST and op in ORDERED else spec.type
            try:
                for v in values:
                    if v in (None, "") and op not in ("eq", "ne", "changed_from", "changed_to"):
                        raise BadValue(v)
                    if kind not in (LIST, TEXT, CHOICE):
                        coerce(kind, v)
            except BadValue:
                errors[f"{key}.value"] = [
                    _("Condition %(n)s: “%(field)s” is %(type)s; “%(value)s” is not.")
                    % {
                        "n": n,
                        "field": spec.label,
                        "type": _TYPE_LABELS[spec.type],
                        "value": "" if value is None else value,
                    }
                ]
                continue
            if spec.type == CHOICE and spec.choices and not spec.custom:
                allowed = {k for k, _label in spec.choices}
                bad = [str(v) for v in values if v not in (None, "") and str(v) not in allowed]
                if bad:
                    errors[f"{key}.value"] = [
                        _("Condition %(n)s: “%(value)s” is not a choice of “%(field)s”.")
                        % {"n": n, "value": ", ".join(bad), "field": spec.label}
                    ]
                    continue
        items.append({"field": path, "op": op, "value": value})
    return {"match": match, "items": items}, errors


# --- evaluation -------------------------------------------------------------------------------


def _norm(kind: str, value: Any) -> Any:
    try:
        out = coerce(kind, value)
    except BadValue:
        return None
    if isinstance(out, str):
        return out.strip().casefold()
    return out


@functools.lru_cache(maxsize=4096)
def _norm_expected(kind: str, value: Any) -> Any:
    """A rule's own value, normalised once (it is compared with every event's record)."""
    if isinstance(value, tuple):
        return frozenset(_norm(kind, v) for v in value)
    return _norm(kind, value)


def _expected(kind: str, value: Any, *, many: bool = False) -> Any:
    if many:
        value = tuple(value or ())
    try:
        return _norm_expected(kind, value)
    except TypeError:  # not hashable (a dict typed into a rule): normalised each time
        return frozenset(_norm(kind, v) for v in value) if many else _norm(kind, value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _change_of(changes: Mapping[str, Any] | None, path: str) -> tuple[bool, Any, Any]:
    if not changes:
        return False, None, None
    if path.startswith("custom."):
        pair = changes.get("custom_fields")
        if not pair:
            return False, None, None
        old = (pair[0] or {}).get(path[7:])
        new = (pair[1] or {}).get(path[7:])
        return old != new, old, new
    name = path
    pair = changes.get(name) or changes.get(f"{name}_id")
    if not pair:
        return False, None, None
    return True, pair[0], pair[1]


_UNSET: Any = object()


Comparator = Callable[[Any, Any], bool]
_ORDER = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _comparator(kind: str, op: str, expected: Any) -> Comparator:  # noqa: C901 - one branch per operator
    """The test of a value against a rule's ``expected`` value under ``op``, as a function of
    (value, value normalised by ``_norm(kind, value)``); the expected value is normalised
    here, once."""
    if op == "empty":
        return lambda a, n: _is_empty(a)
    if op == "not_empty":
        return lambda a, n: not _is_empty(a)
    if kind == LIST:
        wanted = [
            str(w).strip().casefold()
            for w in (expected if isinstance(expected, list) else [expected])
        ]

        def has(a: Any, n: Any) -> bool:
            items = {str(v).casefold() for v in (a or [])}
            return any(w in items for w in wanted)

        if op in ("contains", "eq", "in"):
            return has
        if op in ("not_contains", "ne", "not_in"):
            return lambda a, n: not has(a, n)
        return lambda a, n: False
    if op in ("in", "not_in"):
        many = _expected(kind, expected, many=True)
        return (lambda a, n: n in many) if op == "in" else (lambda a, n: n not in many)
    e = _expected(kind, expected)
    if op == "eq":
        return lambda a, n: bool(n == e)
    if op == "ne":
        return lambda a, n: bool(n != e)
    if op == "contains":
        return lambda a, n: n is not None and e is not None and str(e) in str(n)
    if op == "not_contains":
        return lambda a, n: n is None or e is None or str(e) not in str(n)
    test = _ORDER.get(op)
    if test is None or e is None:
        return lambda a, n: False

    def ordered(a: Any, n: Any) -> bool:
        if n is None or (kind == DATETIME and not isinstance(n, type(e))):
            return False
        try:
            return bool(test(n, e))
        except TypeError:
            return False

    return ordered


def _compare(kind: str, op: str, actual: Any, expected: Any) -> bool:
    """``actual`` against a rule's ``expected`` value under ``op``."""
    normed = None if kind == LIST else _norm(kind, actual)
    return _comparator(kind, op, expected)(actual, normed)


# A rule's conditions as tuples (path, op, expected, field type or None when the field is
# gone, whether the operator reads the change, the comparator), made once per rule and
# fields version: the worker checks the same rules against every event.
_Item = tuple[str, str, Any, str | None, bool, Comparator | None]
_COMPILED: dict[int, tuple[Any, Any, tuple[_Item, ...]]] = {}


def _items(
    conditions: Mapping[str, Any], fields: Mapping[str, FieldSpec], *, cached: bool
) -> tuple[_Item, ...]:
    """``cached`` only for the worker's cached rules, never edited in place (a rule being
    edited or tested is made afresh each time)."""
    if not conditions.get("items"):
        return ()  # nothing to prepare (and ``rule.conditions or {}`` is a new dict each time)
    hit = _COMPILED.get(id(conditions)) if cached else None
    if hit is not None and hit[0] is conditions and hit[1] is fields:
        return hit[2]
    compiled: list[_Item] = []
    for item in conditions.get("items") or ():
        path, op, expected = item["field"], item["op"], item.get("value")
        spec = fields.get(path)
        kind = spec.type if spec is not None else None
        change = op in CHANGE_OPS
        compare = _comparator(kind, op, expected) if kind and not change else None
        compiled.append((path, op, expected, kind, change, compare))
    items = tuple(compiled)
    if not cached:
        return items
    if len(_COMPILED) > 10_000:  # rules re-read many times over: start again
        _COMPILED.clear()
    _COMPILED[id(conditions)] = (conditions, fields, items)  # both held: ids stay theirs
    return items


# A condition's outcome as evaluated: (field path, operator, expected value, met?). What the
# record held is kept apart, once per field for all the rules on one event (``shown``).
Outcome = tuple[str, str, Any, bool]


def _shown_key(path: str, op: str) -> str:
    """Where ``shown`` keeps what a condition saw: the field's value, or for the change
    operators the field's [old, new] in this event ("Δ" + path)."""
    return f"\u0394{path}" if op in CHANGE_OPS else path


def conditions_eval(  # noqa: C901 - the change operators read the event, the rest the record
    conditions: Mapping[str, Any],
    fields: Mapping[str, FieldSpec],
    obj: Any,
    changes: Mapping[str, Any] | None,
    memo: dict[str, Any],
    *,
    cached: bool = False,
) -> tuple[bool, list[Outcome]]:
    """Whether the record meets the conditions, with each condition's outcome.

    ``memo`` (one dict per record and event) keeps what was read and normalised, for the
    other rules on the same event (they mostly ask about the same few fields); its entries
    are (value, shown, normalised by field type), ``shown`` being the log's form of it.
    ``cached``: the rule is the worker's cached copy, never edited in place, so its
    conditions are prepared once."""
    items = _items(conditions, fields, cached=cached)
    out: list[Outcome] = []
    for path, op, expected, kind, change, compare in items:
        if kind is None:  # a field removed since the rule was saved: the rule is flagged
            out.append((path, op, expected, False))
            continue
        if change:
            changed, old, new = _change_of(changes, path)
            if op == "changed":
                ok = changed
            elif op == "changed_from":
                ok = changed and _compare(kind, "eq", old, expected)
            else:
                ok = changed and _compare(kind, "eq", new, expected)
            empty: dict[str, Any] = {}
            memo[_shown_key(path, op)] = (None, _plain([old, new] if changed else None), empty)
        else:
            read = memo.get(path)
            if read is None:
                value = value_of(obj, path)
                read = memo[path] = (value, _plain(value), {})
            actual = read[0]
            normed: dict[str, Any] = read[2]
            norm = normed.get(kind, _UNSET)
            if norm is _UNSET:
                norm = normed[kind] = None if kind == LIST else _norm(kind, actual)
            ok = compare(actual, norm)  # type: ignore[misc]  # set for every kind but gone
        out.append((path, op, expected, ok))
    if not items:
        return True, out
    oks = [o[3] for o in out]
    return (all(oks) if conditions.get("match", "all") == "all" else any(oks)), out


def outcomes_shown(outcomes: Iterable[Any], shown: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Conditions' outcomes as the log shows them: field, op, value, what the record held
    (``actual``; absent for a field removed since) and whether it was met."""
    out = []
    for path, op, expected, ok in outcomes:
        row = {"field": path, "op": op, "value": expected}
        key = _shown_key(path, op)
        if key in shown:
            row["actual"] = shown[key]
        row["ok"] = ok
        out.append(row)
    return out


def conditions_check(
    conditions: Mapping[str, Any],
    fields: Mapping[str, FieldSpec],
    obj: Any,
    changes: Mapping[str, Any] | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the record meets the conditions, with each condition's result for the log."""
    memo: dict[str, Any] = {}
    passed, outcomes = conditions_eval(conditions, fields, obj, changes, memo)
    return passed, outcomes_shown(outcomes, {k: v[1] for k, v in memo.items()})


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)
