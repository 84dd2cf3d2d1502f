"""The automations benchmark runs end to end at a small size: its rules save, its events
dispatch with and without rules, and the figures it reports add up."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings

if str(settings.PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(settings.PROJECT_DIR))

from bench.generate_automations import bench_rules, records_create, setup  # noqa: E402
from bench.scenarios_automations import throughput  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_benchmark_evaluates_its_rules_over_a_few_hundred_events() -> None:
    from rapport.automations.models import Rule, RuleRun
    from rapport.core.models import OutboxEvent

    org = setup(lambda _line: None, managers=4)
    records = records_create(org, each=15)
    assert all(len(ids) == 15 for ids in records.values())

    result = throughput(org, records, events=200, rules=40)

    assert result["baseline"]["events"] == 200
    with_rules = result["with_rules"]
    assert with_rules["source_events"] == 200
    assert with_rules["all_events"] >= 200  # the actions' own events come on top
    assert with_rules["rule_runs"] > 0
    assert with_rules["rule_runs_matched"] > 0
    assert Rule.objects.filter(name__startswith="Bench rule ", is_active=True).count() == 40
    assert not OutboxEvent.objects.exclude(status="done").exists()
    assert not RuleRun.objects.filter(outcome="failed").exists()


def test_the_generated_rules_cover_every_record_type_and_trigger_kind() -> None:
    from rapport.automations.models import Rule

    org = setup(lambda _line: None, managers=2)
    bench_rules(org, n=200)
    triggers = set(Rule.objects.values_list("trigger", flat=True))
    for ot in ("deal", "lead", "task", "interaction"):
        assert {f"{ot}.created", f"{ot}.updated", f"{ot}.field_changed"} <= triggers
    actions = [a["type"] for r in Rule.objects.all() for a in r.actions]
    assert {"create_task", "notify", "change_field", "email_employee"} <= set(actions)
    conditions = [c for r in Rule.objects.all() for c in r.conditions["items"]]
    assert any(c["field"].startswith("custom.") for c in conditions)
    assert all(1 <= len(r.conditions["items"]) <= 3 for r in Rule.objects.all())
