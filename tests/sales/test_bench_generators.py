"""The bench generators of deals and activities write data the services could have written."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

if str(settings.PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(settings.PROJECT_DIR))

from bench.generate import generate, setup_org  # noqa: E402
from bench.generate_activities import generate_activities  # noqa: E402
from bench.generate_sales import BIG_PIPELINE, generate_sales  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bench_data() -> dict[str, Any]:
    lines: list[str] = []
    org = setup_org(lines.append, managers=6)
    generate(people=300, companies=80, org=org, out=lines.append)
    sales = generate_sales(deals=400, org=org, out=lines.append)
    acts = generate_activities(interactions=600, tasks=400, org=org, out=lines.append)
    return {"org": org, "sales": sales, "activities": acts}


def test_every_generated_deal_sits_where_its_history_ends(bench_data):
    from rapport.sales.models import Deal, StageChange

    assert Path(settings.PROJECT_DIR, "bench", "generate_sales.py").exists()
    deals = {d.pk: d for d in Deal.objects.all()}
    assert len(deals) == 400
    last: dict[int, StageChange] = {}
    first: dict[int, StageChange] = {}
    for change in StageChange.objects.order_by("deal_id", "at", "id"):
        first.setdefault(change.deal_id, change)
        last[change.deal_id] = change
    now = timezone.now()
    for deal in deals.values():
        end, start = last[deal.pk], first[deal.pk]
        assert (end.to_stage_id, end.to_status) == (deal.stage_id, deal.status)
        assert end.at == deal.stage_entered_at <= now
        assert start.from_status == ""
        assert start.seconds_in_previous is None
        assert deal.version == StageChange.objects.filter(deal=deal).count()
        if deal.status == "lost":
            assert deal.loss_reason_id
            assert deal.closed_at == end.at
            assert end.amount == deal.amount
        elif deal.status == "won":
            assert deal.won_amount
            assert end.amount == deal.won_amount
            assert deal.closed_at == end.at
        else:
            assert deal.closed_at is None
            assert deal.loss_reason_id is None
    moves = StageChange.objects.exclude(from_status="")
    assert not moves.filter(seconds_in_previous__isnull=True).exists()
    assert moves.filter(limit_exceeded=True).exists()
    assert bench_data["sales"]["stage_changes"] >= 4 * 400


def test_the_big_pipeline_holds_a_third_of_its_deals_open(bench_data):
    from rapport.sales.models import Deal

    big = Deal.objects.filter(pipeline__name=BIG_PIPELINE)
    assert big.count() == 240
    assert big.filter(status="open").count() == 80


def test_generated_deals_show_in_the_funnel_and_on_the_board(bench_data):
    from rapport.accounts.models import User
    from rapport.sales.models import Pipeline
    from rapport.sales.selectors import board, funnel

    admin = User.objects.get(username="bench")
    pipeline = Pipeline.objects.get(name=BIG_PIPELINE)
    columns = board(user=admin, pipeline=pipeline)
    assert sum(c.count for c in columns) == 80
    today = timezone.localdate()
    report = funnel(
        user=admin, pipeline=pipeline, date_from=today - dt.timedelta(days=500), date_to=today
    )
    assert report.created == 240
    assert report.stages[0].entered == 240


def test_generated_tasks_give_managers_overdue_work_and_a_busy_week(bench_data):
    from rapport.activities.models import Interaction, Task

    assert Interaction.objects.count() == 600
    assert Task.objects.count() == 400
    now = timezone.now()
    overdue = Task.objects.filter(status__in=["open", "in_progress"], due_at__lt=now)
    assert overdue.exists()
    week = Task.objects.filter(due_at__gte=now - dt.timedelta(days=7), due_at__lt=now)
    assert week.exists()
    assert not Task.objects.filter(status="done", completed_at__isnull=True).exists()
    busy = bench_data["activities"]["busy_companies"]
    assert Interaction.objects.filter(company_id__in=busy).exists()


def test_generated_people_are_found_by_the_duplicate_guard_by_name(bench_data):
    from rapport.parties.duplicates import find_duplicates
    from rapport.parties.models import Person, PersonNameKey

    person = Person.objects.order_by("id").first()
    assert PersonNameKey.objects.filter(person=person).exists()
    found = find_duplicates(object_type="person", name=person.full_name)
    assert person.pk in [c.object_id for c in found]
