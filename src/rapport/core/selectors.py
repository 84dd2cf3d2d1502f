"""Reads of kernel tables."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from rapport.core.models import Attachment, AuditEntry, CustomFieldDefinition


def custom_field_list(*, object_type: str | None) -> QuerySet[CustomFieldDefinition]:
    qs = CustomFieldDefinition.objects.all()
    if object_type:
        qs = qs.filter(object_type=object_type)
    return qs.order_by("object_type", "order", "id")


def record_get(*, user: Any, object_type: str, object_id: int) -> Any:
    """The company, person, deal or lead if ``user`` may see it; 404 otherwise.

    Administrators also reach records in the recycle bin (their history, their files)."""
    deleted = bool(getattr(user, "is_rapport_admin", False))
    if object_type == "company":
        from rapport.parties.selectors import company_get

        return company_get(user=user, company_id=object_id, include_deleted=deleted)
    if object_type == "person":
        from rapport.parties.selectors import person_get

        return person_get(user=user, person_id=object_id, include_deleted=deleted)
    if object_type == "deal":
        from rapport.sales.selectors import deal_get

        return deal_get(user=user, deal_id=object_id, include_deleted=deleted)
    if object_type == "lead":
        from rapport.sales.selectors import lead_get

        return lead_get(user=user, lead_id=object_id, include_deleted=deleted)
    raise Http404


def audit_for_object(*, user: Any, object_type: str, object_id: int) -> QuerySet[AuditEntry]:
    """History of a record the user may see (404 otherwise)."""
    record_get(user=user, object_type=object_type, object_id=object_id)
    return AuditEntry.objects.filter(object_type=object_type, object_id=object_id).select_related(
        "actor"
    )


def attachments_for(*, user: Any, object_type: str, object_id: int) -> QuerySet[Attachment]:
    """Files attached to a record the user may see (404 otherwise), newest first."""
    record_get(user=user, object_type=object_type, object_id=object_id)
    return Attachment.objects.filter(
        object_type=object_type, object_id=object_id, deleted_at__isnull=True
    ).select_related("uploaded_by")


def attachment_get(*, user: Any, attachment_id: int) -> Attachment:
    att = Attachment.objects.filter(pk=attachment_id, deleted_at__isnull=True).first()
    if att is None:
        raise Http404
    record_get(user=user, object_type=att.object_type, object_id=att.object_id)
    return att
