"""The "if" part: conditions on a record's fields, checked when saved and when run."""

from __future__ import annotations

import functools
from collections.abc import Mapping
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


def _compare(kind: str, op: str, actual: Any, expected: Any) -> bool:  # noqa: C901 - one branch per operator
    if op == "empty":
        return _is_empty(actual)
    if op == "not_empty":
        return not _is_empty(actual)
    if kind == LIST:
        items = [str(v).casefold() for v in (actual or [])]
        if op in ("contains", "eq", "in"):
            wanted = expected if isinstance(expected, list) else [expected]
            return any(str(w).strip().casefold() in items for w in wanted)
        if op in ("not_contains", "ne", "not_in"):
            wanted = expected if isinstance(expected, list) else [expected]
            return not any(str(w).strip().casefold() in items for w in wanted)
        return False
    if op in ("in", "not_in"):
        hit = _norm(kind, actual) in _expected(kind, expected, many=True)
        return hit if op == "in" else not hit
    a, e = _norm(kind, actual), _expected(kind, expected)
    if op == "eq":
        return bool(a == e)
    if op == "ne":
        return bool(a != e)
    if op == "contains":
        return a is not None and e is not None and str(e) in str(a)
    if op == "not_contains":
        return a is None or e is None or str(e) not in str(a)
    if a is None or e is None:
        return False
    if kind == DATETIME and isinstance(a, type(e)) is False:
        return False
    try:
        if op == "gt":
            return bool(a > e)
        if op == "gte":
            return bool(a >= e)
        if op == "lt":
            return bool(a < e)
        if op == "lte":
            return bool(a <= e)
    except TypeError:
        return False
    return False


def conditions_check(
    conditions: Mapping[str, Any],
    fields: Mapping[str, FieldSpec],
    obj: Any,
    changes: Mapping[str, Any] | None = None,
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the record meets the conditions, with each condition's result for the log."""
    items = conditions.get("items") or []
    results: list[dict[str, Any]] = []
    for item in items:
        path, op, expected = item["field"], item["op"], item.get("value")
        spec = fields.get(path)
        if spec is None:  # a field removed since the rule was saved: the rule is flagged
            results.append({"field": path, "op": op, "value": expected, "ok": False})
            continue
        if op in CHANGE_OPS:
            changed, old, new = _change_of(changes, path)
            if op == "changed":
                ok = changed
            elif op == "changed_from":
                ok = changed and _compare(spec.type, "eq", old, expected)
            else:
                ok = changed and _compare(spec.type, "eq", new, expected)
            actual: Any = [old, new] if changed else None
        else:
            actual = value_of(obj, path)
            ok = _compare(spec.type, op, actual, expected)
        results.append(
            {"field": path, "op": op, "value": expected, "actual": _plain(actual), "ok": ok}
        )
    if not items:
        return True, results
    flags = [r["ok"] for r in results]
    passed = all(flags) if conditions.get("match", "all") == "all" else any(flags)
    return passed, results


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)
