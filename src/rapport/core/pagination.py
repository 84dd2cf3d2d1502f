"""Keyset pagination: pages by the last seen (sort value, id), fast at any depth."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import models
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from rapport.core.errors import FieldErrors

M = TypeVar("M", bound=models.Model)


@dataclass
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None


def _encode(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def _decode(cursor: str) -> list[Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise FieldErrors.single("cursor", _("Invalid page cursor.")) from exc
    if not isinstance(value, list) or len(value) != 2:
        raise FieldErrors.single("cursor", _("Invalid page cursor."))
    return value


def keyset_page(qs: QuerySet[M], *, sort: str, cursor: str | None, size: int) -> Page[M]:
    """One page of ``qs`` ordered by ``sort`` (a field name, ``-`` for descending) then id."""
    desc = sort.startswith("-")
    field = sort.lstrip("-")
    qs = qs.order_by(f"-{field}", "-id") if desc else qs.order_by(field, "id")
    if cursor:
        value, last_id = _decode(cursor)
        if field == "id":
            qs = qs.filter(id__lt=last_id) if desc else qs.filter(id__gt=last_id)
        elif desc:
            qs = qs.filter(Q(**{f"{field}__lt": value}) | Q(**{field: value, "id__lt": last_id}))
        else:
            qs = qs.filter(Q(**{f"{field}__gt": value}) | Q(**{field: value, "id__gt": last_id}))
    rows = list(qs[: size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = _encode([getattr(last, field), last.pk])
    return Page(items=rows, next_cursor=next_cursor)
