"""Custom fields: definitions own validation and filtering; values live in a JSON column."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils.translation import gettext as _

from rapport.core.errors import FieldErrors
from rapport.core.models import CustomFieldDefinition

Type = CustomFieldDefinition.Type


def definitions_for(object_type: str) -> list[CustomFieldDefinition]:
    return list(
        CustomFieldDefinition.objects.filter(object_type=object_type).order_by("order", "id")
    )


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _clean_value(defn: CustomFieldDefinition, value: Any) -> Any:  # noqa: C901 - one branch per type
    """The stored form of ``value``; raises ValueError with a user message."""
    if defn.type == Type.TEXT:
        text = str(value).strip()
        if len(text) > 2000:
            raise ValueError(_("At most 2000 characters."))
        return text
    if defn.type in (Type.NUMBER, Type.MONEY):
        raw = value.get("amount") if isinstance(value, dict) else value
        if isinstance(raw, bool):
            raise ValueError(_("Enter a number."))
        try:
            number = decimal.Decimal(str(raw).replace(" ", "").replace(",", "."))
        except decimal.InvalidOperation as exc:
            raise ValueError(_("Enter a number.")) from exc
        if not number.is_finite():
            raise ValueError(_("Enter a number."))
        if defn.type == Type.NUMBER:
            return int(number) if number == number.to_integral_value() else float(number)
        currency = str(value.get("currency", "")).upper() if isinstance(value, dict) else ""
        if currency and (len(currency) != 3 or not currency.isalpha()):
            raise ValueError(_("Currency must be a three-letter ISO code."))
        return {"amount": float(round(number, 2)), "currency": currency}
    if defn.type == Type.DATE:
        if isinstance(value, dt.date):
            return value.isoformat()
        try:
            return dt.date.fromisoformat(str(value).strip()).isoformat()
        except ValueError as exc:
            raise ValueError(_("Enter a date as YYYY-MM-DD.")) from exc
    if defn.type == Type.CHOICE:
        if str(value) not in [str(c) for c in defn.choices]:
            raise ValueError(_("“%(value)s” is not one of the choices.") % {"value": value})
        return str(value)
    if defn.type == Type.MULTI_CHOICE:
        items = (
            value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
        )
        allowed = [str(c) for c in defn.choices]
        bad = [str(v) for v in items if str(v).strip() not in allowed]
        if bad:
            raise ValueError(_("Not among the choices: %(values)s.") % {"values": ", ".join(bad)})
        return sorted({str(v).strip() for v in items}, key=allowed.index)
    if defn.type == Type.BOOL:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in {"1", "true", "yes", "on", "да", "bəli", "sì", "si", "نعم"}:
            return True
        if lowered in {"0", "false", "no", "off", "нет", "xeyr", "لا"}:
            return False
        raise ValueError(_("Enter yes or no."))
    if defn.type == Type.USER:
        from django.contrib.auth import get_user_model

        try:
            user_id = int(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(_("Choose a user.")) from exc
        if not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
            raise ValueError(_("No active user with this id."))
        return user_id
    raise ValueError(_("Unknown field type."))


def custom_fields_clean(
    *,
    object_type: str,
    values: dict[str, Any],
    existing: dict[str, Any] | None = None,
    definitions: list[CustomFieldDefinition] | None = None,
) -> dict[str, Any]:
    """Validate ``values`` (merged over ``existing``) against the definitions.

    Returns the full stored dict; raises FieldErrors keyed ``custom_fields.<name>``.
    ``definitions``: those of ``object_type`` when the caller already has them (a bulk
    write checks thousands of records against one read of them).
    """
    if definitions is None:
        definitions = definitions_for(object_type)
    defs = {d.name: d for d in definitions}
    merged = dict(existing or {})
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        defn = defs.get(name)
        if defn is None:
            errors[f"custom_fields.{name}"] = [_("Unknown custom field.")]
            continue
        if _is_empty(value):
            merged.pop(name, None)
            continue
        try:
            merged[name] = _clean_value(defn, value)
        except ValueError as exc:
            errors[f"custom_fields.{name}"] = [f"{defn.label}: {exc}"]
    for name, defn in defs.items():
        if defn.required and _is_empty(merged.get(name)) and f"custom_fields.{name}" not in errors:
            errors[f"custom_fields.{name}"] = [
                _("%(label)s: this field is required.") % {"label": defn.label}
            ]
    if errors:
        raise FieldErrors(errors)
    return {k: v for k, v in merged.items() if k in defs}


def custom_field_filter(*, object_type: str, name: str, value: str) -> Q:
    """A filter for ``custom_fields.<name>`` = value (ranges with ``min:`` / ``max:``)."""
    defn = CustomFieldDefinition.objects.filter(object_type=object_type, name=name).first()
    if defn is None:
        raise FieldErrors.single(f"cf_{name}", _("Unknown custom field."))
    key = f"custom_fields__{name}"
    if defn.type in (Type.NUMBER, Type.MONEY, Type.DATE):
        lookup_key = f"{key}__amount" if defn.type == Type.MONEY else key
        q = Q()
        for part in value.split(","):
            op, _sep, raw = part.partition(":") if ":" in part else ("eq", "", part)
            try:
                cleaned = _clean_value(defn, raw)
            except ValueError as exc:
                raise FieldErrors.single(f"cf_{name}", str(exc)) from exc
            if isinstance(cleaned, dict):
                cleaned = cleaned["amount"]
            lookup = {"min": "gte", "max": "lte", "eq": "exact"}.get(op)
            if lookup is None:
                raise FieldErrors.single(f"cf_{name}", _("Use min:, max: or a plain value."))
            q &= Q(**{f"{lookup_key}__{lookup}": cleaned})
        return q
    if defn.type == Type.BOOL:
        try:
            return Q(**{key: _clean_value(defn, value)})
        except ValueError as exc:
            raise FieldErrors.single(f"cf_{name}", str(exc)) from exc
    if defn.type == Type.MULTI_CHOICE:
        return Q(**{f"{key}__icontains": f'"{value}"'})
    if defn.type in (Type.CHOICE, Type.USER):
        return Q(
            **{key: value if defn.type == Type.CHOICE else int(value) if value.isdigit() else -1}
        )
    return Q(**{f"{key}__icontains": value})


def custom_fields_display(*, object_type: str, values: dict[str, Any]) -> list[tuple[str, Any]]:
    """(label, value) pairs in definition order, for cards."""
    out: list[tuple[str, Any]] = []
    for defn in definitions_for(object_type):
        value = values.get(defn.name)
        if _is_empty(value):
            continue
        if defn.type == Type.MONEY and isinstance(value, dict):
            value = f"{value.get('amount')} {value.get('currency', '')}".strip()
        elif defn.type == Type.MULTI_CHOICE and isinstance(value, list):
            value = ", ".join(value)
        elif defn.type == Type.BOOL:
            value = _("yes") if value else _("no")
        out.append((defn.label, value))
    return out


__all__ = ["KeyTextTransform", "custom_field_filter", "custom_fields_clean", "definitions_for"]
