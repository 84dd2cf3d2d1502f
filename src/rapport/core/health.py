"""Health endpoints for load balancers, container runtimes and monitoring.

``/health/live``: the web process answers (no database touched). ``/health/ready``: the
database answers and the worker keeps up with the outbox; ``503`` otherwise, with the
reason. No login (a probe has none) and no records: only statuses, ages and counts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from rapport.core.events import outbox_backlog


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    problems: list[str] = []
    body: dict[str, Any] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "ok"
        body["outbox"] = outbox_backlog()
    except DatabaseError as exc:
        body["database"] = "unreachable"
        problems.append(f"database: {exc.__class__.__name__}")
    limit = float(getattr(settings, "HEALTH_OUTBOX_MAX_SECONDS", 300))
    waiting = body.get("outbox", {}).get("oldest_waiting_seconds", 0.0)
    if waiting > limit:
        problems.append(
            f"outbox: an event has waited {waiting:.0f} s (limit {limit:.0f} s); "
            "is the worker running?"
        )
    body["status"] = "ok" if not problems else "unavailable"
    if problems:
        body["problems"] = problems
    return JsonResponse(body, status=200 if not problems else 503)
