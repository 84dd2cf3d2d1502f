"""Event handlers of the activities module (run by the worker, once per event each)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from rapport.core.events import handler
from rapport.core.models import OutboxEvent


@handler("deal.stalled", key="activities.deal_stalled_reminder")
def deal_stalled_reminder(event: OutboxEvent) -> None:
    """The responsible manager gets a notification and a task, once per breach."""
    from rapport.activities.models import NotificationKind
    from rapport.activities.services import notify, task_create
    from rapport.sales.models import Deal

    deal = Deal.objects.filter(pk=event.object_id).select_related("stage").first()
    if deal is None or deal.responsible_id is None:
        return
    payload = event.payload or {}
    breach = f"deal_stalled:{deal.pk}:{payload.get('entered_at', '')}"
    text = _("Deal “%(deal)s” is stalled in “%(stage)s” for %(days)s days") % {
        "deal": deal.title,
        "stage": payload.get("stage_name") or (deal.stage.name if deal.stage else ""),
        "days": payload.get("days_in_stage", 0),
    }
    notify(
        user_id=deal.responsible_id,
        kind=NotificationKind.DEAL_STALLED,
        key=breach,
        title=text,
        url=f"/deals/{deal.pk}/",
    )
    from rapport.activities.models import Task

    if not Task.objects.filter(origin_key=breach).exists():
        task_create(
            actor=None,
            data={
                "title": text,
                "responsible_id": deal.responsible_id,
                "deal_id": deal.pk,
                "priority": 3,
                "origin_key": breach,
            },
        )
