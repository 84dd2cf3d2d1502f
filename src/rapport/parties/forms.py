"""Page forms: parse what the user typed into the dicts services take. Rules stay in services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from rapport.core.models import CustomFieldDefinition
from rapport.parties.choices import CompanyKind, EntityType, MessengerKind


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class CustomFieldsFormMixin(forms.Form):
    """Adds a form field per custom field definition, named ``cf_<name>``."""

    object_type = ""

    def add_custom_fields(
        self, definitions: list[CustomFieldDefinition], values: dict[str, Any]
    ) -> None:
        kind = CustomFieldDefinition.Type
        self.custom_defs = definitions
        for d in definitions:
            name = f"cf_{d.name}"
            value = values.get(d.name)
            common: dict[str, Any] = {"label": d.label, "required": False, "help_text": d.help_text}
            if d.type == kind.BOOL:
                field: forms.Field = forms.BooleanField(**common)
            elif d.type == kind.CHOICE:
                field = forms.ChoiceField(
                    choices=[("", "—"), *[(c, c) for c in d.choices]], **common
                )
            elif d.type == kind.MULTI_CHOICE:
                field = forms.MultipleChoiceField(
                    choices=[(c, c) for c in d.choices],
                    **common,
                    widget=forms.CheckboxSelectMultiple,
                )
            elif d.type == kind.DATE:
                field = forms.CharField(widget=forms.DateInput(attrs={"type": "date"}), **common)
            elif d.type == kind.TEXT:
                field = forms.CharField(**common)
            else:
                field = forms.CharField(**common)
                if isinstance(value, dict):
                    value = value.get("amount")
            if d.required:
                field.widget.attrs["required"] = "required"
                field.label = f"{d.label} *"
            self.fields[name] = field
            if value is not None:
                self.initial[name] = value

    def custom_values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for d in getattr(self, "custom_defs", []):
            name = f"cf_{d.name}"
            if d.type == CustomFieldDefinition.Type.MULTI_CHOICE:
                out[d.name] = self.data.getlist(name) if hasattr(self.data, "getlist") else []
            elif d.type == CustomFieldDefinition.Type.BOOL:
                out[d.name] = self.data.get(name) in ("on", "true", "1")
            else:
                out[d.name] = self.data.get(name, "")
        return out


class CompanyForm(CustomFieldsFormMixin):
    short_name = forms.CharField(label=_("Short name"), max_length=200)
    full_name = forms.CharField(label=_("Full legal name"), max_length=400, required=False)
    entity_type = forms.ChoiceField(label=_("Entity type"), choices=EntityType.choices)
    tax_id = forms.CharField(label=_("Tax id"), max_length=40, required=False)
    tax_country = forms.CharField(label=_("Tax country (ISO code)"), max_length=2, required=False)
    registration_number = forms.CharField(
        label=_("Registration number"), max_length=40, required=False
    )
    kinds = forms.MultipleChoiceField(
        label=_("Kinds"),
        choices=CompanyKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    industry = forms.CharField(label=_("Industry"), max_length=120, required=False)
    website = forms.CharField(label=_("Website"), max_length=200, required=False)
    phones = forms.CharField(
        label=_("Phones"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One or several numbers, in any format."),
    )
    emails = forms.CharField(
        label=_("Emails"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    legal_address = forms.CharField(
        label=_("Legal address"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    postal_address = forms.CharField(
        label=_("Postal address"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    city = forms.CharField(label=_("City"), max_length=120, required=False)
    country = forms.CharField(label=_("Country (ISO code)"), max_length=2, required=False)
    client_since = forms.CharField(
        label=_("Client since"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    responsible_id = forms.TypedChoiceField(
        label=_("Responsible manager"), coerce=int, required=False, empty_value=None
    )
    source = forms.CharField(label=_("Source"), max_length=100, required=False)
    tags = forms.CharField(label=_("Tags"), required=False, help_text=_("Separated by commas."))
    bank_name = forms.CharField(label=_("Bank"), max_length=200, required=False)
    bank_account = forms.CharField(label=_("Account number / IBAN"), max_length=40, required=False)
    bank_bic = forms.CharField(label=_("BIC / SWIFT"), max_length=20, required=False)
    notes = forms.CharField(
        label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def to_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        data: dict[str, Any] = {
            k: d.get(k, "")
            for k in (
                "short_name",
                "full_name",
                "entity_type",
                "tax_id",
                "tax_country",
                "registration_number",
                "industry",
                "website",
                "legal_address",
                "postal_address",
                "city",
                "country",
                "client_since",
                "source",
                "notes",
            )
        }
        data["kinds"] = list(d.get("kinds") or [])
        data["responsible_id"] = d.get("responsible_id")
        data["phones"] = [{"raw": line, "kind": "work"} for line in _lines(d.get("phones", ""))]
        data["emails"] = [{"raw": line} for line in _lines(d.get("emails", ""))]
        data["tags"] = [t.strip() for t in (d.get("tags") or "").split(",") if t.strip()]
        data["custom_fields"] = self.custom_values()
        if d.get("bank_name") or d.get("bank_account"):
            data["bank_accounts"] = [
                {
                    "bank_name": d.get("bank_name"),
                    "account_number": d.get("bank_account"),
                    "bic": d.get("bank_bic"),
                }
            ]
        return data


class PersonForm(CustomFieldsFormMixin):
    last_name = forms.CharField(label=_("Last name"), max_length=100, required=False)
    first_name = forms.CharField(label=_("First name"), max_length=100, required=False)
    middle_name = forms.CharField(label=_("Middle name"), max_length=100, required=False)
    phones = forms.CharField(
        label=_("Phones"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One or several numbers, in any format."),
    )
    emails = forms.CharField(
        label=_("Emails"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    messengers = forms.CharField(
        label=_("Messengers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line, e.g. “telegram: @ivan”."),
    )
    company_id = forms.TypedChoiceField(
        label=_("Works at"), coerce=int, required=False, empty_value=None
    )
    position = forms.CharField(label=_("Position"), max_length=150, required=False)
    job_role = forms.ChoiceField(label=_("Role at the company"), required=False)
    birthday = forms.CharField(
        label=_("Birthday"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    time_zone = forms.CharField(
        label=_("Time zone"),
        max_length=64,
        required=False,
        help_text=_("Leave empty to follow the phone number's region."),
    )
    city = forms.CharField(label=_("City"), max_length=120, required=False)
    address = forms.CharField(
        label=_("Address"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    responsible_id = forms.TypedChoiceField(
        label=_("Responsible manager"), coerce=int, required=False, empty_value=None
    )
    source = forms.CharField(label=_("Source"), max_length=100, required=False)
    tags = forms.CharField(label=_("Tags"), required=False, help_text=_("Separated by commas."))
    notes = forms.CharField(
        label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from rapport.parties.choices import EmploymentRole

        job_role = self.fields["job_role"]
        if isinstance(job_role, forms.ChoiceField):
            job_role.choices = EmploymentRole.choices

    def to_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        data: dict[str, Any] = {
            k: d.get(k, "")
            for k in (
                "first_name",
                "last_name",
                "middle_name",
                "birthday",
                "time_zone",
                "city",
                "address",
                "source",
                "notes",
            )
        }
        data["responsible_id"] = d.get("responsible_id")
        data["phones"] = [{"raw": line, "kind": "mobile"} for line in _lines(d.get("phones", ""))]
        data["emails"] = [{"raw": line} for line in _lines(d.get("emails", ""))]
        messengers = []
        for line in _lines(d.get("messengers", "")):
            kind, sep, handle = line.partition(":")
            if sep and kind.strip().lower() in MessengerKind.values:
                messengers.append({"kind": kind.strip().lower(), "raw": handle.strip()})
            else:
                messengers.append({"kind": "other", "raw": line})
        data["messengers"] = messengers
        data["tags"] = [t.strip() for t in (d.get("tags") or "").split(",") if t.strip()]
        data["custom_fields"] = self.custom_values()
        if d.get("company_id"):
            data["employments"] = [
                {
                    "company_id": d["company_id"],
                    "position": d.get("position", ""),
                    "role": d.get("job_role") or "other",
                }
            ]
        return data
