"""The duplicates API: clusters, a pair side by side, scans, merge, undo, dismiss — the same
rules as the pages, and another team's records answer 404 everywhere."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rapport.dedupe import finder, jobs
from rapport.dedupe.models import DuplicatePair, DuplicateScan, MergeRecord, PairStatus
from rapport.parties.models import Person
from rapport.parties.services import person_create, person_update


def _person(actor: Any, first: str, last: str, **data: Any) -> Any:
    return person_create(
        actor=actor, data={"first_name": first, "last_name": last, **data}, force=True
    )


def _post(client: Any, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def twins(alice: Any) -> dict[str, Any]:
    """Ivan entered twice (same email), and a weaker pair: Maria with a typo in her name."""
    a = _person(
        alice, "Иван", "Иванов", phones=[{"raw": "+7 912 000-11-22"}],
        emails=[{"raw": "ivan@romashka.ru"}], city="Тула",
    )  # fmt: skip
    b = _person(
        alice, "Ivan", "Ivanov", phones=[{"raw": "8 (495) 111-22-33 доб. 12"}],
        emails=[{"raw": "ivan@romashka.ru"}], birthday="1980-05-01",
    )  # fmt: skip
    c = _person(alice, "Мария", "Кузнецова", phones=[{"raw": "+7 912 555-66-77"}])
    d = _person(alice, "Мария", "Кузнецава")
    finder.scan("person")
    return {"a": a, "b": b, "c": c, "d": d}


def test_clusters_list_members_score_and_reasons_best_first(alice, twins, client_for):
    body = client_for(alice).get("/api/v1/duplicates/clusters", {"target": "people"}).json()
    assert body["count"] == 2
    first, second = body["items"]
    assert first["score"] >= second["score"]
    assert {m["id"] for m in first["members"]} == {twins["a"].pk, twins["b"].pk}
    assert "email" in [r["code"] for r in first["reasons"]]
    assert "same email" in [r["label"] for r in first["reasons"]]
    assert {m["id"] for m in second["members"]} == {twins["c"].pk, twins["d"].pk}
    assert [r["code"].split(":")[0] for r in second["reasons"]] == ["name"]
    assert second["reasons"][0]["label"].startswith("similar name")
    assert first["pairs"][0]["status"] == "open"


def test_clusters_filter_by_min_score_sort_up_and_page(alice, twins, client_for):
    client = client_for(alice)
    url = "/api/v1/duplicates/clusters"
    weakest = min(p.score for p in DuplicatePair.objects.all())
    strongest = max(p.score for p in DuplicatePair.objects.all())
    assert weakest < strongest
    only_best = client.get(url, {"min_score": strongest}).json()
    assert only_best["count"] == 1
    up = client.get(url, {"sort": "score"}).json()["items"]
    assert [c["score"] for c in up] == sorted(c["score"] for c in up)
    page1 = client.get(url, {"limit": 1}).json()
    assert (page1["count"], len(page1["items"]), page1["next_offset"]) == (2, 1, 1)
    page2 = client.get(url, {"limit": 1, "offset": 1}).json()
    assert page2["next_offset"] is None
    assert page2["items"][0]["members"] != page1["items"][0]["members"]
    assert client.get(url, {"target": "companies"}).json() == {
        "count": 0,
        "next_offset": None,
        "items": [],
    }
    assert client.get(url, {"sort": "name"}).status_code == 422


def test_a_pair_shows_both_records_field_by_field(alice, twins, client_for):
    a, b = twins["a"], twins["b"]
    body = client_for(alice).get(f"/api/v1/duplicates/people/pairs/{a.pk}/{b.pk}").json()
    assert (body["a"]["id"], body["b"]["id"]) == (a.pk, b.pk)
    assert body["a"]["version"] == a.version
    fields = {f["name"]: f for f in body["fields"]}
    assert (fields["last_name"]["a"], fields["last_name"]["b"]) == ("Иванов", "Ivanov")
    assert fields["last_name"]["differ"] is True
    assert (fields["birthday"]["a"], fields["birthday"]["b"]) == ("", "1980-05-01")
    assert body["phones"] == {"a": ["+79120001122"], "b": ["+74951112233"]}
    assert body["emails"] == {"a": ["ivan@romashka.ru"], "b": ["ivan@romashka.ru"]}
    assert body["score"] >= 95
    assert body["status"] == "open"


def test_merge_through_the_api_keeps_the_chosen_values_and_undo_puts_them_back(
    alice, twins, client_for
):
    client = client_for(alice)
    a, b = twins["a"], twins["b"]
    response = _post(
        client,
        "/api/v1/duplicates/merges",
        {
            "target": "people",
            "survivor_id": a.pk,
            "merged_id": b.pk,
            "keep": {"first_name": "merged", "last_name": "merged", "city": "survivor"},
            "survivor_version": a.version,
            "merged_version": b.version,
        },
    )
    assert response.status_code == 201, response.content
    merge = response.json()
    assert (merge["survivor_id"], merge["merged_id"], merge["undone_at"]) == (a.pk, b.pk, None)
    a.refresh_from_db()
    assert (a.first_name, a.last_name, a.city) == ("Ivan", "Ivanov", "Тула")
    assert a.birthday.isoformat() == "1980-05-01"
    phones = {(p.value, p.extension) for p in a.contact_points.filter(channel="phone")}
    assert phones == {("+79120001122", ""), ("+74951112233", "12")}  # the extension too
    assert Person.objects.get(pk=b.pk).deleted_at is not None
    assert client.get("/api/v1/duplicates/merges").json()[0]["id"] == merge["id"]
    assert all(
        twins["b"].pk not in {m["id"] for m in c["members"]}
        for c in client.get("/api/v1/duplicates/clusters").json()["items"]
    )

    undone = _post(client, f"/api/v1/duplicates/merges/{merge['id']}/undo")
    assert undone.status_code == 200, undone.content
    assert undone.json()["undone_at"] is not None
    a.refresh_from_db()
    assert (a.first_name, a.last_name, a.birthday) == ("Иван", "Иванов", None)
    assert Person.objects.get(pk=b.pk).deleted_at is None
    again = _post(client, f"/api/v1/duplicates/merges/{merge['id']}/undo")
    assert again.status_code == 422
    assert "already undone" in again.json()["error"]["fields"]["id"][0]


def test_a_merge_of_a_record_changed_since_it_was_compared_is_refused_with_412(
    alice, twins, client_for
):
    a, b = twins["a"], twins["b"]
    seen = a.version
    person_update(actor=alice, person=a, data={"city": "Тверь"})
    response = _post(
        client_for(alice),
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": b.pk,
         "survivor_version": seen, "merged_version": b.version},
    )  # fmt: skip
    assert response.status_code == 412
    assert response.json()["error"]["current_version"] == seen + 1
    assert not MergeRecord.objects.exists()
    assert Person.objects.get(pk=b.pk).deleted_at is None


def test_undoing_a_merge_after_the_survivor_changed_is_refused_with_412(alice, twins, client_for):
    client = client_for(alice)
    a, b = twins["a"], twins["b"]
    merge = _post(
        client,
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": b.pk},
    ).json()
    a.refresh_from_db()
    person_update(actor=alice, person=a, data={"city": "Тверь"})
    response = _post(client, f"/api/v1/duplicates/merges/{merge['id']}/undo")
    assert response.status_code == 412
    assert Person.objects.get(pk=b.pk).deleted_at is not None


def test_merge_input_is_checked_and_names_the_field(alice, twins, client_for):
    client = client_for(alice)
    a, b = twins["a"], twins["b"]
    same = _post(
        client,
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": a.pk},
    )
    assert same.status_code == 422
    assert "merged_id" in same.json()["error"]["fields"]
    unknown = _post(
        client,
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": b.pk, "keep": {"pk": "merged"}},
    )
    assert unknown.status_code == 422
    assert "keep" in unknown.json()["error"]["fields"]
    extra = _post(
        client,
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": b.pk, "deleted_at": None},
    )
    assert extra.status_code == 422
    assert not MergeRecord.objects.exists()


def test_dismissing_a_pair_hides_its_cluster(alice, twins, client_for):
    client = client_for(alice)
    c, d = twins["c"], twins["d"]
    response = _post(client, f"/api/v1/duplicates/people/pairs/{d.pk}/{c.pk}/dismiss")
    assert response.status_code == 200
    assert response.json()["status"] == "dismissed"
    assert client.get("/api/v1/duplicates/clusters").json()["count"] == 1
    assert _post(client, f"/api/v1/duplicates/people/pairs/{c.pk}/{d.pk}/dismiss").status_code == (
        404
    )  # no open pair any more


def test_a_rep_may_see_but_not_merge_a_colleagues_records(alice, bob, org, twins, client_for):
    """Bob (own scope) does not see Alice's records at all: 404, nothing merged."""
    a, b = twins["a"], twins["b"]
    client = client_for(bob)
    response = _post(
        client,
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": a.pk, "merged_id": b.pk},
    )
    assert response.status_code == 404
    assert Person.objects.get(pk=b.pk).deleted_at is None


def _duplicate_routes() -> set[tuple[str, str]]:
    from rapport.api import api

    schema = api.get_openapi_schema(path_prefix="/api/v1")
    return {
        (m.upper(), path)
        for path, ops in schema["paths"].items()
        for m in ops
        if path.startswith("/api/v1/duplicates/") and path != "/api/v1/duplicates/check"
    }


def test_another_teams_duplicates_are_404_or_absent_on_every_duplicates_route(
    alice, carol, admin_user, twins, client_for
):
    a, b = twins["a"], twins["b"]
    merge = _post(
        client_for(alice),
        "/api/v1/duplicates/merges",
        {"target": "people", "survivor_id": twins["c"].pk, "merged_id": twins["d"].pk},
    ).json()
    scan = _post(client_for(admin_user), "/api/v1/duplicates/scans", {"target": "people"}).json()
    client = client_for(carol)
    calls = {
        ("GET", "/api/v1/duplicates/clusters"): ("GET", "/api/v1/duplicates/clusters", None),
        ("GET", "/api/v1/duplicates/merges"): ("GET", "/api/v1/duplicates/merges", None),
        ("GET", "/api/v1/duplicates/{target}/pairs/{a_id}/{b_id}"): (
            "GET", f"/api/v1/duplicates/people/pairs/{a.pk}/{b.pk}", None,
        ),
        ("POST", "/api/v1/duplicates/{target}/pairs/{a_id}/{b_id}/dismiss"): (
            "POST", f"/api/v1/duplicates/people/pairs/{a.pk}/{b.pk}/dismiss", None,
        ),
        ("POST", "/api/v1/duplicates/merges"): (
            "POST", "/api/v1/duplicates/merges",
            {"target": "people", "survivor_id": a.pk, "merged_id": b.pk},
        ),
        ("POST", "/api/v1/duplicates/merges/{merge_id}/undo"): (
            "POST", f"/api/v1/duplicates/merges/{merge['id']}/undo", None,
        ),
        ("POST", "/api/v1/duplicates/scans"): (
            "POST", "/api/v1/duplicates/scans", {"target": "people"},
        ),
        ("GET", "/api/v1/duplicates/scans/{scan_id}"): (
            "GET", f"/api/v1/duplicates/scans/{scan['id']}", None,
        ),
    }  # fmt: skip
    assert set(calls) == _duplicate_routes(), "a new duplicates route needs its check here"
    expected = {
        ("GET", "/api/v1/duplicates/clusters"): 200,  # lists: answered, without Alice's
        ("GET", "/api/v1/duplicates/merges"): 200,
        ("POST", "/api/v1/duplicates/scans"): 403,  # a rep may not scan the whole base
    }
    for method, url, body in calls.values():
        response = client.get(url) if method == "GET" else _post(client, url, body)
        wanted = expected.get((method, url), 404)
        assert response.status_code == wanted, (method, url, response.content)
        assert "Иван" not in response.content.decode()
    assert client.get("/api/v1/duplicates/clusters").json()["count"] == 0
    assert client.get("/api/v1/duplicates/merges").json() == []
    assert DuplicatePair.objects.filter(status=PairStatus.DISMISSED).count() == 0
    assert MergeRecord.objects.get().undone_at is None


def test_an_administrator_starts_a_scan_and_follows_its_status(
    admin_user, alice, twins, client_for, django_capture_on_commit_callbacks
):
    DuplicatePair.objects.all().delete()
    client = client_for(admin_user)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _post(client, "/api/v1/duplicates/scans", {"target": "people"})
    assert response.status_code == 202
    scan = response.json()
    assert (scan["status"], scan["target"], scan["pairs_found"]) == ("queued", "people", 0)
    assert len(queued) == 1  # the worker's job, queued once the request commits
    again = _post(client, "/api/v1/duplicates/scans", {"target": "people"}).json()
    assert again["id"] == scan["id"]  # one scan at a time per target

    assert jobs.scan_run(scan["id"]) == "done"  # what the worker runs
    done = client.get(f"/api/v1/duplicates/scans/{scan['id']}").json()
    assert done["status"] == "done"
    assert done["pairs_found"] >= 2
    assert done["finished_at"] is not None
    assert client.get("/api/v1/duplicates/clusters").json()["count"] == 2
    assert (
        _post(client, "/api/v1/duplicates/scans", {"target": "people"}).json()["id"] != scan["id"]
    )  # a finished scan does not block the next
    assert DuplicateScan.objects.count() == 2
    assert _post(client_for(alice), "/api/v1/duplicates/scans", {}).status_code == 403
