"""Event handlers of lead routing (run by the worker, once per event each)."""

from __future__ import annotations

from rapport.core.events import handler
from rapport.core.models import OutboxEvent


@handler("lead.created", key="routing.lead_created")
def route_new_lead(event: OutboxEvent) -> None:
    """A lead created without a manager (a website form, a call, an import) is routed and
    assigned; the handler run's key makes it once per lead."""
    from rapport.routing.services import lead_assign_by_routing
    from rapport.sales.models import Lead

    lead = Lead.objects.filter(pk=event.object_id).first()
    if lead is None or lead.responsible_id is not None:
        return
    lead_assign_by_routing(lead=lead)
