"""The sales process's background jobs, run by the worker."""

from __future__ import annotations

from rapport.core.tasks import periodic


def deals_stalled() -> int:
    """Flag deals past their stage time limit (``deal.stalled``, once per stay)."""
    from rapport.sales.services import deals_mark_stalled

    return deals_mark_stalled()


def deals_silent() -> int:
    """Remind of open deals whose client has had no contact for the pipeline's days."""
    from rapport.sales.services import deals_mark_silent

    return deals_mark_silent()


periodic("rapport.deals_stalled", "rapport.sales.jobs.deals_stalled")
periodic("rapport.deals_silent", "rapport.sales.jobs.deals_silent")  # within a minute
