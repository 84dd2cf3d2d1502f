"""Worker entry points: the rules' clock (dates and schedules) and the rules check."""

from __future__ import annotations

from rapport.core.tasks import periodic


def rules_clock() -> int:
    from rapport.automations.engine import rules_clock as clock

    return clock()


def rules_check() -> int:
    from rapport.automations.engine import rules_check as check

    return check()


periodic("rapport.automations.clock", "rapport.automations.jobs.rules_clock", minutes=1)
periodic("rapport.automations.check", "rapport.automations.jobs.rules_check", minutes=5)
