"""Files on records: add and remove, with the record's edit permission, audited."""

from __future__ import annotations

import mimetypes
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.core.audit import audit_record
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.models import Attachment
from rapport.core.scopes import scope_allows


def _check_edit(actor: Any, object_type: str, record: Any) -> None:
    if actor is not None and not scope_allows(
        actor, object_type, "edit", owner_id=record.responsible_id, team_id=record.team_id
    ):
        raise PermissionDenied(_("You may not change this record."))


@transaction.atomic
def attachment_add(
    *, actor: Any, object_type: str, record: Any, upload: UploadedFile
) -> Attachment:
    """Attach an uploaded file to ``record`` (a company, person, deal or lead)."""
    _check_edit(actor, object_type, record)
    limit = settings.ATTACHMENT_MAX_MB * 1024 * 1024
    name = (upload.name or "").strip()
    if not name:
        raise FieldErrors.single("file", _("Choose a file."))
    if upload.size is None or upload.size == 0:
        raise FieldErrors.single("file", _("“%(name)s” is empty.") % {"name": name})
    if upload.size > limit:
        raise FieldErrors.single(
            "file",
            _("“%(name)s” is larger than %(mb)s MB.")
            % {"name": name, "mb": settings.ATTACHMENT_MAX_MB},
        )
    att = Attachment(
        object_type=object_type,
        object_id=record.pk,
        name=name[:255],
        size=upload.size,
        content_type=(upload.content_type or mimetypes.guess_type(name)[0] or "")[:120],
        uploaded_by=actor if getattr(actor, "pk", None) else None,
    )
    att.file.save(name, upload, save=False)
    att.save()
    audit_record(
        actor=actor,
        instance=record,
        object_type=object_type,
        action="update",
        changes={"files": [None, f"+ {att.name} ({att.size} B)"]},
    )
    return att


@transaction.atomic
def attachment_remove(*, actor: Any, attachment: Attachment, record: Any) -> None:
    """Take a file off the record; the stored file stays (the audit log names it)."""
    _check_edit(actor, attachment.object_type, record)
    attachment.deleted_at = timezone.now()
    attachment.save(update_fields=["deleted_at"])
    audit_record(
        actor=actor,
        instance=record,
        object_type=attachment.object_type,
        action="update",
        changes={"files": [attachment.name, None]},
    )
