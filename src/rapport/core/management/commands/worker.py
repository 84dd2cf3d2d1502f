"""`rapport worker`: the background worker (django-q2 cluster) plus the outbox sweep schedule."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


def ensure_schedules() -> None:
    """The periodic outbox sweep: re-dispatches anything a nudge missed and reaps dead leases."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="rapport.outbox_sweep",
        defaults={
            "func": "rapport.core.tasks.outbox_dispatch",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


class Command(BaseCommand):
    help = "Run the background worker (outbox dispatch, scheduled jobs)."

    def handle(self, *args: Any, **opts: Any) -> None:
        ensure_schedules()
        call_command("qcluster")
