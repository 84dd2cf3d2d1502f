"""`rapport worker`: the background worker (django-q2 cluster) plus the outbox sweep schedule."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand


def ensure_schedules() -> None:
    """A django-q2 schedule for every periodic job the apps registered (core.tasks.periodic)."""
    from django_q.models import Schedule

    from rapport.core.tasks import PERIODIC

    for name, (func, minutes) in PERIODIC.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )


class Command(BaseCommand):
    help = "Run the background worker (outbox dispatch, scheduled jobs)."

    def handle(self, *args: Any, **opts: Any) -> None:
        ensure_schedules()
        call_command("qcluster")
