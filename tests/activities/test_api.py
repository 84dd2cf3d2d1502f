"""The activities API: same services, same scopes, same error shape as the pages."""

from __future__ import annotations

import datetime as dt
import json

from django.utils import timezone


def _post(client, url, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


def _patch(client, url, body, **headers):
    return client.patch(url, data=json.dumps(body), content_type="application/json", **headers)


def test_log_a_call_and_find_it_on_the_company_timeline(alice, make_company, client_for):
    company = make_company(alice, "Acme")
    client = client_for(alice)
    r = _post(
        client,
        "/api/v1/interactions",
        {
            "kind": "call",
            "direction": "out",
            "subject": "Prices",
            "duration_seconds": 300,
            "company_id": company.pk,
            "participants": [{"text": "secretary"}],
        },
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["kind"], body["status"], body["participants"][0]["text"]) == (
        "call",
        "done",
        "secretary",
    )
    timeline = client.get(f"/api/v1/timeline/company/{company.pk}?kind=call").json()
    assert [e["title"] for e in timeline] == ["Prices"]


def test_a_meeting_ending_before_it_starts_answers_422_naming_the_field(alice, client_for):
    r = _post(
        client_for(alice),
        "/api/v1/interactions",
        {"kind": "meeting", "at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T09:00:00Z"},
    )
    assert r.status_code == 422
    assert "ends_at" in r.json()["error"]["fields"]


def test_tasks_with_subtasks_and_a_stale_patch(alice, client_for):
    client = client_for(alice)
    parent = _post(client, "/api/v1/tasks", {"title": "Tender"}).json()
    sub = _post(client, "/api/v1/tasks", {"title": "Documents", "parent_id": parent["id"]}).json()
    done = _patch(client, f"/api/v1/tasks/{sub['id']}", {"status": "done"}, HTTP_IF_MATCH='"1"')
    assert done.status_code == 200
    stale = _patch(client, f"/api/v1/tasks/{sub['id']}", {"title": "X"}, HTTP_IF_MATCH='"1"')
    assert stale.status_code == 412
    got = client.get(f"/api/v1/tasks/{parent['id']}").json()
    assert (got["subtasks_total"], got["subtasks_done"]) == (1, 1)
    assert [t["title"] for t in client.get(f"/api/v1/tasks/{parent['id']}/subtasks").json()] == [
        "Documents"
    ]


def test_mass_assignment_of_owner_fields_is_refused(alice, client_for):
    r = _post(client_for(alice), "/api/v1/tasks", {"title": "T", "version": 9, "team_id": 1})
    assert r.status_code == 422


def test_calendar_range_and_notifications(alice, dan, client_for):
    client = client_for(alice)
    soon = timezone.now() + dt.timedelta(hours=2)
    _post(
        client,
        "/api/v1/tasks",
        {"title": "Call Dan's client", "responsible_id": dan.pk, "due_at": soon.isoformat()},
    )
    start = (soon - dt.timedelta(days=1)).isoformat()
    end = (soon + dt.timedelta(days=1)).isoformat()
    assert client.get("/api/v1/calendar", {"start": start, "end": end}).json() == []
    dans = client_for(dan)
    items = dans.get("/api/v1/calendar", {"start": start, "end": end}).json()
    assert [i["title"] for i in items] == ["Call Dan's client"]
    unread = dans.get("/api/v1/notifications?unread=true").json()
    assert [n["kind"] for n in unread] == ["task_assigned"]
    assert _post(dans, "/api/v1/notifications/read", {}).json() == {"marked": 1}
    assert dans.get("/api/v1/notifications?unread=true").json() == []


def test_another_teams_activities_are_404_and_absent(alice, carol, make_company, client_for):
    company = make_company(alice, "Acme")
    client = client_for(alice)
    inter = _post(
        client,
        "/api/v1/interactions",
        {"kind": "note", "subject": "Secret", "company_id": company.pk},
    ).json()
    task = _post(client, "/api/v1/tasks", {"title": "Secret task"}).json()
    other = client_for(carol)
    for url in (
        f"/api/v1/interactions/{inter['id']}",
        f"/api/v1/tasks/{task['id']}",
        f"/api/v1/tasks/{task['id']}/subtasks",
        f"/api/v1/threads/{inter['thread_id']}",
        f"/api/v1/timeline/company/{company.pk}",
    ):
        assert other.get(url).status_code == 404, url
    assert _patch(other, f"/api/v1/tasks/{task['id']}", {"title": "x"}).status_code == 404
    assert other.get("/api/v1/interactions").json()["items"] == []
    assert other.get("/api/v1/tasks?view=team").json() == []
    refused = _post(other, "/api/v1/interactions", {"kind": "note", "company_id": company.pk})
    assert refused.status_code == 422
    assert "company_id" in refused.json()["error"]["fields"]


def test_ics_feed_created_through_the_api_serves_and_revokes(alice, client_for, client):
    api = client_for(alice)
    feed = api.post("/api/v1/calendar/feeds").json()
    path = feed["url"].split("testserver", 1)[1]
    assert client.get(path).status_code == 200
    assert api.delete(f"/api/v1/calendar/feeds/{feed['id']}").status_code == 204
    assert client.get(path).status_code == 404
