"""Custom fields: defined by an admin, validated on every write path, filterable."""

from __future__ import annotations

import json

import pytest

from rapport.core.errors import FieldErrors
from rapport.core.services import custom_field_create
from rapport.parties.services import company_create


@pytest.fixture
def fields(admin_user):
    custom_field_create(
        actor=admin_user,
        object_type="company",
        name="segment",
        label="Segment",
        type="choice",
        choices=["SMB", "Enterprise"],
        required=True,
    )
    custom_field_create(
        actor=admin_user, object_type="company", name="employees", label="Employees", type="number"
    )
    custom_field_create(
        actor=admin_user,
        object_type="company",
        name="contract_end",
        label="Contract end",
        type="date",
    )


def test_the_service_refuses_a_value_outside_the_choices_naming_the_field(alice, fields):
    with pytest.raises(FieldErrors) as exc:
        company_create(
            actor=alice, data={"short_name": "Acme", "custom_fields": {"segment": "Huge"}}
        )
    assert "custom_fields.segment" in exc.value.errors


def test_a_required_custom_field_is_required(alice, fields):
    with pytest.raises(FieldErrors) as exc:
        company_create(actor=alice, data={"short_name": "Acme"})
    assert "Segment" in exc.value.errors["custom_fields.segment"][0]


def test_the_api_validates_and_filters_custom_fields(alice, fields, client_for):
    client = client_for(alice)
    bad = client.post(
        "/api/v1/companies",
        data=json.dumps(
            {"short_name": "Acme", "custom_fields": {"segment": "SMB", "employees": "many"}}
        ),
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert "custom_fields.employees" in bad.json()["error"]["fields"]
    for name, seg, n in (("Small", "SMB", 12), ("Big", "Enterprise", 5000)):
        r = client.post(
            "/api/v1/companies",
            data=json.dumps(
                {
                    "short_name": name,
                    "custom_fields": {"segment": seg, "employees": n, "contract_end": "2027-01-31"},
                }
            ),
            content_type="application/json",
        )
        assert r.status_code == 201, r.content
    assert [
        c["short_name"]
        for c in client.get("/api/v1/companies", {"cf_segment": "Enterprise"}).json()["items"]
    ] == ["Big"]
    assert [
        c["short_name"]
        for c in client.get("/api/v1/companies", {"cf_employees": "min:100"}).json()["items"]
    ] == ["Big"]
    assert client.get("/api/v1/companies", {"cf_nope": "1"}).status_code == 422


def test_the_page_form_validates_custom_fields_and_keeps_what_was_typed(alice, fields, client_for):
    client = client_for(alice)
    r = client.post(
        "/companies/new/",
        {
            "short_name": "Acme Page",
            "entity_type": "legal",
            "cf_segment": "SMB",
            "cf_employees": "lots",
            "phones": "+7 495 123 45 67",
        },
    )
    assert r.status_code == 422
    html = r.content.decode()
    assert "Employees" in html
    assert "Enter a number." in html
    assert 'value="Acme Page"' in html
    assert "+7 495 123 45 67" in html
    ok = client.post(
        "/companies/new/",
        {
            "short_name": "Acme Page",
            "entity_type": "legal",
            "cf_segment": "SMB",
            "cf_employees": "40",
        },
    )
    assert ok.status_code == 302
    card = client.get(ok["Location"]).content.decode()
    assert "Segment" in card
    assert "SMB" in card


def test_admin_defines_fields_through_the_api(admin_user, client_for):
    client = client_for(admin_user)
    r = client.post(
        "/api/v1/custom-fields",
        data=json.dumps({"object_type": "person", "name": "vip", "label": "VIP", "type": "bool"}),
        content_type="application/json",
    )
    assert r.status_code == 201
    dup = client.post(
        "/api/v1/custom-fields",
        data=json.dumps({"object_type": "person", "name": "vip", "label": "VIP", "type": "bool"}),
        content_type="application/json",
    )
    assert dup.status_code == 422
    bad = client.post(
        "/api/v1/custom-fields",
        data=json.dumps(
            {"object_type": "person", "name": "Bad Name", "label": "x", "type": "bool"}
        ),
        content_type="application/json",
    )
    assert bad.status_code == 422
