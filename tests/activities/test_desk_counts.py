"""The work desk shows how many companies and people the manager can see, without counting
the whole directory on every visit."""

from __future__ import annotations

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
