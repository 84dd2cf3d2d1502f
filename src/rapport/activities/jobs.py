"""Background jobs of the activities module."""

from __future__ import annotations

from rapport.core.tasks import periodic


def reminders() -> int:
    """Due reminders and newly overdue tasks, notified exactly once."""
    from rapport.activities.services import reminders_due

    return reminders_due()


periodic("rapport.reminders", "rapport.activities.jobs.reminders")


def caldav_sync() -> int:
    """Two-way sync of every connected CalDAV calendar; returns how many items changed."""
    from rapport.activities.caldav_sync import sync_all

    return sum(r.changed for r in sync_all().values())


periodic("rapport.caldav_sync", "rapport.activities.jobs.caldav_sync", minutes=5)
