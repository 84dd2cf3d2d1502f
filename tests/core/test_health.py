"""Health endpoints a load balancer or a container runtime probes, without logging in."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from rapport.core.events import outbox_dispatch
from rapport.core.models import OutboxEvent


def _event(minutes_ago: int, status: str = "pending") -> OutboxEvent:
    return OutboxEvent.objects.create(
        name="company.updated",
        object_type="company",
        object_id=1,
        status=status,
        available_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_the_live_probe_answers_without_a_login_or_the_database(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_the_ready_probe_checks_the_database_and_the_outbox(client, db):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "outbox": {"oldest_waiting_seconds": 0.0, "failed": 0},
    }


def test_the_ready_probe_fails_while_the_worker_leaves_events_waiting_too_long(
    client, db, settings
):
    settings.HEALTH_OUTBOX_MAX_SECONDS = 300
    _event(minutes_ago=1)
    assert client.get("/health/ready").status_code == 200  # a minute behind is fine
    _event(minutes_ago=10)
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["outbox"]["oldest_waiting_seconds"] >= 600
    assert "is the worker running?" in body["problems"][0]
    outbox_dispatch()  # the worker catches up
    assert client.get("/health/ready").status_code == 200


def test_failed_events_are_counted_but_do_not_take_the_site_out_of_rotation(client, db):
    _event(minutes_ago=60, status="failed")
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["outbox"]["failed"] == 1
