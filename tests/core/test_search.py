"""Global search: names in any order and prefix, phones in any format, email, tax id."""

from __future__ import annotations

import pytest

from rapport.core.search import search_query


@pytest.fixture
def base(alice, make_company, make_person):
    acme = make_company(alice, "ООО «Ромашка»", tax_id="7707083893", tax_country="RU")
    ivan = make_person(
        alice,
        "Иван",
        "Петров",
        phones=[{"raw": "+7 912 341-96-15"}],
        emails=[{"raw": "ivan.petrov@romashka.ru"}],
        employments=[{"company_id": acme.pk}],
    )
    giulia = make_person(alice, "Giulia", "Bianchi", phones=[{"raw": "+39 331 234 5678"}])
    return {"acme": acme, "ivan": ivan, "giulia": giulia}


def hits(user, q):
    return [(d.object_type, d.object_id) for d in search_query(user=user, q=q)]


@pytest.mark.parametrize(
    "q", ["Петров Иван", "иван петров", "Пет", "петров и", "Petrov", "ivan pet"]
)
def test_people_are_found_by_name_words_in_any_order_and_by_prefix(alice, base, q):
    assert ("person", base["ivan"].pk) in hits(alice, q)


@pytest.mark.parametrize(
    "q", ["89123419615", "8 (912) 341-96-15", "+7 912 341 96 15", "912 341 96", "9123419615"]
)
def test_a_phone_typed_in_another_format_finds_the_person(alice, base, q):
    assert hits(alice, q) == [("person", base["ivan"].pk)]


def test_email_and_tax_id_find_their_records(alice, base):
    assert hits(alice, "ivan.petrov@romashka.ru") == [("person", base["ivan"].pk)]
    assert hits(alice, "7707083893") == [("company", base["acme"].pk)]


def test_company_found_by_name_without_its_legal_form(alice, base):
    assert hits(alice, "ромашка") == [("company", base["acme"].pk)]


def test_search_shows_only_what_the_user_may_see(carol, base):
    assert hits(carol, "Петров") == []
    assert hits(carol, "89123419615") == []


def test_search_box_fragment_for_htmx(alice, base, client_for):
    r = client_for(alice).get("/search/", {"q": "8 912 341 96 15"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    html = r.content.decode()
    assert "search-hit" in html
    assert "Петров" in html
    assert "<html" not in html


def test_search_never_fails_on_odd_input(alice, base):
    for q in [
        '"',
        "*",
        "AND OR NOT",
        "'; DROP TABLE x; --",
        "(((",
        "NEAR(a b)",
        "^",
        "+",
        "a" * 300,
        "٠٥٠",
    ]:
        search_query(user=alice, q=q)


def test_an_email_is_found_through_its_contact_point_and_stays_scoped(alice, carol, base):
    assert hits(alice, "  IVAN.Petrov@Romashka.ru ") == [("person", base["ivan"].pk)]
    assert hits(carol, "ivan.petrov@romashka.ru") == []


def test_the_start_of_an_email_still_finds_it(alice, base):
    assert hits(alice, "ivan.petrov@romashka") == [("person", base["ivan"].pk)]
    assert hits(alice, "ivan.petrov@romashka.r") == [("person", base["ivan"].pk)]
