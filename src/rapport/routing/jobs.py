"""Background jobs of lead routing and absences."""

from __future__ import annotations

from rapport.core.tasks import periodic


def absences() -> int:
    """Start and end the absences whose time came (catches up after downtime)."""
    from rapport.routing.services import absences_due

    return absences_due()


periodic("rapport.absences", "rapport.routing.jobs.absences")
