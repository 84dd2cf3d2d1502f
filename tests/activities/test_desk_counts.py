"""The work desk shows how many companies and people the manager can see, without counting
the whole directory on every visit."""

from __future__ import annotations

import datetime as dt
import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

COUNT = re.compile(r'^SELECT COUNT\(\*\) AS "__count" FROM "parties_(company|person)"')


def _directory_counts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if COUNT.match(q["sql"])]


def test_the_desk_shows_the_directory_counts_and_reuses_them_for_a_minute(
    alice, client_for, make_company, make_person
):
    make_company(alice, "Acme")
    make_person(alice, "Ivan", "Petrov")
    client = client_for(alice)
    with CaptureQueriesContext(connection) as first:
        page = client.get("/").content.decode()
    assert len(_directory_counts(first)) == 2
    assert "1 company" in page
    assert "1 person" in page
    make_company(alice, "Bee")
    with CaptureQueriesContext(connection) as again:
        page = client.get("/").content.decode()
    assert "1 company" in page  # the count is a minute old at most
    assert _directory_counts(again) == []


def test_choosing_a_client_on_the_desk_does_not_count_the_directory(
    alice, client_for, make_company
):
    acme = make_company(alice, "Acme")
    client = client_for(alice)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/?client=company:{acme.pk}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert _directory_counts(queries) == []


def test_the_desk_counts_every_overdue_task_once(alice, client_for):
    from django.utils import timezone

    from rapport.activities.services import task_create

    for n in range(25):
        task_create(actor=alice, data={"title": f"Late {n}", "due_at": "2020-01-01T09:00"})
    # one more, late since this morning: on today's calendar and overdue, counted once
    earlier = timezone.localtime() - dt.timedelta(minutes=5)
    if earlier.date() == timezone.localdate():
        task_create(actor=alice, data={"title": "Late today", "due_at": earlier})
        expected = 26
    else:  # just after midnight: nothing of today is late yet
        expected = 25
    page = client_for(alice).get("/").content.decode()
    figure = re.search(r'id="overdue-count">([^<]*)<', page)
    assert figure is not None
    assert figure.group(1).strip() == f"{expected} overdue"


def test_the_desk_reads_todays_clients_with_their_tasks_not_one_by_one(
    alice, client_for, make_company
):
    from django.utils import timezone

    from rapport.activities.services import task_create

    client = client_for(alice)
    later = timezone.localtime().replace(hour=23, minute=30, second=0, microsecond=0)

    def desk_queries(n: int) -> int:
        for i in range(n):
            company = make_company(alice, f"Client {n}-{i}")
            task_create(
                actor=alice,
                data={"title": f"Call {n}-{i}", "due_at": later, "company_id": company.pk},
            )
        client.get("/")
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/").content.decode()
        assert f"Client {n}-{n - 1}" in page
        return len(queries.captured_queries)

    assert desk_queries(2) == desk_queries(8)
