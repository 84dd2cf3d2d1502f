"""The directory API: one error shape, per-field messages, 409 duplicates, 412 stale writes."""

from __future__ import annotations

import json

import pytest


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def patch(client, url, body, **headers):
    return client.patch(
        url, data=json.dumps(body), content_type="application/json", headers=headers
    )


def test_creating_a_company_returns_it_with_normalised_contacts(alice, client_for):
    r = post(
        client_for(alice),
        "/api/v1/companies",
        {
            "short_name": "ООО «Ромашка»",
            "tax_id": "7707083893",
            "tax_country": "RU",
            "kinds": ["client"],
            "phones": [{"raw": "8 (495) 123-45-67, +7 912 341 96 15"}],
            "emails": [{"raw": "Info@Romashka.RU"}],
        },
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["legal_form"] == "ООО"
    assert body["kinds"] == ["client"]
    assert body["version"] == 1
    assert [p["value"] for p in body["contact_points"]] == [
        "+74951234567",
        "+79123419615",
        "info@romashka.ru",
    ]


def test_bad_input_gets_422_with_a_message_per_field(alice, client_for):
    r = post(
        client_for(alice),
        "/api/v1/companies",
        {"short_name": "", "tax_id": "123x", "tax_country": "RU"},
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"short_name", "tax_id"}


def test_schema_errors_use_the_same_error_shape(alice, client_for):
    r = post(client_for(alice), "/api/v1/companies", {"short_name": 5, "kinds": ["nonsense"]})
    assert r.status_code == 422
    assert "kinds.0" in r.json()["error"]["fields"]


@pytest.mark.parametrize(
    "field", ["id", "version", "team_id", "created_at", "deleted_at", "created_by", "name_key"]
)
def test_server_owned_fields_cannot_be_mass_assigned(alice, client_for, field):
    client = client_for(alice)
    r = post(client, "/api/v1/companies", {"short_name": "Acme", field: 99})
    assert r.status_code == 422
    assert field in r.json()["error"]["fields"]
    company_id = post(client, "/api/v1/companies", {"short_name": "Acme"}).json()["id"]
    assert patch(client, f"/api/v1/companies/{company_id}", {field: 99}).status_code == 422


def test_a_duplicate_answers_409_with_candidates_unless_forced(alice, client_for):
    client = client_for(alice)
    first = post(
        client,
        "/api/v1/companies",
        {"short_name": "ООО «Ромашка»", "tax_id": "7707083893", "tax_country": "RU"},
    ).json()
    r = post(client, "/api/v1/companies", {"short_name": "Ромашка"})
    assert r.status_code == 409
    candidate = r.json()["error"]["candidates"][0]
    assert candidate["id"] == first["id"]
    assert candidate["score"] >= 85
    assert candidate["reasons"]
    assert (
        post(client, "/api/v1/companies?force=true", {"short_name": "Ромашка"}).status_code == 201
    )


def test_a_stale_write_with_if_match_answers_412(alice, client_for):
    client = client_for(alice)
    company = post(client, "/api/v1/companies", {"short_name": "Acme"}).json()
    url = f"/api/v1/companies/{company['id']}"
    assert client.get(url)["ETag"] == '"1"'
    assert patch(client, url, {"city": "Roma"}, **{"If-Match": '"1"'}).status_code == 200
    r = patch(client, url, {"city": "Milano"}, **{"If-Match": '"1"'})
    assert r.status_code == 412
    assert r.json()["error"]["current_version"] == 2
    assert client.get(url).json()["city"] == "Roma"


def test_lists_page_by_cursor_without_gaps_or_repeats(alice, client_for, make_company):
    for i in range(7):
        make_company(alice, f"Company {i:02d}")
    client = client_for(alice)
    seen, cursor = [], None
    while True:
        params = {"size": 3, "sort": "name"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/companies", params).json()
        seen += [c["short_name"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Company {i:02d}" for i in range(7)]


def test_unknown_sort_fields_are_refused(alice, client_for):
    r = client_for(alice).get("/api/v1/companies", {"sort": "password"})
    assert r.status_code == 422
    assert "sort" in r.json()["error"]["fields"]


def test_people_filtered_by_manager_and_company(alice, dan, client_for, make_company, make_person):
    acme = make_company(alice, "Acme")
    make_person(alice, "Ivan", "Petrov", employments=[{"company_id": acme.pk}])
    make_person(dan, "Dan", "Subteam")
    client = client_for(alice)
    by_dan = client.get("/api/v1/people", {"responsible_id": dan.pk}).json()["items"]
    assert [p["last_name"] for p in by_dan] == ["Subteam"]
    at_acme = client.get("/api/v1/people", {"company_id": acme.pk}).json()["items"]
    assert [p["last_name"] for p in at_acme] == ["Petrov"]
    assert at_acme[0]["employments"][0]["company"] == "Acme"


def test_token_auth_works_and_a_revoked_token_does_not(alice, client):
    from rapport.accounts.models import ApiToken
    from rapport.accounts.services import api_token_create, api_token_revoke

    token, raw = api_token_create(user=alice, name="script")
    assert ApiToken.objects.get(pk=token.pk).digest != raw
    assert raw not in str(token.__dict__.values())
    ok = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert ok.status_code == 200
    assert ok.json()["username"] == "alice"
    api_token_revoke(user=alice, token=token)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_delete_moves_to_the_bin_and_an_admin_restores_it_with_its_people(
    alice, admin_user, client_for, make_company, make_person
):
    company = make_company(alice, "Acme", phones=[{"raw": "+7 495 123 45 67"}])
    make_person(alice, "Ivan", "Petrov", employments=[{"company_id": company.pk}])
    client = client_for(alice)
    assert client.delete(f"/api/v1/companies/{company.pk}").status_code == 204
    assert client.get(f"/api/v1/companies/{company.pk}").status_code == 404
    assert client.get("/api/v1/search", {"q": "Acme"}).json() == []
    assert (
        client.post(f"/api/v1/companies/{company.pk}/restore").status_code == 403
    )  # admins restore
    admin = client_for(admin_user)
    restored = admin.post(f"/api/v1/companies/{company.pk}/restore")
    assert restored.status_code == 200
    assert restored.json()["deleted_at"] is None
    assert (
        client.get(f"/api/v1/companies/{company.pk}").json()["contact_points"][0]["value"]
        == "+74951234567"
    )
    assert [
        p["last_name"]
        for p in client.get("/api/v1/people", {"company_id": company.pk}).json()["items"]
    ] == ["Petrov"]
    assert client.get("/api/v1/search", {"q": "Acme"}).json()[0]["id"] == company.pk
    actions = [e["action"] for e in client.get(f"/api/v1/history/company/{company.pk}").json()]
    assert actions[:2] == ["restore", "delete"]


def test_relations_between_companies_and_people(alice, client_for, make_company, make_person):
    a, b = make_company(alice, "Parent Co"), make_company(alice, "Child Co")
    client = client_for(alice)
    r = post(
        client,
        "/api/v1/company-relations",
        {"from_company_id": a.pk, "to_company_id": b.pk, "kind": "parent_of", "note": "100%"},
    )
    assert r.status_code == 201
    assert client.get(f"/api/v1/companies/{b.pk}/relations").json()[0]["kind"] == "parent_of"
    p, q = make_person(alice, "A", "One"), make_person(alice, "B", "Two")
    assert (
        post(
            client,
            "/api/v1/person-relations",
            {"from_person_id": p.pk, "to_person_id": q.pk, "kind": "reports_to"},
        ).status_code
        == 201
    )
    assert (
        post(
            client,
            "/api/v1/person-relations",
            {"from_person_id": p.pk, "to_person_id": p.pk, "kind": "knows"},
        ).status_code
        == 422
    )


def test_adding_a_contact_point_through_the_api(alice, client_for, make_person):
    person = make_person(alice)
    r = post(
        client_for(alice),
        "/api/v1/contact-points",
        {"person_id": person.pk, "channel": "phone", "raw": "8 912 341 96 15", "kind": "mobile"},
    )
    assert r.status_code == 201
    assert r.json()["value"] == "+79123419615"
