"""Background jobs of the activities module."""

from __future__ import annotations

from rapport.core.tasks import periodic


def reminders() -> int:
    """Due reminders and newly overdue tasks, notified exactly once."""
    from rapport.activities.services import reminders_due

    return reminders_due()


periodic("rapport.reminders", "rapport.activities.jobs.reminders")
