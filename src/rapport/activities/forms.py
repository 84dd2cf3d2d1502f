"""Page forms for interactions and tasks: parse input into the dicts services take."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from rapport.activities.models import Direction, InteractionKind, InteractionStatus, Priority

WHEN = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class QuickLogForm(forms.Form):
    """Log a call, meeting or note without leaving the card."""

    kind = forms.ChoiceField(label=_("Kind"), choices=InteractionKind.choices)
    status = forms.ChoiceField(label=_("Status"), choices=InteractionStatus.choices, initial="done")
    direction = forms.ChoiceField(label=_("Direction"), choices=Direction.choices, required=False)
    subject = forms.CharField(label=_("Subject"), max_length=300, required=False)
    body = forms.CharField(
        label=_("Text"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    at = forms.CharField(label=_("When"), required=False, widget=WHEN)
    ends_at = forms.CharField(label=_("Ends"), required=False, widget=WHEN)
    duration_minutes = forms.IntegerField(label=_("Duration, minutes"), min_value=0, required=False)
    result = forms.CharField(label=_("Result"), max_length=300, required=False)
    place = forms.CharField(label=_("Place"), max_length=300, required=False)
    participant_text = forms.CharField(
        label=_("Other participants"),
        max_length=300,
        required=False,
        help_text=_("As typed, e.g. “secretary, +7 495 …”; link them to a contact later."),
    )

    def to_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        data: dict[str, Any] = {
            k: d.get(k)
            for k in ("kind", "status", "direction", "subject", "body", "result", "place")
        }
        data["at"] = d.get("at") or None
        data["ends_at"] = d.get("ends_at") or None
        if d.get("duration_minutes") is not None:
            data["duration_seconds"] = d["duration_minutes"] * 60
        if d.get("participant_text"):
            data["participants"] = [{"text": d["participant_text"]}]
        return data


class TaskForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=300)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    responsible_id = forms.TypedChoiceField(label=_("Assignee"), coerce=int, required=False)
    coexecutor_ids = forms.TypedMultipleChoiceField(
        label=_("Co-executors"), coerce=int, required=False
    )
    due_at = forms.CharField(label=_("Due"), required=False, widget=WHEN)
    priority = forms.TypedChoiceField(
        label=_("Priority"), choices=Priority.choices, coerce=int, initial=Priority.NORMAL
    )
    remind_minutes_before = forms.IntegerField(
        label=_("Remind, minutes before due"), min_value=0, required=False
    )
    remind_at = forms.CharField(label=_("Or remind at"), required=False, widget=WHEN)

    def to_service(self) -> dict[str, Any]:
        d = self.cleaned_data
        data = {
            k: d.get(k)
            for k in ("title", "description", "responsible_id", "priority", "remind_minutes_before")
        }
        data["coexecutor_ids"] = list(d.get("coexecutor_ids") or [])
        data["due_at"] = d.get("due_at") or None
        if d.get("remind_at"):
            data["remind_at"] = d["remind_at"]
        return data
