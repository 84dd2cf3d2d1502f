"""R2: another team's record is 404 on every route and absent from every list, search and total.

Every API operation and every page URL must be classified below; a new route that is not
fails ``test_every_route_is_classified``, so no route escapes the scope check.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# API operations: (method, path) -> kind
API_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/me"): "self",
    ("GET", "/api/v1/users"): "directory-of-users",
    ("GET", "/api/v1/users/{user_id}"): "directory-of-users",
    ("GET", "/api/v1/teams"): "directory-of-users",
    ("POST", "/api/v1/teams"): "admin-write",
    ("GET", "/api/v1/teams/{team_id}"): "directory-of-users",
    ("PUT", "/api/v1/teams/{team_id}"): "admin-write",
    ("GET", "/api/v1/tokens"): "self",
    ("POST", "/api/v1/tokens"): "self",
    ("DELETE", "/api/v1/tokens/{token_id}"): "own-token",
    ("GET", "/api/v1/custom-fields"): "definitions",
    ("POST", "/api/v1/custom-fields"): "admin-write",
    ("PATCH", "/api/v1/custom-fields/{field_id}"): "admin-write",
    ("DELETE", "/api/v1/custom-fields/{field_id}"): "admin-write",
    ("GET", "/api/v1/search"): "list",
    ("GET", "/api/v1/history/{object_type}/{object_id}"): "record",
    ("GET", "/api/v1/companies"): "list",
    ("GET", "/api/v1/companies/export"): "export",
    ("POST", "/api/v1/companies"): "create",
    ("GET", "/api/v1/companies/{company_id}"): "record",
    ("PATCH", "/api/v1/companies/{company_id}"): "record",
    ("DELETE", "/api/v1/companies/{company_id}"): "record",
    ("POST", "/api/v1/companies/{company_id}/restore"): "record",
    ("GET", "/api/v1/companies/{company_id}/relations"): "record",
    ("GET", "/api/v1/people"): "list",
    ("GET", "/api/v1/people/export"): "export",
    ("POST", "/api/v1/people"): "create",
    ("GET", "/api/v1/people/{person_id}"): "record",
    ("PATCH", "/api/v1/people/{person_id}"): "record",
    ("DELETE", "/api/v1/people/{person_id}"): "record",
    ("POST", "/api/v1/people/{person_id}/restore"): "record",
    ("GET", "/api/v1/people/{person_id}/relations"): "record",
    ("GET", "/api/v1/contact-points"): "list",
    ("POST", "/api/v1/contact-points"): "record-fk",
    ("POST", "/api/v1/company-relations"): "record-fk",
    ("DELETE", "/api/v1/company-relations/{relation_id}"): "record",
    ("POST", "/api/v1/person-relations"): "record-fk",
    ("DELETE", "/api/v1/person-relations/{relation_id}"): "record",
    ("POST", "/api/v1/duplicates/check"): "guard",
    # sales: leads and deals are records; pipelines, stages and loss reasons are configuration
    ("GET", "/api/v1/leads"): "list",
    ("GET", "/api/v1/leads/export"): "export",
    ("POST", "/api/v1/leads"): "create",
    ("GET", "/api/v1/leads/{lead_id}"): "record",
    ("PATCH", "/api/v1/leads/{lead_id}"): "record",
    ("DELETE", "/api/v1/leads/{lead_id}"): "record",
    ("GET", "/api/v1/leads/{lead_id}/matches"): "record",
    ("POST", "/api/v1/leads/{lead_id}/convert"): "record",
    ("POST", "/api/v1/leads/{lead_id}/reject"): "record",
    ("GET", "/api/v1/pipelines"): "definitions",
    ("POST", "/api/v1/pipelines"): "admin-write",
    ("GET", "/api/v1/pipelines/{pipeline_id}"): "definitions",
    ("PATCH", "/api/v1/pipelines/{pipeline_id}"): "admin-write",
    ("POST", "/api/v1/pipelines/{pipeline_id}/stages"): "admin-write",
    ("PUT", "/api/v1/pipelines/{pipeline_id}/stage-order"): "admin-write",
    ("PATCH", "/api/v1/stages/{stage_id}"): "admin-write",
    ("DELETE", "/api/v1/stages/{stage_id}"): "admin-write",
    ("GET", "/api/v1/loss-reasons"): "definitions",
    ("POST", "/api/v1/loss-reasons"): "admin-write",
    ("GET", "/api/v1/deals"): "list",
    ("GET", "/api/v1/deals/export"): "export",
    ("POST", "/api/v1/deals"): "create",
    ("GET", "/api/v1/deals/{deal_id}"): "record",
    ("PATCH", "/api/v1/deals/{deal_id}"): "record",
    ("DELETE", "/api/v1/deals/{deal_id}"): "record",
    ("POST", "/api/v1/deals/{deal_id}/restore"): "record",
    ("POST", "/api/v1/deals/{deal_id}/move"): "record",
    ("POST", "/api/v1/deals/{deal_id}/win"): "record",
    ("POST", "/api/v1/deals/{deal_id}/lose"): "record",
    ("POST", "/api/v1/deals/{deal_id}/reopen"): "record",
    ("GET", "/api/v1/deals/{deal_id}/history"): "record",
    ("GET", "/api/v1/pipelines/{pipeline_id}/board"): "list",
    ("GET", "/api/v1/stages/{stage_id}/deals"): "list",
    ("GET", "/api/v1/funnel"): "list",
    ("GET", "/api/v1/interactions"): "list",
    ("POST", "/api/v1/interactions"): "create",
    ("GET", "/api/v1/interactions/{interaction_id}"): "record",
    ("PATCH", "/api/v1/interactions/{interaction_id}"): "record",
    ("GET", "/api/v1/threads/{thread_id}"): "record",
    ("GET", "/api/v1/tasks"): "list",
    ("POST", "/api/v1/tasks"): "create",
    ("GET", "/api/v1/tasks/{task_id}"): "record",
    ("PATCH", "/api/v1/tasks/{task_id}"): "record",
    ("GET", "/api/v1/tasks/{task_id}/subtasks"): "record",
    ("GET", "/api/v1/calendar"): "list",
    ("GET", "/api/v1/notifications"): "self",
    ("POST", "/api/v1/notifications/read"): "self",
    ("GET", "/api/v1/timeline/{object_type}/{object_id}"): "record",
    ("POST", "/api/v1/calendar/feeds"): "self",
    ("DELETE", "/api/v1/calendar/feeds/{feed_id}"): "own-token",
    # An import is seen by whoever started it (and administrators); the records it writes
    # go through the directory services, which check the create permission and scope.
    ("POST", "/api/v1/imports"): "create",
    ("GET", "/api/v1/imports"): "own-run",
    ("GET", "/api/v1/imports/{run_id}"): "own-run",
    ("PATCH", "/api/v1/imports/{run_id}"): "own-run",
    ("POST", "/api/v1/imports/{run_id}/preview"): "own-run",
    ("POST", "/api/v1/imports/{run_id}/start"): "own-run",
    ("GET", "/api/v1/imports/{run_id}/report"): "own-run",
    ("POST", "/api/v1/imports/{run_id}/undo"): "own-run",
    # Routing table: the head of sales' (tests/routing/test_pages_and_api.py). Absences: own,
    # the team's for managers, all for admins; another team's answers 404 (same file).
    ("GET", "/api/v1/routing-rules"): "head-of-sales",
    ("POST", "/api/v1/routing-rules"): "head-of-sales",
    ("PUT", "/api/v1/routing-rules/order"): "head-of-sales",
    ("GET", "/api/v1/routing-rules/{rule_id}"): "head-of-sales",
    ("PATCH", "/api/v1/routing-rules/{rule_id}"): "head-of-sales",
    ("DELETE", "/api/v1/routing-rules/{rule_id}"): "head-of-sales",
    ("GET", "/api/v1/absences"): "absence",
    ("POST", "/api/v1/absences"): "absence",
    ("GET", "/api/v1/absences/{absence_id}"): "absence",
    ("PATCH", "/api/v1/absences/{absence_id}"): "absence",
    ("DELETE", "/api/v1/absences/{absence_id}"): "absence",
    ("POST", "/api/v1/absences/{absence_id}/take-back"): "absence",
    # Duplicates: a cluster, pair or merge shows only records the caller may see; a pair or
    # merge with another team's record is 404 (tests/dedupe/test_api.py); scans: admins.
    ("GET", "/api/v1/duplicates/clusters"): "list",
    ("GET", "/api/v1/duplicates/{target}/pairs/{a_id}/{b_id}"): "duplicate-pair",
    ("POST", "/api/v1/duplicates/{target}/pairs/{a_id}/{b_id}/dismiss"): "duplicate-pair",
    ("POST", "/api/v1/duplicates/scans"): "admin-write",
    ("GET", "/api/v1/duplicates/scans/{scan_id}"): "admin-write",
    ("GET", "/api/v1/duplicates/merges"): "list",
    ("POST", "/api/v1/duplicates/merges"): "duplicate-pair",
    ("POST", "/api/v1/duplicates/merges/{merge_id}/undo"): "duplicate-merge",
    # Automation rules and their log: administrators only (tests/automations/test_pages_api.py).
    ("GET", "/api/v1/automation/catalog"): "admin-write",
    ("GET", "/api/v1/automation/rules"): "admin-write",
    ("POST", "/api/v1/automation/rules"): "admin-write",
    ("GET", "/api/v1/automation/rules/{rule_id}"): "admin-write",
    ("PATCH", "/api/v1/automation/rules/{rule_id}"): "admin-write",
    ("DELETE", "/api/v1/automation/rules/{rule_id}"): "admin-write",
    ("POST", "/api/v1/automation/rules/{rule_id}/test"): "admin-write",
    ("GET", "/api/v1/automation/runs"): "admin-write",
    # Outgoing messages and message templates: administrators only (tests/messaging).
    ("GET", "/api/v1/messages"): "admin-write",
    ("GET", "/api/v1/messages/{message_id}"): "admin-write",
    ("POST", "/api/v1/messages/{message_id}/retry"): "admin-write",
    ("POST", "/api/v1/messages/{message_id}/cancel"): "admin-write",
    ("GET", "/api/v1/message-templates"): "admin-write",
    ("POST", "/api/v1/message-templates"): "admin-write",
    ("GET", "/api/v1/message-templates/{template_id}"): "admin-write",
    ("PATCH", "/api/v1/message-templates/{template_id}"): "admin-write",
    ("DELETE", "/api/v1/message-templates/{template_id}"): "admin-write",
    ("POST", "/api/v1/message-templates/{template_id}/preview"): "admin-write",
}

# Page URL names -> kind
PAGE_ROUTES: dict[str, str] = {
    "home": "list",
    "search": "list",
    "login": "public",
    "health-live": "public",
    "health-ready": "public",
    "logout": "self",
    "profile": "self",
    "token-revoke": "own-token",
    "company-list": "list",
    "company-export": "export",
    "company-create": "create",
    "company-detail": "record",
    "company-edit": "record",
    "person-list": "list",
    "person-export": "export",
    "person-create": "create",
    "person-detail": "record",
    "person-edit": "record",
    "party-delete": "record",
    "party-restore": "record",
    "relation-add": "record",
    "picker": "list",
    "users": "admin",
    "user-edit": "admin",
    "teams": "admin",
    "roles": "admin",
    "role-edit": "admin",
    "custom-fields": "admin",
    "custom-field-delete": "admin",
    "recycle-bin": "admin",
    "attachment-add": "record",
    "attachment-download": "record",
    "attachment-remove": "record",
    "lead-list": "list",
    "lead-export": "export",
    "lead-create": "create",
    "lead-detail": "record",
    "lead-edit": "record",
    "lead-convert": "record",
    "lead-reject": "record",
    "deal-list": "list",
    "deal-export": "export",
    "deal-create": "create",
    "deal-detail": "record",
    "deal-edit": "record",
    "deal-move": "record",
    "deal-win": "record",
    "deal-lose": "record",
    "deal-reopen": "record",
    "deal-delete": "record",
    "deal-restore": "record",
    "board": "list",
    "pipeline-board": "list",
    "board-column": "list",
    "funnel": "list",
    "funnel-export": "export",
    "pipelines": "admin",
    "pipeline-edit": "admin",
    "rule-list": "admin",
    "rule-create": "admin",
    "rule-edit": "admin",
    "rule-toggle": "admin",
    "rule-delete": "admin",
    "rule-test": "admin",
    "rules-reorder": "admin",
    "rule-runs": "admin",
    "loss-reasons": "admin",
    "caldav-connect": "self",
    "caldav-disconnect": "self",
    "caldav-sync": "self",
    "interaction-list": "list",
    "interaction-export": "export",
    "task-list": "list",
    "task-export": "export",
    "task-create": "create",
    "task-detail": "record",
    "task-edit": "record",
    "task-status": "record",
    "notifications": "self",
    "notifications-read": "self",
    "timeline": "record",
    "timeline-log": "record",
    "timeline-task": "record",
    "calendar": "list",
    "calendar-move": "record",
    "calendar-plan": "create",
    "calendar-feed-create": "self",
    "calendar-feed-revoke": "own-token",
    "calendar-feed": "public",
    "routing-rules": "head-of-sales",
    "routing-rule-edit": "head-of-sales",
    "routing-rule-move": "head-of-sales",
    "routing-rule-delete": "head-of-sales",
    "absence-list": "absence",
    "absence-detail": "absence",
    "absence-cancel": "absence",
    "absence-take-back": "absence",
    "import-list": "own-run",
    "import-detail": "own-run",
    "import-progress": "own-run",
    "import-report": "own-run",
    "import-undo": "own-run",
    "duplicate-list": "list",
    "duplicate-scan": "admin",
    "duplicate-merge": "record",
    "duplicate-dismiss": "record",
    "merge-undo": "record",
    "messaging-settings": "admin",
    "messaging-test-email": "admin",
    "message-list": "admin",
    "message-retry": "admin",
    "message-template-list": "admin",
    "message-template-create": "admin",
    "message-template-preview": "admin",
    "message-template-edit": "admin",
    "message-template-delete": "admin",
}


def _page_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[Any]) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace in ("api",) or "api" in str(p.pattern):
                    continue
                walk(p.url_patterns)
            elif isinstance(p, URLPattern) and p.name:
                names.add(p.name)

    walk(get_resolver().url_patterns)
    return names


def _api_operations() -> set[tuple[str, str]]:
    from rapport.api import api

    schema = api.get_openapi_schema(path_prefix="/api/v1")
    return {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}


def test_every_route_is_classified():
    assert _api_operations() - set(API_ROUTES) == set(), "classify the new API operation"
    assert _page_names() - set(PAGE_ROUTES) == set(), "classify the new page"


@pytest.fixture
def world(alice, bob, carol, dan, make_company, make_person, pipelines, make_deal, make_lead):
    """Alice's (team A) records, and Carol's (team B)."""
    from rapport.parties.services import company_relation_create, person_relation_create

    a_company = make_company(
        alice,
        "Alpha Trading",
        tax_id="7707083893",
        tax_country="RU",
        phones=[{"raw": "+7 495 111-22-33"}],
    )
    a_other = make_company(alice, "Alpha Partner")
    a_person = make_person(
        alice,
        "Ivan",
        "Alphov",
        phones=[{"raw": "+7 912 111 22 33"}],
        emails=[{"raw": "ivan@alpha.test"}],
        employments=[{"company_id": a_company.pk}],
    )
    a_person2 = make_person(alice, "Olga", "Alphova")
    c_company = make_company(carol, "Carol Cargo")
    crel = company_relation_create(
        actor=alice, from_company=a_company, to_company=a_other, kind="partner"
    )
    prel = person_relation_create(
        actor=alice, from_person=a_person, to_person=a_person2, kind="knows"
    )
    deal = make_deal(
        alice, "Alpha rollout", pipeline=pipelines["free"], company_id=a_company.pk, amount="900"
    )
    lead = make_lead(alice, "Alpha Lead", phone="+7 912 555 66 77", company_name="Alpha Group")
    from rapport.activities.services import interaction_log, task_create

    interaction = interaction_log(
        actor=alice, data={"kind": "note", "subject": "Alpha secret", "company_id": a_company.pk}
    )
    task = task_create(actor=alice, data={"title": "Alpha task", "company_id": a_company.pk})
    return {
        "interaction": interaction,
        "task": task,
        "company": a_company,
        "other": a_other,
        "person": a_person,
        "person2": a_person2,
        "carol_company": c_company,
        "company_relation": crel,
        "person_relation": prel,
        "deal": deal,
        "lead": lead,
        "pipeline": pipelines["free"],
        "stage": pipelines["free_stages"][1],
        "loss_reason": pipelines["price"],
    }


def _api_url(path: str, w: dict[str, Any]) -> str:
    return (
        path.replace("{company_id}", str(w["company"].pk))
        .replace("{person_id}", str(w["person"].pk))
        .replace("{object_type}/{object_id}", f"company/{w['company'].pk}")
        .replace(
            "{relation_id}",
            str(w["company_relation"].pk if "company-rel" in path else w["person_relation"].pk),
        )
        .replace("{deal_id}", str(w["deal"].pk))
        .replace("{lead_id}", str(w["lead"].pk))
        .replace("{pipeline_id}", str(w["pipeline"].pk))
        .replace("{stage_id}", str(w["stage"].pk))
        .replace("{interaction_id}", str(w["interaction"].pk))
        .replace("{thread_id}", str(w["interaction"].thread_id))
        .replace("{task_id}", str(w["task"].pk))
    )


def _api_body(method: str, path: str, w: dict[str, Any]) -> dict[str, Any] | None:
    """A body that passes the schema, so the answer shows the scope check, not validation."""
    if method == "PATCH":
        if "/deals/" in path:
            return {"title": "Hacked"}
        if "/leads/" in path:
            return {"name": "Hacked"}
        if "/tasks/" in path:
            return {"title": "Hacked"}
        if "/interactions/" in path:
            return {"subject": "Hacked"}
        return {"city": "Hacked"}
    if path.endswith("/move"):
        return {"stage_id": w["stage"].pk}
    if path.endswith("/lose"):
        return {"loss_reason_id": w["loss_reason"].pk}
    if path.endswith("/reject"):
        return {"reason": "Hacked"}
    if path.endswith("/win"):
        return {"amount": "1"}
    return None


def _json(client: Any, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    if method == "GET":
        return client.get(url)
    return getattr(client, method.lower())(
        url, data=json.dumps(body or {}), content_type="application/json"
    )


def test_another_teams_records_answer_404_on_every_api_record_route(world, carol, client_for):
    client = client_for(carol)
    record_routes = [(m, p) for (m, p), kind in API_ROUTES.items() if kind == "record"]
    assert record_routes
    for method, path in record_routes:
        body = _api_body(method, path, world)
        response = _json(client, method, _api_url(path, world), body)
        assert response.status_code == 404, (method, path, response.status_code)
    world["company"].refresh_from_db()
    assert world["company"].city == ""
    assert world["company"].deleted_at is None
    deal, lead = world["deal"], world["lead"]
    deal.refresh_from_db()
    lead.refresh_from_db()
    assert (deal.title, deal.version, deal.status, deal.deleted_at) == (
        "Alpha rollout",
        1,
        "open",
        None,
    )
    assert (lead.name, lead.version, lead.status, lead.deleted_at) == ("Alpha Lead", 1, "new", None)


def test_foreign_keys_in_payloads_are_scoped_too(world, carol, client_for):
    client = client_for(carol)
    attempts = [
        (
            "/api/v1/contact-points",
            {"company_id": world["company"].pk, "channel": "phone", "raw": "+7 999 000 11 22"},
        ),
        (
            "/api/v1/company-relations",
            {
                "from_company_id": world["carol_company"].pk,
                "to_company_id": world["company"].pk,
                "kind": "partner",
            },
        ),
        (
            "/api/v1/person-relations",
            {
                "from_person_id": world["person"].pk,
                "to_person_id": world["person2"].pk,
                "kind": "knows",
            },
        ),
        (
            "/api/v1/people",
            {"last_name": "Spy", "employments": [{"company_id": world["company"].pk}]},
        ),
    ]
    for url, body in attempts:
        response = _json(client, "POST", url, body)
        assert response.status_code in (404, 422), (url, response.status_code)


def test_another_teams_records_are_absent_from_lists_search_and_totals(world, carol, client_for):
    client = client_for(carol)
    companies = client.get("/api/v1/companies").json()["items"]
    assert [c["short_name"] for c in companies] == ["Carol Cargo"]
    assert client.get("/api/v1/people").json()["items"] == []
    for q in ("Alpha", "Alphov", "+7 912 111 22 33", "ivan@alpha.test", "7707083893"):
        assert client.get("/api/v1/search", {"q": q}).json() == [], q
    assert client.get("/api/v1/contact-points").json() == []
    assert client.get("/api/v1/deals").json()["items"] == []
    assert client.get("/api/v1/deals", {"q": "Alpha"}).json()["items"] == []
    assert client.get("/api/v1/leads", {"q": "Alpha"}).json()["items"] == []
    board = client.get(f"/api/v1/pipelines/{world['pipeline'].pk}/board").json()
    assert [(c["count"], c["total"]) for c in board["columns"]] == [(0, "0.00")] * 3
    funnel = client.get("/api/v1/funnel", {"pipeline_id": world["pipeline"].pk}).json()
    assert (funnel["created"], funnel["by_manager"]) == (0, [])
    page = client.get("/companies/").content.decode()
    assert "Alpha Trading" not in page
    assert "Carol Cargo" in page
    found_page = client.get("/search/", {"q": "Alpha"}).content.decode()
    assert "Alpha Trading" not in found_page
    assert "Alphov" not in found_page
    home = client.get("/").content.decode()
    assert "Alpha" not in home


def test_another_teams_records_answer_404_on_every_page(world, carol, client_for):
    from django.urls import reverse

    client = client_for(carol)
    c, p = world["company"], world["person"]
    urls = [
        ("get", reverse("company-detail", args=[c.pk])),
        ("get", reverse("company-edit", args=[c.pk])),
        ("post", reverse("company-edit", args=[c.pk])),
        ("get", reverse("person-detail", args=[p.pk])),
        ("get", reverse("person-edit", args=[p.pk])),
        ("post", reverse("party-delete", args=["company", c.pk])),
        ("post", reverse("party-restore", args=["person", p.pk])),
        ("post", reverse("relation-add", args=["company", c.pk])),
        ("get", reverse("task-detail", args=[world["task"].pk])),
        ("get", reverse("task-edit", args=[world["task"].pk])),
        ("post", reverse("task-status", args=[world["task"].pk])),
        ("get", reverse("timeline", args=["company", c.pk])),
        ("post", reverse("timeline-log", args=["company", c.pk])),
        ("post", reverse("timeline-task", args=["company", c.pk])),
        ("post", reverse("attachment-add", args=["company", c.pk])),
    ]
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 404, url
    assert (
        "Alpha"
        not in client.get(reverse("picker", args=["company"]), {"q": "Alpha"}).content.decode()
    )


def test_team_scope_includes_sub_teams_and_own_scope_only_own(
    world, alice, bob, dan, make_company, client_for
):
    dans = make_company(dan, "Dan Sub-team Co")
    alice_sees = {
        c["short_name"] for c in client_for(alice).get("/api/v1/companies").json()["items"]
    }
    assert {"Alpha Trading", "Dan Sub-team Co"} <= alice_sees
    assert "Carol Cargo" not in alice_sees
    bob_sees = {c["short_name"] for c in client_for(bob).get("/api/v1/companies").json()["items"]}
    assert bob_sees == set()
    assert client_for(bob).get(f"/api/v1/companies/{dans.pk}").status_code == 404


def test_admin_pages_are_404_for_everyone_but_administrators(world, alice, admin_user, client_for):
    from django.urls import reverse

    for name, kind in PAGE_ROUTES.items():
        if kind != "admin":
            continue
        with_id = ("user-edit", "role-edit", "custom-field-delete")
        with_id += ("rule-edit", "rule-toggle", "rule-delete", "rule-test")
        with_id += ("message-retry", "message-template-edit", "message-template-delete")
        args = [1] if name in with_id else []
        if name == "pipeline-edit":
            args = [world["pipeline"].pk]
        url = reverse(name, args=args)
        # loss-reasons takes POST only: a GET would be 405 before the admin check
        post_only = ("loss-reasons", "duplicate-scan", "rule-toggle", "rules-reorder")
        post_only += ("messaging-test-email", "message-retry", "message-template-preview")
        method = "post" if name.endswith("delete") or name in post_only else "get"
        assert getattr(client_for(alice), method)(url).status_code == 404, name
    assert client_for(admin_user).get(reverse("users")).status_code == 200


def test_admin_api_writes_are_refused_for_non_admins(alice, client_for):
    client = client_for(alice)
    r = _json(
        client,
        "POST",
        "/api/v1/custom-fields",
        {"object_type": "company", "name": "x", "label": "X", "type": "text"},
    )
    assert r.status_code == 403
    assert _json(client, "POST", "/api/v1/teams", {"name": "Rogue"}).status_code == 403
    assert _json(client, "POST", "/api/v1/pipelines", {"name": "Rogue"}).status_code == 403
    assert _json(client, "POST", "/api/v1/loss-reasons", {"name": "Rogue"}).status_code == 403


def test_unauthenticated_requests_are_refused(db, client):
    assert client.get("/api/v1/companies").status_code == 401
    assert client.get("/api/v1/deals").status_code == 401
    assert client.get("/api/v1/leads").status_code == 401
    assert client.get("/companies/").status_code == 302


def _download_text(response: Any) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode("utf-8-sig")


def _export_urls(world: dict[str, Any]) -> list[str]:
    """Every export, page and API, as CSV (the funnel for the pipeline of Alice's deal)."""
    from django.urls import reverse

    urls = [path for (m, path), kind in API_ROUTES.items() if kind == "export"]
    for name, kind in PAGE_ROUTES.items():
        if kind == "export":
            urls.append(reverse(name))
    return [f"{u}?format=csv&pipeline={world['pipeline'].pk}&view=team&status=" for u in urls]


def test_another_teams_records_are_absent_from_every_export(world, alice, carol, client_for):
    urls = _export_urls(world)
    assert len(urls) >= 11
    for url in urls:
        response = client_for(carol).get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert "Alpha" not in _download_text(response), url
        if "funnel" not in url:
            assert "Alpha" in _download_text(client_for(alice).get(url)), url


def test_every_export_is_404_without_the_export_permission(world, alice, org, client_for):
    from rapport.accounts.services import role_save

    grid = {obj: dict(actions) for obj, actions in org["manager"].permissions.items()}
    for actions in grid.values():
        actions.pop("export", None)
    role_save(actor=None, role=org["manager"], name="Manager", permissions=grid)
    client = client_for(alice)
    for url in _export_urls(world):
        assert client.get(url).status_code == 404, url


def test_an_import_is_404_for_everyone_but_its_author_and_administrators(
    alice, bob, admin_user, client_for, tmp_path
):
    from django.urls import reverse

    from rapport.imports import services

    path = tmp_path / "clients.csv"
    path.write_text("ФИО;Телефон\nИванов Иван;+79120001122\n", encoding="utf-8")
    run = services.run_create(actor=alice, source=path, file_name=path.name, target="people")
    other = client_for(bob)
    for method, api_path in [k for k, kind in API_ROUTES.items() if kind == "own-run"]:
        if "{run_id}" not in api_path:
            continue
        url = api_path.replace("{run_id}", str(run.pk))
        response = _json(other, method, url, {} if method != "GET" else None)
        assert response.status_code == 404, (method, api_path, response.status_code)
    assert all(r["id"] != run.pk for r in other.get("/api/v1/imports").json())
    for name in ("import-detail", "import-progress"):
        assert other.get(reverse(name, args=[run.pk])).status_code == 404
    assert other.get(reverse("import-report", args=[run.pk, "json"])).status_code == 404
    assert other.post(reverse("import-undo", args=[run.pk])).status_code == 404
    assert str(run.file_name) not in other.get(reverse("import-list")).content.decode()
    assert client_for(alice).get(reverse("import-detail", args=[run.pk])).status_code == 200
    assert client_for(admin_user).get(reverse("import-detail", args=[run.pk])).status_code == 200


def test_duplicates_of_another_team_cannot_be_compared_merged_or_dismissed(
    world, alice, carol, client_for
):
    from django.urls import reverse

    from rapport.dedupe.services import merge
    from rapport.parties.services import person_create

    twin = person_create(
        actor=alice, data={"first_name": "Alpha", "last_name": "Person"}, force=True
    )
    p = world["person"]
    client = client_for(carol)
    for name, method in (("duplicate-merge", "get"), ("duplicate-merge", "post"),
                         ("duplicate-dismiss", "post")):  # fmt: skip
        url = reverse(name, args=["person", p.pk, twin.pk])
        assert getattr(client, method)(url).status_code == 404, name
    record = merge(actor=alice, object_type="person", survivor_id=p.pk, merged_id=twin.pk)
    assert client.post(reverse("merge-undo", args=[record.pk])).status_code == 404
    assert "Alpha" not in client.get(reverse("duplicate-list")).content.decode()
