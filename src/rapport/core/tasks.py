"""Background entry points run by the worker (django-q2). Thin: they call services.

Apps register periodic jobs with ``periodic``; ``rapport worker`` turns each into a
django-q2 schedule when it starts.
"""

from __future__ import annotations

from rapport.core.events import outbox_dispatch as _dispatch

PERIODIC: dict[str, tuple[str, int]] = {}


def periodic(name: str, func: str, *, minutes: int = 1) -> None:
    """Run the function at dotted path ``func`` every ``minutes`` in the worker."""
    PERIODIC[name] = (func, minutes)


def outbox_dispatch() -> int:
    return _dispatch()


def outbox_prune() -> int:
    from rapport.core.events import outbox_prune as prune

    return prune()


# Re-dispatches anything a nudge missed and reaps dead leases.
periodic("rapport.outbox_sweep", "rapport.core.tasks.outbox_dispatch")
periodic("rapport.outbox_prune", "rapport.core.tasks.outbox_prune", minutes=60)
