"""The sales process's background jobs, run by the worker."""

from __future__ import annotations

from rapport.core.tasks import periodic


def deals_stalled() -> int:
    """Flag deals past their stage time limit (``deal.stalled``, once per stay)."""
    from rapport.sales.services import deals_mark_stalled

    return deals_mark_stalled()


periodic("rapport.deals_stalled", "rapport.sales.jobs.deals_stalled")
