"""The rules pages and API: administrators build, test and read the log; others get 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from rapport.activities.models import Notification
from rapport.automations.models import Rule, RuleRun


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _builder_post(head, **extra):
    data = {
        "name": "Big deals",
        "trigger": "deal.created",
        "order": "10",
        "is_active": "1",
        "match": "all",
        "cond_count": "1",
        "cond_0_field": "amount",
        "cond_0_op": "gt",
        "cond_0_value": "100000",
        "act_count": "2",
        "act_0_type": "assign",
        "act_0_mode": "user",
        "act_0_user_id": str(head.pk),
        "act_1_type": "notify",
        "act_1_who": "user",
        "act_1_user_id": str(head.pk),
        "act_1_title": "Big deal {{ record.title }}",
        "command": "save",
    }
    data.update(extra)
    return data


def test_an_admin_builds_a_rule_as_a_sentence_and_sees_it_in_the_list(admin_client, head_of_sales):
    response = admin_client.post(reverse("rule-create"), _builder_post(head_of_sales))
    assert response.status_code == 302
    rule = Rule.objects.get(name="Big deals")
    assert rule.conditions["items"] == [{"field": "amount", "op": "gt", "value": "100000"}]
    assert rule.actions[0] == {
        "type": "assign",
        "params": {"mode": "user", "user_id": head_of_sales.pk},
    }
    page = admin_client.get(reverse("rule-list")).content.decode()
    assert "Big deals" in page
    assert "100000" in page


def test_the_builder_keeps_what_was_typed_and_names_the_problem(admin_client, head_of_sales):
    response = admin_client.post(
        reverse("rule-create"), _builder_post(head_of_sales, cond_0_value="lots", name="")
    )
    assert response.status_code == 422
    page = response.content.decode()
    assert "“lots”" in page
    assert 'value="lots"' in page
    assert "This field is required." in page
    assert not Rule.objects.exists()


def test_an_admin_builds_a_daily_rule_for_each_big_deal(admin_client, head_of_sales):
    choosing = admin_client.post(
        reverse("rule-create"),
        _builder_post(head_of_sales, trigger="schedule", tc_every="day", command="refresh"),
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert 'name="tc_object_type"' in choosing
    response = admin_client.post(
        reverse("rule-create"),
        _builder_post(
            head_of_sales, trigger="schedule", tc_every="day", tc_at="09:00", tc_object_type="deal"
        ),
    )
    assert response.status_code == 302
    rule = Rule.objects.get(name="Big deals")
    assert rule.trigger_config == {"every": "day", "at": "09:00", "object_type": "deal"}
    assert rule.object_type == "deal"
    page = admin_client.get(reverse("rule-list")).content.decode()
    assert "every day at 09:00, for each deal" in page


def test_adding_a_condition_row_re_renders_the_builder(admin_client, head_of_sales):
    response = admin_client.post(
        reverse("rule-create"),
        _builder_post(head_of_sales, command="add_condition"),
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="cond_1_field"' in page
    assert 'id="builder"' in page
    assert not Rule.objects.exists()


def test_the_test_page_shows_what_would_happen(admin_client, head_of_sales, alice, make_deal):
    admin_client.post(reverse("rule-create"), _builder_post(head_of_sales))
    rule = Rule.objects.get()
    deal = make_deal(alice, "Acme", amount="500000")
    response = admin_client.post(reverse("rule-test", args=[rule.pk]), {"object_id": deal.pk})
    page = response.content.decode()
    assert "The conditions hold" in page
    assert "Big deal Acme" in page
    assert not Notification.objects.filter(kind="automation").exists()


def test_the_log_lists_runs_with_conditions_and_actions(
    admin_client, head_of_sales, alice, make_deal, dispatch
):
    admin_client.post(reverse("rule-create"), _builder_post(head_of_sales))
    make_deal(alice, "Acme", amount="500000")
    make_deal(alice, "Tiny", amount="5")
    dispatch()
    page = admin_client.get(reverse("rule-runs")).content.decode()
    assert "Acme" in page
    assert "Tiny" in page
    only_failed = admin_client.get(reverse("rule-runs") + "?outcome=no_match").content.decode()
    assert "Tiny" in only_failed
    assert "Acme" not in only_failed


def test_rules_an_event_did_not_meet_share_one_log_line_that_each_rule_reads_as_its_own(
    admin_client, admin_user, alice, make_deal, dispatch
):
    from rapport.automations.services import rule_save

    rules = [
        rule_save(
            actor=admin_user,
            data={
                "name": f"Over {limit}",
                "trigger": "deal.created",
                "conditions": {"items": [{"field": "amount", "op": "gt", "value": limit}]},
                "actions": [{"type": "create_task", "params": {"title": "Call"}}],
            },
        )
        for limit in (1000, 2000)
    ]
    deal = make_deal(alice, "Tiny", amount="5")
    dispatch()
    assert RuleRun.objects.count() == 1  # one line for the event, not one per rule
    page = admin_client.get(reverse("rule-runs")).content.decode()
    assert "2 rules" in page
    assert "Over 1000" in page
    assert "Over 2000" in page
    for rule in rules:
        mine = admin_client.get(reverse("rule-runs") + f"?rule={rule.pk}").content.decode()
        assert rule.name in mine
        assert "Tiny" in mine
        api = admin_client.get(f"/api/v1/automation/runs?rule={rule.pk}").json()
        assert [(r["rule_id"], r["rule_ids"], r["object_id"], r["outcome"]) for r in api] == [
            (rule.pk, [rule.pk], deal.pk, "no_match")
        ]
        limit = rule.conditions["items"][0]["value"]
        assert api[0]["conditions_result"] == [
            {"field": "amount", "op": "gt", "value": limit, "actual": "5.00", "ok": False}
        ]
    (whole,) = admin_client.get("/api/v1/automation/runs").json()
    assert whole["rule_id"] is None
    assert whole["rule_ids"] == [r.pk for r in rules]
    assert [part["rule"] for part in whole["conditions_result"]] == [r.pk for r in rules]


def test_people_who_are_not_administrators_do_not_see_rules(client, alice):
    client.force_login(alice)
    assert client.get(reverse("rule-list")).status_code == 404
    assert client.get("/api/v1/automation/rules").status_code == 404


def test_the_api_creates_tests_and_switches_off_a_rule(
    admin_client, head_of_sales, alice, make_deal, dispatch
):
    body = {
        "name": "Big deals",
        "trigger": "deal.created",
        "conditions": {"items": [{"field": "amount", "op": "gt", "value": 100000}]},
        "actions": [{"type": "assign", "params": {"mode": "user", "user_id": head_of_sales.pk}}],
    }
    created = admin_client.post("/api/v1/automation/rules", body, content_type="application/json")
    assert created.status_code == 201
    rule = created.json()
    assert rule["sentence"]["then"] == ["assign the responsible manager"]
    deal = make_deal(alice, "Acme", amount="200000")
    tested = admin_client.post(
        f"/api/v1/automation/rules/{rule['id']}/test",
        {"object_id": deal.pk},
        content_type="application/json",
    )
    assert tested.json()["passed"] is True
    bad = admin_client.post(
        "/api/v1/automation/rules",
        {**body, "conditions": {"items": [{"field": "title", "op": "lt", "value": 3}]}},
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert "conditions.1.op" in bad.json()["error"]["fields"]
    stale = admin_client.patch(
        f"/api/v1/automation/rules/{rule['id']}",
        {"name": "Renamed", "version": 99},
        content_type="application/json",
    )
    assert stale.status_code == 412
    off = admin_client.patch(
        f"/api/v1/automation/rules/{rule['id']}",
        {"is_active": False},
        content_type="application/json",
    )
    assert off.json()["is_active"] is False
    dispatch()
    assert RuleRun.objects.count() == 0
    catalog = admin_client.get("/api/v1/automation/catalog").json()
    assert len(catalog["actions"]) >= 14
    assert any(f["path"] == "company.industry" for f in catalog["fields"]["deal"])
    runs = admin_client.get("/api/v1/automation/runs")
    assert runs.status_code == 200


def test_moving_a_rule_up_swaps_it_with_the_one_above(admin_client, head_of_sales):
    for name in ("First", "Second", "Third"):
        admin_client.post(reverse("rule-create"), _builder_post(head_of_sales, name=name))
    third = Rule.objects.get(name="Third")
    admin_client.post(reverse("rules-reorder"), {"up": third.pk})
    assert list(Rule.objects.order_by("order", "id").values_list("name", flat=True)) == [
        "First",
        "Third",
        "Second",
    ]
