"""Event handlers of the activities module (run by the worker, once per event each)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from rapport.core.events import batch_handler, handler
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
    if payload.get("reason") == "no_contact":
        breach = f"deal_no_contact:{deal.pk}:{payload.get('since', '')}"
        text = _("Deal “%(deal)s”: no contact with the client for %(days)s days") % {
            "deal": deal.title,
            "days": payload.get("days_without_contact", 0),
        }
    else:
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


def notification_email(event: OutboxEvent) -> None:
    """Email a notification to a user who chose its kind. At least once: a retry after a
    crash sends the same Message-ID, so mail clients show it once."""
    from django.conf import settings
    from django.core.mail import EmailMessage
    from django.utils import translation

    from rapport.activities.models import Notification

    note = Notification.objects.filter(pk=event.object_id).select_related("user").first()
    if note is None or not note.user.email or note.kind not in (note.user.email_notify_kinds or []):
        return
    with translation.override(note.user.language or settings.LANGUAGE_CODE):
        link = f"{settings.RAPPORT_BASE_URL.rstrip('/')}{note.url}" if note.url else ""
        body = "\n\n".join(part for part in (note.title, note.body, link) if part)
        message = EmailMessage(
            subject=f"Rapport: {note.title}",
            body=body,
            to=[note.user.email],
            headers={"Message-ID": f"<notification-{note.pk}-{note.key}@rapport>"},
        )
    message.send(fail_silently=False)


@batch_handler("notification.created", key="activities.notification_email", one=notification_email)
def notification_emails(events: list[OutboxEvent]) -> list[OutboxEvent]:
    """Most notifications are not wanted by email: one query tells which are; those go on
    to ``notification_email`` one by one (a send is external work)."""
    from rapport.activities.models import Notification

    wanted = {
        note.pk
        for note in Notification.objects.filter(pk__in=[e.object_id for e in events])
        .select_related("user")
        .only("pk", "kind", "user__email", "user__email_notify_kinds")
        if note.user.email and note.kind in (note.user.email_notify_kinds or [])
    }
    return [e for e in events if e.object_id in wanted]
