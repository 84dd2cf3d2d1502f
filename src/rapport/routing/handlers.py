"""Event handlers of lead routing (run by the worker, once per event each)."""

from __future__ import annotations

from rapport.core.events import batch_handler
from rapport.core.models import OutboxEvent


def route_new_lead(event: OutboxEvent) -> None:
    """A lead created without a manager (a website form, a call, an import) is routed and
    assigned; the handler run's key makes it once per lead."""
    from rapport.routing.services import lead_assign_by_routing
    from rapport.sales.models import Lead

    lead = Lead.objects.filter(pk=event.object_id).first()
    if lead is None or lead.responsible_id is not None:
        return
    lead_assign_by_routing(lead=lead)


@batch_handler("lead.created", key="routing.lead_created", one=route_new_lead)
def route_new_leads(events: list[OutboxEvent]) -> list[OutboxEvent]:
    """A claim's new leads at once: one query finds those still without a manager, which
    are routed one by one; the others (a manager chose themselves, gone) need nothing."""
    from rapport.sales.models import Lead

    unassigned = set(
        Lead.objects.filter(pk__in={e.object_id for e in events}, responsible__isnull=True)
        .order_by()
        .values_list("pk", flat=True)
    )
    return [e for e in events if e.object_id in unassigned]
