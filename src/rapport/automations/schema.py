"""What a rule can look at: the fields of each record type, its related records and
custom fields, each with a type that decides which operators and values are valid.

Built from the models' own metadata, so a new model field is usable in rules at once.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils.translation import gettext as _

# Record types rules work on: app label and model name.
OBJECT_MODELS: dict[str, tuple[str, str]] = {
    "company": ("parties", "Company"),
    "person": ("parties", "Person"),
    "lead": ("sales", "Lead"),
    "deal": ("sales", "Deal"),
    "task": ("activities", "Task"),
    "interaction": ("activities", "Interaction"),
}

# Related records whose fields a rule may read ("deal.company.industry").
RELATIONS: dict[str, tuple[str, ...]] = {
    "company": (),
    "person": (),
    "lead": ("company", "person"),
    "deal": ("company", "person", "contact"),
    "task": ("company", "person", "deal", "lead"),
    "interaction": ("company", "person", "deal", "lead"),
}

_SKIP = {"id", "version", "deleted_at", "deleted_by", "custom_fields", "search_text"}

TEXT, NUMBER, DATE, DATETIME, BOOL, CHOICE, REF, LIST = (
    "text",
    "number",
    "date",
    "datetime",
    "bool",
    "choice",
    "ref",
    "list",
)


def object_label(object_type: str) -> str:
    labels = {
        "company": _("company"),
        "person": _("person"),
        "lead": _("lead"),
        "deal": _("deal"),
        "task": _("task"),
        "interaction": _("interaction"),
    }
    return labels.get(object_type, object_type)


@dataclass(frozen=True)
class FieldSpec:
    path: str
    label: str
    type: str
    choices: tuple[tuple[str, str], ...] = ()
    ref: str = ""  # for REF: "user", "team", "stage", "pipeline", …
    custom: bool = False
    attr: tuple[str, ...] = field(default=(), compare=False)


def model_for(object_type: str) -> type[models.Model]:
    app_label, name = OBJECT_MODELS[object_type]
    return apps.get_model(app_label, name)


def _spec_for_field(f: models.Field[Any, Any], prefix: str, label_prefix: str) -> FieldSpec | None:
    if f.name in _SKIP or not f.concrete or f.auto_created:
        return None
    label = f"{label_prefix}{f.verbose_name}"
    path = f"{prefix}{f.name}"
    if isinstance(f, models.ForeignKey):
        related: Any = f.related_model
        ref = related._meta.model_name if related is not None else ""
        return FieldSpec(path, label, REF, ref=str(ref), attr=(f.attname,))
    readable = ("created_at", "updated_at", "stage_entered_at", "last_contact_at", "closed_at")
    if not f.editable and f.name not in (*readable, "converted_at"):
        return None
    if f.choices:
        choices = tuple((str(k), str(v)) for k, v in f.flatchoices)
        return FieldSpec(path, label, CHOICE, choices=choices, attr=(f.attname,))
    if isinstance(f, models.BooleanField):
        kind = BOOL
    elif isinstance(f, models.DateTimeField):
        kind = DATETIME
    elif isinstance(f, models.DateField):
        kind = DATE
    elif isinstance(f, models.DecimalField | models.IntegerField | models.FloatField):
        kind = NUMBER
    elif isinstance(f, models.CharField | models.TextField | models.EmailField):
        kind = TEXT
    else:
        return None
    return FieldSpec(path, label, kind, attr=(f.attname,))


_CUSTOM_TYPES = {
    "text": TEXT,
    "number": NUMBER,
    "money": NUMBER,
    "date": DATE,
    "choice": CHOICE,
    "multi_choice": LIST,
    "bool": BOOL,
    "user": REF,
}


def _own_fields(object_type: str, prefix: str = "", label_prefix: str = "") -> list[FieldSpec]:
    from rapport.core.models import CustomFieldDefinition

    out: list[FieldSpec] = []
    for f in model_for(object_type)._meta.get_fields():
        if isinstance(f, models.Field):
            spec = _spec_for_field(f, prefix, label_prefix)
            if spec is not None:
                out.append(spec)
    if object_type in ("company", "person"):
        out.append(FieldSpec(f"{prefix}phones", f"{label_prefix}{_('phones')}", LIST))
        out.append(FieldSpec(f"{prefix}emails", f"{label_prefix}{_('emails')}", LIST))
        out.append(FieldSpec(f"{prefix}tags", f"{label_prefix}{_('tags')}", LIST))
        out.append(FieldSpec(f"{prefix}region", f"{label_prefix}{_('region (from phone)')}", TEXT))
    if object_type == "deal":
        out.append(FieldSpec(f"{prefix}coworkers", f"{label_prefix}{_('co-workers')}", LIST))
    if object_type == "task":
        out.append(FieldSpec(f"{prefix}coexecutors", f"{label_prefix}{_('co-executors')}", LIST))
    for d in CustomFieldDefinition.objects.filter(object_type=object_type):
        kind = _CUSTOM_TYPES.get(d.type, TEXT)
        choices = tuple((str(c), str(c)) for c in (d.choices or []))
        out.append(
            FieldSpec(
                f"{prefix}custom.{d.name}",
                f"{label_prefix}{d.label}",
                kind,
                choices=choices,
                ref="user" if d.type == "user" else "",
                custom=True,
            )
        )
    return out


def fields_for(object_type: str) -> dict[str, FieldSpec]:
    """Every field a rule on ``object_type`` may test or set, by path."""
    if object_type not in OBJECT_MODELS:
        return {}
    specs = _own_fields(object_type)
    for rel in RELATIONS[object_type]:
        rel_type = "person" if rel == "contact" else rel
        rel_label = {
            "company": _("Company"),
            "person": _("Person"),
            "contact": _("Contact person"),
            "deal": _("Deal"),
            "lead": _("Lead"),
        }[rel]
        specs.extend(_own_fields(rel_type, prefix=f"{rel}.", label_prefix=f"{rel_label} → "))
    return {s.path: s for s in specs}


# --- reading values ----------------------------------------------------------------------------


def _points(obj: Any, channel: str) -> list[str]:
    cache = getattr(obj, "_rule_points", None)
    if cache is None:
        cache = {"phone": [], "email": []}
        for cp in obj.contact_points.all():
            cache.setdefault(cp.channel, []).append(cp.value or cp.raw)
        obj._rule_points = cache
    return list(cache.get(channel, []))


def _own_value(obj: Any, name: str) -> Any:
    from rapport.core.phones import phone_region

    if name.startswith("custom."):
        return (obj.custom_fields or {}).get(name[7:])
    if name == "phones":
        return _points(obj, "phone")
    if name == "emails":
        return _points(obj, "email")
    if name == "region":
        for phone in _points(obj, "phone"):
            region = phone_region(phone) if phone.startswith("+") else ""
            if region:
                return region
        return ""
    if name == "tags":
        return [t.name for t in obj.tags.all()]
    if name == "coworkers":
        return [u.pk for u in obj.coworkers.all()]
    if name == "coexecutors":
        return [u.pk for u in obj.coexecutors.all()]
    try:
        f = obj._meta.get_field(name)
    except Exception:
        return getattr(obj, name, None)
    return getattr(obj, getattr(f, "attname", name))


def value_of(obj: Any, path: str) -> Any:
    """The value at ``path`` ("amount", "company.industry", "custom.region") or None."""
    head, _sep, rest = path.partition(".")
    if head != "custom" and rest and head in {"company", "person", "contact", "deal", "lead"}:
        related = getattr(obj, head, None)
        return None if related is None else _own_value(related, rest)
    return _own_value(obj, path)


def related_for_select(object_type: str) -> list[str]:
    return list(RELATIONS.get(object_type, ()))


def related_columns(object_type: str, paths: Iterable[str]) -> dict[str, set[str]]:
    """The relations of ``object_type`` that field paths ("company.industry") go through,
    each with the columns those paths read (its key always; phones, tags and the like
    are read through their own tables)."""
    relations = RELATIONS.get(object_type, ())
    out: dict[str, set[str]] = {}
    for path in paths:
        head, _sep, rest = path.partition(".")
        if head not in relations or not rest:
            continue
        meta = model_for("person" if head == "contact" else head)._meta
        columns = out.setdefault(head, {meta.pk.name})
        name = "custom_fields" if rest.startswith("custom.") else rest
        if any(f.name == name for f in meta.concrete_fields):
            columns.add(name)
    return out


def load(object_type: str, object_id: int) -> Any:
    """The record with its relations, or None when it is gone."""
    model = model_for(object_type)
    qs = model._default_manager.select_related(*related_for_select(object_type))
    return qs.filter(pk=object_id).first()


def load_many(
    object_type: str, ids: Iterable[int], *, paths: Iterable[str] | None = None
) -> dict[int, Any]:
    """The records by id, as ``load`` reads each (gone ones absent). Given the field
    ``paths`` rules will read, only the related records they go through are joined, with
    only the columns they name (anything else is still read when asked, one query each)."""
    model = model_for(object_type)
    if paths is None:
        qs = model._default_manager.select_related(*related_for_select(object_type))
        return {obj.pk: obj for obj in qs.filter(pk__in=set(ids))}
    columns = related_columns(object_type, paths)
    own = [f.name for f in model._meta.concrete_fields]
    qs = model._default_manager.select_related(*columns).only(
        *own, *(f"{rel}__{c}" for rel, cs in columns.items() for c in cs)
    )
    return {obj.pk: obj for obj in qs.filter(pk__in=set(ids))}


# --- typed values -----------------------------------------------------------------------------


class BadValue(ValueError):
    pass


def coerce(kind: str, value: Any) -> Any:
    """``value`` as the field type compares it; BadValue when it cannot be."""
    if value is None or value == "":
        return None
    if kind == NUMBER:
        if isinstance(value, Mapping) and "amount" in value:  # a money custom field
            value = value["amount"]
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise BadValue(value)
        try:
            return decimal.Decimal(
                str(value).replace(" ", "").replace("\u00a0", "").replace(",", ".")
            )
        except decimal.InvalidOperation as exc:
            raise BadValue(value) from exc
    if kind == DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value)[:10])
        except ValueError as exc:
            raise BadValue(value) from exc
    if kind == DATETIME:
        if not isinstance(value, dt.datetime):
            try:
                value = dt.datetime.fromisoformat(str(value))
            except ValueError as exc:
                raise BadValue(value) from exc
        if value.tzinfo is None:  # typed in a rule: the organisation's time
            value = value.replace(tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
        return value
    if kind == BOOL:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise BadValue(value)
    if kind == REF:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise BadValue(value) from exc
    return str(value)
