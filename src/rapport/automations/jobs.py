"""Worker entry points: the rules' clock (dates and schedules), the rules check, and the
execution log's upkeep."""

from __future__ import annotations

from rapport.core.tasks import periodic


def rules_clock() -> int:
    from rapport.automations.engine import rules_clock as clock

    return clock()


def rules_check() -> int:
    from rapport.automations.engine import rules_check as check

    return check()


def runs_prune() -> int:
    from rapport.automations.engine import runs_prune as prune

    return prune()


periodic("rapport.automations.clock", "rapport.automations.jobs.rules_clock", minutes=1)
periodic("rapport.automations.check", "rapport.automations.jobs.rules_check", minutes=5)
periodic("rapport.automations.prune", "rapport.automations.jobs.runs_prune", minutes=60)
