"""Reads of kernel tables."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from rapport.core.models import AuditEntry, CustomFieldDefinition


def custom_field_list(*, object_type: str | None) -> QuerySet[CustomFieldDefinition]:
    qs = CustomFieldDefinition.objects.all()
    if object_type:
        qs = qs.filter(object_type=object_type)
    return qs.order_by("object_type", "order", "id")


def audit_for_object(*, user: Any, object_type: str, object_id: int) -> QuerySet[AuditEntry]:
    """History of a record the user may see (404 otherwise)."""
    if object_type == "company":
        from rapport.parties.selectors import company_get

        company_get(user=user, company_id=object_id, include_deleted=user.is_rapport_admin)
    elif object_type == "person":
        from rapport.parties.selectors import person_get

        person_get(user=user, person_id=object_id, include_deleted=user.is_rapport_admin)
    elif object_type == "deal":
        from rapport.sales.selectors import deal_get

        deal_get(user=user, deal_id=object_id, include_deleted=user.is_rapport_admin)
    elif object_type == "lead":
        from rapport.sales.selectors import lead_get

        lead_get(user=user, lead_id=object_id, include_deleted=user.is_rapport_admin)
    else:
        raise Http404
    return AuditEntry.objects.filter(object_type=object_type, object_id=object_id).select_related(
        "actor"
    )
