"""The worker's entry points for outgoing messages. Thin: they call the delivery loop."""

from __future__ import annotations

from rapport.core.tasks import periodic

# One job sends at most this many, then hands over to a fresh job (django-q2 has a timeout).
DELIVER_LIMIT = 2000


def deliver_due() -> int:
    """Send what is due (nudged after each enqueue's commit, and every minute by the sweep)."""
    from rapport.messaging.delivery import messages_deliver
    from rapport.messaging.services import messages_nudge

    handled = messages_deliver(limit=DELIVER_LIMIT)
    if handled >= DELIVER_LIMIT:
        messages_nudge()  # more may be due: go on in another job
    return handled


# Delivers whatever a nudge missed, and re-sends messages whose worker died mid-send.
periodic("rapport.messaging_sweep", "rapport.messaging.jobs.deliver_due", minutes=1)
