"""Routing table and absences through pages and the API, with permissions: the routing
table is the head of sales'; another team's absence is 404 everywhere."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from rapport.routing.models import Absence, RoutingRule


def _json(client: Any, method: str, url: str, body: Any = None) -> Any:
    if method == "GET":
        return client.get(url)
    return getattr(client, method.lower())(
        url, data=json.dumps(body or {}), content_type="application/json"
    )


def _iso(delta_days: float) -> str:
    return (timezone.now() + dt.timedelta(days=delta_days)).isoformat()


# --- routing table ----------------------------------------------------------------------------


def test_the_head_of_sales_builds_the_routing_table_through_the_api(head, sales, client_for):
    client = client_for(head)
    r = _json(
        client,
        "POST",
        "/api/v1/routing-rules",
        {
            "name": "Moscow",
            "phone_prefixes": ["+7495", "+7499"],
            "target_team_id": sales["team"].pk,
            "method": "least_busy",
        },
    )
    assert r.status_code == 201, r.content
    moscow = r.json()
    assert moscow["sentence"] == (
        "If the phone starts with +7495 or +7499, it goes to the least busy member of Sales."
    )
    r = _json(
        client, "POST", "/api/v1/routing-rules", {"name": "All", "target_user_id": sales["anna"].pk}
    )
    everyone = r.json()
    assert [x["name"] for x in client.get("/api/v1/routing-rules").json()] == ["Moscow", "All"]
    r = _json(
        client, "PUT", "/api/v1/routing-rules/order", {"rule_ids": [everyone["id"], moscow["id"]]}
    )
    assert [x["name"] for x in r.json()] == ["All", "Moscow"]
    r = client.patch(
        f"/api/v1/routing-rules/{moscow['id']}",
        data=json.dumps({"amount_min": "1000"}),
        content_type="application/json",
        HTTP_IF_MATCH='"1"',
    )
    assert r.status_code == 412  # the reorder changed its version
    r = _json(client, "PATCH", f"/api/v1/routing-rules/{moscow['id']}", {"countries": ["XX"]})
    assert r.status_code == 422
    assert "XX" in r.json()["error"]["fields"]["countries"][0]
    r = _json(client, "PATCH", f"/api/v1/routing-rules/{moscow['id']}", {"id": 5, "version": 9})
    assert r.status_code == 422  # no mass assignment
    assert client.delete(f"/api/v1/routing-rules/{everyone['id']}").status_code == 204
    assert list(RoutingRule.objects.values_list("name", flat=True)) == ["Moscow"]


def test_the_routing_table_is_refused_to_managers_and_reps(alice, bob, sales, rule, client_for):
    existing = rule(name="Secret", target_user_id=sales["anna"].pk)
    for user in (alice, bob):
        client = client_for(user)
        assert client.get("/api/v1/routing-rules").status_code == 403
        assert client.get(f"/api/v1/routing-rules/{existing.pk}").status_code == 404
        r = _json(
            client, "POST", "/api/v1/routing-rules", {"name": "Mine", "target_user_id": user.pk}
        )
        assert r.status_code == 403
        r = _json(client, "PATCH", f"/api/v1/routing-rules/{existing.pk}", {"name": "Hacked"})
        assert r.status_code == 404
        assert client.delete(f"/api/v1/routing-rules/{existing.pk}").status_code == 404
        r = _json(client, "PUT", "/api/v1/routing-rules/order", {"rule_ids": [existing.pk]})
        assert r.status_code == 403
        for name, args in (("routing-rules", []), ("routing-rule-edit", [existing.pk])):
            assert client.get(reverse(name, args=args)).status_code == 404
        assert client.post(reverse("routing-rule-delete", args=[existing.pk])).status_code == 404
    existing.refresh_from_db()
    assert existing.name == "Secret"


def test_the_routing_page_adds_edits_reorders_and_removes_rules(
    head, admin_user, sales, client_for
):
    client = client_for(head)
    page = client.get(reverse("routing-rules"))
    assert page.status_code == 200
    assert "No rules yet" in page.content.decode()
    bad = client.post(reverse("routing-rules"), {"name": "", "phone_prefixes": "495"})
    assert bad.status_code == 422
    text = bad.content.decode()
    assert "Name the rule." in text
    assert "A phone prefix is" in text
    r = client.post(
        reverse("routing-rules"),
        {
            "name": "Big deals",
            "is_active": "on",
            "amount_min": "100000",
            "target_user_id": sales["vera"].pk,
            "method": "round_robin",
        },
    )
    assert r.status_code == 302
    client.post(
        reverse("routing-rules"),
        {
            "name": "Web",
            "is_active": "on",
            "channels": ["web_form"],
            "target_team_id": sales["team"].pk,
            "method": "round_robin",
        },
    )
    page = client.get(reverse("routing-rules")).content.decode()
    assert "it goes to Vera." in page
    assert "it came by website form" in page
    web = RoutingRule.objects.get(name="Web")
    rows = client.post(
        reverse("routing-rule-move", args=[web.pk]), {"direction": "up"}, HTTP_HX_REQUEST="true"
    )
    assert rows.status_code == 200
    assert "<html" not in rows.content.decode()  # the fragment only
    assert list(RoutingRule.objects.values_list("name", flat=True)) == ["Web", "Big deals"]
    edit = client.get(reverse("routing-rule-edit", args=[web.pk]))
    assert edit.status_code == 200
    web.refresh_from_db()
    r = client.post(
        reverse("routing-rule-edit", args=[web.pk]),
        {
            "name": "Web and chat",
            "channels": ["web_form", "chat"],
            "target_team_id": sales["team"].pk,
            "method": "least_busy",
            "version": web.version,
        },
    )
    assert r.status_code == 302
    web.refresh_from_db()
    assert (web.name, web.channels, web.method, web.is_active) == (
        "Web and chat",
        ["web_form", "chat"],
        "least_busy",
        False,
    )
    assert client.post(reverse("routing-rule-delete", args=[web.pk])).status_code == 302
    assert client_for(admin_user).get(reverse("routing-rules")).status_code == 200


# --- absences ---------------------------------------------------------------------------------


@pytest.fixture
def bobs_absence(bob, alice) -> Absence:
    from rapport.routing.services import absence_create

    return absence_create(
        actor=bob,
        data={"starts_at": _iso(2), "ends_at": _iso(9), "deputy_id": alice.pk, "note": "Sea"},
    )


def test_a_rep_records_his_absence_through_the_api_and_a_stranger_gets_404(
    bob, alice, carol, dan, client_for, bobs_absence
):
    client = client_for(bob)
    r = _json(client, "POST", "/api/v1/absences", {"starts_at": _iso(20), "ends_at": _iso(10)})
    assert r.status_code == 422
    assert "after the start" in r.json()["error"]["fields"]["ends_at"][0]
    r = _json(
        client,
        "POST",
        "/api/v1/absences",
        {"starts_at": _iso(20), "ends_at": _iso(22), "status": "ended"},
    )
    assert r.status_code == 422  # no mass assignment
    r = _json(client, "POST", "/api/v1/absences", {"starts_at": _iso(20), "ends_at": _iso(22)})
    assert r.status_code == 201, r.content
    assert r.json()["status"] == "scheduled"
    assert {a["id"] for a in client.get("/api/v1/absences").json()} >= {bobs_absence.pk}
    url = f"/api/v1/absences/{bobs_absence.pk}"
    stranger = client_for(carol)
    assert stranger.get(url).status_code == 404
    assert _json(stranger, "PATCH", url, {"note": "Hacked"}).status_code == 404
    assert stranger.delete(url).status_code == 404
    assert _json(stranger, "POST", f"{url}/take-back", {}).status_code == 404
    assert bobs_absence.pk not in {a["id"] for a in stranger.get("/api/v1/absences").json()}
    assert client_for(dan).get(url).status_code == 404  # a rep of a sub-team: not his
    # The manager of Bob's team sees and may change it; the deputy (Alice here) sees it too.
    manager = client_for(alice)
    assert manager.get(url).status_code == 200
    r = _json(manager, "PATCH", url, {"note": "Sea and mountains"})
    assert r.status_code == 200
    assert r.json()["note"] == "Sea and mountains"
    bobs_absence.refresh_from_db()
    assert bobs_absence.note == "Sea and mountains"
    r = client.delete(url)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"


def test_take_back_through_the_api_all_or_per_item(sales, client_for):
    from rapport.activities.services import task_create
    from rapport.routing.services import absence_create, absences_due

    anna, vera = sales["anna"], sales["vera"]
    tasks = [task_create(actor=anna, data={"title": f"Task {i}"}) for i in range(3)]
    absence = absence_create(
        actor=anna, data={"kind": "unplanned", "ends_at": _iso(1), "deputy_id": vera.pk}
    )
    absences_due(now=timezone.now() + dt.timedelta(days=2))
    client = client_for(anna)
    detail = client.get(f"/api/v1/absences/{absence.pk}").json()
    assert [h["can_take_back"] for h in detail["handovers"]] == [True, True, True]
    first = detail["handovers"][0]["id"]
    r = _json(client, "POST", f"/api/v1/absences/{absence.pk}/take-back", {"handover_ids": [first]})
    assert r.status_code == 200
    assert [h["id"] for h in r.json()["taken"]] == [first]
    r = _json(client, "POST", f"/api/v1/absences/{absence.pk}/take-back", {})
    body = r.json()
    assert len(body["taken"]) == 2
    assert [h["why_not"] for h in body["kept"]] == ["already taken back"]
    assert {
        t.responsible_id for t in type(tasks[0]).objects.filter(pk__in=[t.pk for t in tasks])
    } == {anna.pk}
    r = _json(
        client, "POST", f"/api/v1/absences/{absence.pk}/take-back", {"handover_ids": [999999]}
    )
    assert r.status_code == 422
    assert "handover_ids" in r.json()["error"]["fields"]


def test_absence_pages_create_show_and_take_back(sales, carol, client_for):
    from rapport.activities.models import Task
    from rapport.activities.services import task_complete, task_create
    from rapport.routing.services import absences_due

    anna, vera = sales["anna"], sales["vera"]
    kept = task_create(actor=anna, data={"title": "Report"})
    closed = task_create(actor=anna, data={"title": "Invoice"})
    client = client_for(anna)
    assert client.get(reverse("absence-list")).status_code == 200
    bad = client.post(
        reverse("absence-list"),
        {"user_id": anna.pk, "kind": "planned", "starts_at": "", "ends_at": ""},
    )
    assert bad.status_code == 422
    assert "Give the start of the absence." in bad.content.decode()
    end = (timezone.localtime() + dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")
    form = {"user_id": anna.pk, "kind": "unplanned", "starts_at": "", "ends_at": end}
    form |= {"deputy_id": vera.pk, "hand_over_form": "1", "hand_over_tasks": "on"}
    r = client.post(reverse("absence-list"), {**form, "hand_over_leads": "on"})
    assert r.status_code == 302
    absence = Absence.objects.get(user=anna)
    assert (absence.status, absence.hand_over_deals) == ("active", False)
    detail = client.get(reverse("absence-detail", args=[absence.pk])).content.decode()
    assert "Report" in detail
    assert "Invoice" in detail
    task_complete(actor=vera, task=Task.objects.get(pk=closed.pk))
    absences_due(now=timezone.now() + dt.timedelta(hours=6))
    page = client.get(reverse("absence-take-back", args=[absence.pk])).content.decode()
    assert page.count('type="checkbox" name="handover"') == 1  # the closed one has no box
    assert "it is closed" in page
    nothing = client.post(reverse("absence-take-back", args=[absence.pk]), {})
    assert nothing.status_code == 422
    r = client.post(reverse("absence-take-back", args=[absence.pk]), {"all": "1"})
    assert r.status_code == 200
    assert "1 item taken back." in r.content.decode()
    assert Task.objects.get(pk=kept.pk).responsible == anna
    stranger = client_for(carol)
    for name, method in (("absence-detail", "get"), ("absence-take-back", "get"),
                         ("absence-take-back", "post"), ("absence-cancel", "post")):  # fmt: skip
        assert getattr(stranger, method)(reverse(name, args=[absence.pk])).status_code == 404
    assert "Report" not in stranger.get(reverse("absence-list")).content.decode()


def test_absence_lists_and_the_take_back_page_keep_a_query_budget(
    sales, admin_user, client_for, django_assert_max_num_queries
):
    from rapport.activities.services import task_create
    from rapport.routing.services import absence_create

    anna, vera = sales["anna"], sales["vera"]
    for i in range(15):
        task_create(actor=anna, data={"title": f"Task {i}"})
    absence = absence_create(
        actor=anna, data={"kind": "unplanned", "ends_at": _iso(1), "deputy_id": vera.pk}
    )
    for i in range(15):
        absence_create(
            actor=None,
            data={"user_id": vera.pk, "starts_at": _iso(10 + 2 * i), "ends_at": _iso(11 + 2 * i)},
        )
    client = client_for(admin_user)
    with django_assert_max_num_queries(12):
        assert len(client.get("/api/v1/absences").json()) == 16
    with django_assert_max_num_queries(15):
        assert client.get(reverse("absence-list")).status_code == 200
    with django_assert_max_num_queries(15):
        page = client.get(reverse("absence-take-back", args=[absence.pk]))
    assert page.content.decode().count('name="handover"') == 15
