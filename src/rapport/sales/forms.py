"""Page forms of the sales process: parse what the user typed into the dicts services take."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from rapport.parties.forms import CustomFieldsFormMixin
from rapport.sales.choices import STAGE_REQUIREMENTS, LeadChannel, PipelineKind

DATE = forms.DateInput(attrs={"type": "date"})


def _currency_choices() -> list[tuple[str, str]]:
    return [(c, c) for c in settings.CURRENCIES]


class DealForm(CustomFieldsFormMixin):
    title = forms.CharField(label=_("Title"), max_length=200)
    pipeline_id = forms.TypedChoiceField(label=_("Pipeline"), coerce=int, required=False)
    stage_id = forms.TypedChoiceField(
        label=_("Stage"), coerce=int, required=False, empty_value=None
    )
    company_id = forms.TypedChoiceField(
        label=_("Company"), coerce=int, required=False, empty_value=None
    )
    person_id = forms.TypedChoiceField(
        label=_("Client (person)"), coerce=int, required=False, empty_value=None
    )
    contact_id = forms.TypedChoiceField(
        label=_("Contact person"), coerce=int, required=False, empty_value=None
    )
    amount = forms.CharField(
        label=_("Amount"),
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "dir": "ltr"}),
    )
    currency = forms.ChoiceField(label=_("Currency"), choices=_currency_choices)
    expected_close = forms.CharField(label=_("Expected close date"), required=False, widget=DATE)
    responsible_id = forms.TypedChoiceField(
        label=_("Responsible manager"), coerce=int, required=False, empty_value=None
    )
    coworker_ids = forms.TypedMultipleChoiceField(label=_("Co-workers"), coerce=int, required=False)
    source = forms.CharField(label=_("Source"), max_length=100, required=False)

    def to_service(self, *, creating: bool) -> dict[str, Any]:
        d = self.cleaned_data
        data: dict[str, Any] = {
            k: d.get(k)
            for k in (
                "title",
                "company_id",
                "person_id",
                "contact_id",
                "amount",
                "currency",
                "expected_close",
                "responsible_id",
                "source",
            )
        }
        data["coworker_ids"] = list(d.get("coworker_ids") or [])
        if creating:
            data["pipeline_id"] = d.get("pipeline_id")
            data["stage_id"] = d.get("stage_id")
        data["custom_fields"] = self.custom_values()
        return data


class LeadForm(CustomFieldsFormMixin):
    name = forms.CharField(label=_("Name"), max_length=200, required=False)
    phone = forms.CharField(
        label=_("Phone"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"dir": "ltr"}),
    )
    email = forms.CharField(
        label=_("Email"),
        max_length=254,
        required=False,
        widget=forms.TextInput(attrs={"dir": "ltr"}),
    )
    company_name = forms.CharField(label=_("Company name"), max_length=300, required=False)
    address = forms.CharField(label=_("City or address"), max_length=300, required=False)
    interest = forms.CharField(label=_("Product or service"), max_length=200, required=False)
    amount = forms.CharField(label=_("Estimated amount"), required=False)
    currency = forms.ChoiceField(label=_("Currency"), choices=_currency_choices)
    channel = forms.ChoiceField(label=_("Channel"), choices=LeadChannel.choices)
    responsible_id = forms.TypedChoiceField(
        label=_("Responsible manager"), coerce=int, required=False, empty_value=None
    )
    source = forms.CharField(label=_("Source"), max_length=100, required=False)
    utm_source = forms.CharField(label="utm_source", max_length=100, required=False)
    utm_medium = forms.CharField(label="utm_medium", max_length=100, required=False)
    utm_campaign = forms.CharField(label="utm_campaign", max_length=100, required=False)
    text = forms.CharField(
        label=_("Request"), required=False, widget=forms.Textarea(attrs={"rows": 4})
    )

    def to_service(self) -> dict[str, Any]:
        data = {k: self.cleaned_data.get(k) for k in self.fields if not k.startswith("cf_")}
        data["custom_fields"] = self.custom_values()
        return data


class PipelineForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=PipelineKind.choices)
    order = forms.IntegerField(label=_("Order"), min_value=0, initial=100)
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)
    no_contact_days = forms.IntegerField(
        label=_("Remind after days without contact"),
        required=False,
        min_value=1,
        max_value=365,
        help_text=_("Empty: no reminder."),
    )


class StageForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    color = forms.CharField(
        label=_("Colour"),
        max_length=7,
        initial="#4f7cff",
        widget=forms.TextInput(attrs={"type": "color"}),
    )
    probability = forms.IntegerField(
        label=_("Win probability, %"), min_value=0, max_value=100, initial=0
    )
    time_limit_hours = forms.IntegerField(label=_("Time limit, hours"), min_value=1, required=False)
    required_fields = forms.MultipleChoiceField(
        label=_("Required to enter"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(
        self, *args: Any, custom: list[tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["required_fields"]
        if isinstance(field, forms.MultipleChoiceField):
            field.choices = [*STAGE_REQUIREMENTS.items(), *(custom or [])]
