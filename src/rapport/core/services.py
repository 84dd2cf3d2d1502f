"""Writes of kernel tables: custom field definitions."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.errors import FieldErrors, PermissionDenied
from rapport.core.models import CustomFieldDefinition

DEF_FIELDS = ["object_type", "name", "label", "type", "required", "choices", "order", "help_text"]


def _require_admin(actor: Any) -> None:
    if actor is not None and not getattr(actor, "is_rapport_admin", False):
        raise PermissionDenied(_("Only an administrator can do this."))


def _check_choices(type_: str, choices: list[Any]) -> list[str]:
    clean = [str(c).strip() for c in choices if str(c).strip()]
    if type_ in (CustomFieldDefinition.Type.CHOICE, CustomFieldDefinition.Type.MULTI_CHOICE):
        if not clean:
            raise FieldErrors.single("choices", _("A choice field needs at least one choice."))
        if len(set(clean)) != len(clean):
            raise FieldErrors.single("choices", _("Choices must be different."))
    return clean


@transaction.atomic
def custom_field_create(
    *,
    actor: Any,
    object_type: str,
    name: str,
    label: str,
    type: str,  # noqa: A002
    required: bool = False,
    choices: list[Any] | None = None,
    order: int = 100,
    help_text: str = "",
) -> CustomFieldDefinition:
    _require_admin(actor)
    if CustomFieldDefinition.objects.filter(object_type=object_type, name=name).exists():
        raise FieldErrors.single("name", _("A field with this name already exists."))
    defn = CustomFieldDefinition.objects.create(
        object_type=object_type,
        name=name,
        label=label.strip(),
        type=type,
        required=required,
        choices=_check_choices(type, choices or []),
        order=order,
        help_text=help_text.strip(),
    )
    audit_record(
        actor=actor,
        instance=defn,
        object_type="custom_field",
        action="create",
        changes={k: [None, v] for k, v in snapshot(defn, DEF_FIELDS).items()},
    )
    return defn


@transaction.atomic
def custom_field_update(
    *, actor: Any, definition: CustomFieldDefinition, **fields: Any
) -> CustomFieldDefinition:
    _require_admin(actor)
    allowed = {"label", "required", "choices", "order", "help_text"}
    if set(fields) - allowed:
        raise FieldErrors({k: [_("This field cannot be changed.")] for k in set(fields) - allowed})
    if "choices" in fields:
        fields["choices"] = _check_choices(definition.type, fields["choices"] or [])
    before = snapshot(definition, DEF_FIELDS)
    for k, v in fields.items():
        setattr(definition, k, v.strip() if isinstance(v, str) else v)
    definition.save(update_fields=[*fields, "updated_at"])
    changes = diff(before, snapshot(definition, DEF_FIELDS))
    if changes:
        audit_record(
            actor=actor,
            instance=definition,
            object_type="custom_field",
            action="update",
            changes=changes,
        )
    return definition


@transaction.atomic
def custom_field_delete(*, actor: Any, definition: CustomFieldDefinition) -> None:
    """Remove a definition; stored values stay in the JSON and come back if it is re-created."""
    _require_admin(actor)
    audit_record(
        actor=actor,
        instance=definition,
        object_type="custom_field",
        action="delete",
        changes={k: [v, None] for k, v in snapshot(definition, DEF_FIELDS).items()},
    )
    definition.delete()
