"""Directory API: parse -> call a service or selector -> schema out. No rules here."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status

from rapport.core.errors import FieldErrors
from rapport.core.exports import CONTENT_TYPES
from rapport.core.pagination import keyset_page
from rapport.core.phones import parse_phones
from rapport.core.taxids import normalize_tax_id
from rapport.parties import selectors, services
from rapport.parties.duplicates import find_duplicates
from rapport.parties.models import Company, ContactPoint, Employment, Person
from rapport.parties.schemas import (
    CompanyOut,
    CompanyPage,
    CompanyPatch,
    CompanyRelationIn,
    CompanyRelationOut,
    CompanyWrite,
    ContactPointIn,
    ContactPointOut,
    DuplicateCandidateOut,
    DuplicateCheckIn,
    ErrorOut,
    PersonOut,
    PersonPage,
    PersonPatch,
    PersonRelationIn,
    PersonRelationOut,
    PersonWrite,
)

router = Router(tags=["directory"])
ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ErrorOut}
WRITE_ERRORS: dict[int, Any] = {**ERRORS, 409: ErrorOut, 412: ErrorOut}


def _user(request: HttpRequest) -> Any:
    return request.user


def _points(obj: Company | Person) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "channel": p.channel,
            "kind": p.kind,
            "raw": p.raw,
            "value": p.value,
            "extension": p.extension,
            "valid": p.valid,
            "is_primary": p.is_primary,
        }
        for p in obj.contact_points.all()
    ]


def company_out(
    c: Company,
    *,
    points: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": c.pk,
        "version": c.version,
        "short_name": c.short_name,
        "full_name": c.full_name,
        "entity_type": c.entity_type,
        "legal_form": c.legal_form,
        "tax_id": c.tax_id,
        "tax_country": c.tax_country,
        "registration_number": c.registration_number,
        "kinds": c.kinds,
        "industry": c.industry,
        "website": c.website,
        "legal_address": c.legal_address,
        "postal_address": c.postal_address,
        "country": c.country,
        "city": c.city,
        "client_since": c.client_since,
        "responsible_id": c.responsible_id,
        "team_id": c.team_id,
        "source": c.source,
        "notes": c.notes,
        "tags": [t.name for t in c.tags.all()] if tags is None else tags,
        "custom_fields": c.custom_fields,
        "contact_points": _points(c) if points is None else points,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "deleted_at": c.deleted_at,
    }


def person_out(
    p: Person,
    *,
    points: list[dict[str, Any]] | None = None,
    tags: list[str] | None = None,
    employments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if employments is None:
        employments = [
            {
                "company_id": e.company_id,
                "company": e.company.short_name,
                "position": e.position,
                "role": e.role,
                "is_current": e.is_current,
            }
            for e in p.employments.all()
            if e.company.deleted_at is None
        ]
    return {
        "id": p.pk,
        "version": p.version,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "middle_name": p.middle_name,
        "full_name": p.full_name,
        "birthday": p.birthday,
        "time_zone": p.time_zone,
        "city": p.city,
        "address": p.address,
        "responsible_id": p.responsible_id,
        "team_id": p.team_id,
        "source": p.source,
        "notes": p.notes,
        "tags": [t.name for t in p.tags.all()] if tags is None else tags,
        "custom_fields": p.custom_fields,
        "contact_points": _points(p) if points is None else points,
        "employments": employments,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "deleted_at": p.deleted_at,
    }


# --- list pages: rows of related tables as tuples, one query each -----------------------------
# A 50-row page through prefetch_related built ~300 model instances and then Pydantic
# validated every dict again (25-45 ms of Python at 1M people). The list answers are built
# from tuples here and rendered by the API's own JSON renderer: the same JSON as the
# schema gives (tests/parties/test_api.py and docs/openapi.json keep it so).

_POINT_FIELDS = ("id", "channel", "kind", "raw", "value", "extension", "valid", "is_primary")


def _points_by_owner(owner: str, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = (
        ContactPoint.objects.filter(**{f"{owner}_id__in": ids})
        .order_by("position", "id")
        .values_list(f"{owner}_id", *_POINT_FIELDS)
    )
    for owner_id, *values in rows:
        out[owner_id].append(dict(zip(_POINT_FIELDS, values, strict=True)))
    return out


def _tags_by_owner(model: type[Company] | type[Person], ids: list[int]) -> dict[int, list[str]]:
    owner = "company_id" if model is Company else "person_id"
    out: dict[int, list[str]] = {i: [] for i in ids}
    rows = (
        model.tags.through.objects.filter(**{f"{owner}__in": ids})
        .order_by("tag__name")
        .values_list(owner, "tag__name")
    )
    for owner_id, name in rows:
        out[owner_id].append(name)
    return out


def _employments_by_person(ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = (
        Employment.objects.filter(person_id__in=ids, company__deleted_at__isnull=True)
        .order_by("id")
        .values_list(
            "person_id", "company_id", "company__short_name", "position", "role", "is_current"
        )
    )
    for person_id, company_id, company, position, role, is_current in rows:
        out[person_id].append(
            {
                "company_id": company_id,
                "company": company,
                "position": position,
                "role": role,
                "is_current": is_current,
            }
        )
    return out


def _json(request: HttpRequest, data: Any) -> HttpResponse:
    from rapport.api import api

    return api.create_response(request, data, status=200)


def _if_match(request: HttpRequest) -> int | None:
    raw = request.headers.get("If-Match")
    if not raw:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise FieldErrors.single("If-Match", _("If-Match must hold the record's version number."))
    return int(value)


def _etag(response: HttpResponse, version: int) -> None:
    response["ETag"] = f'"{version}"'


def _payload(body: Any, *, partial: bool) -> dict[str, Any]:
    data: dict[str, Any] = body.model_dump(exclude_unset=partial)
    for key in ("phones", "emails", "messengers", "bank_accounts", "employments"):
        if key in data and data[key] is not None:
            data[key] = [dict(item) for item in data[key]]
    for key in ("kinds",):
        if key in data and data[key] is not None:
            data[key] = [str(k) for k in data[key]]
    return data


class ListFilterQuery(Schema):
    """The filters of the company and people lists (their pages and exports)."""

    q: str = ""
    kind: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    tag: str = ""
    company_id: int | None = None
    created_from: dt.date | None = None
    created_to: dt.date | None = None


class ListQuery(ListFilterQuery):
    sort: str = "-id"
    cursor: str | None = None
    size: int = settings.API_PAGE_SIZE


class ExportQuery(ListFilterQuery):
    sort: str = "-id"
    format: Literal["xlsx", "csv"] = "xlsx"


EXPORT_DESCRIPTION = (
    "The list with the same filters (and `cf_<name>=value` custom-field filters) as a CSV "
    "(UTF-8 with BOM) or XLSX download, through the scope of the export permission (404 "
    "without it). Text that a spreadsheet could run as a formula is neutralised. More rows "
    "than the server's EXPORT_MAX_ROWS answer 422 with the count."
)
EXPORT_OPENAPI: dict[str, Any] = {
    "responses": {
        200: {
            "description": "The spreadsheet, as an attachment `<name>-<date>.<csv|xlsx>`.",
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                CONTENT_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
}


def _filters(request: HttpRequest, params: ListFilterQuery) -> selectors.ListFilters:
    return selectors.ListFilters(
        q=params.q,
        kind=params.kind,
        responsible_id=params.responsible_id,
        team_id=params.team_id,
        tag=params.tag,
        created_from=params.created_from,
        created_to=params.created_to,
        company_id=params.company_id,
        custom=selectors.custom_filters_from(request.GET),
    )


def _sort(sort: str, allowed: dict[str, str]) -> str:
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in allowed:
        raise FieldErrors.single(
            "sort", _("Sort by one of: %(keys)s.") % {"keys": ", ".join(allowed)}
        )
    return ("-" if desc else "") + allowed[key]


def _size(size: int) -> int:
    if size < 1 or size > settings.API_MAX_PAGE_SIZE:
        raise FieldErrors.single(
            "size",
            _("Page size must be between 1 and %(max)s.") % {"max": settings.API_MAX_PAGE_SIZE},
        )
    return size


# --- companies -------------------------------------------------------------------------------


@router.get("/companies", response={200: CompanyPage, **ERRORS}, summary="List companies")
def companies_list(request: HttpRequest, params: Query[ListQuery]) -> Any:
    qs = selectors.company_list(user=_user(request), filters=_filters(request, params))
    page = keyset_page(
        qs.select_related(None),
        sort=_sort(params.sort, selectors.COMPANY_SORTS),
        cursor=params.cursor,
        size=_size(params.size),
    )
    ids = [c.pk for c in page.items]
    points, tags = _points_by_owner("company", ids), _tags_by_owner(Company, ids)
    items = [company_out(c, points=points[c.pk], tags=tags[c.pk]) for c in page.items]
    return _json(request, {"items": items, "next_cursor": page.next_cursor})


@router.get(
    "/companies/export",
    response=ERRORS,
    summary="Export companies (CSV or XLSX)",
    description=EXPORT_DESCRIPTION,
    openapi_extra=EXPORT_OPENAPI,
)
def companies_export(request: HttpRequest, params: Query[ExportQuery]) -> Any:
    from rapport.parties.views import party_export

    return party_export(
        user=_user(request),
        object_type="company",
        filters=_filters(request, params),
        sort=_sort(params.sort, selectors.COMPANY_SORTS),
        fmt=params.format,
    )


@router.post(
    "/companies",
    response={201: CompanyOut, **WRITE_ERRORS},
    summary="Create a company",
    description="Answers 409 with the likely duplicates unless `force=true`.",
)
def companies_create(request: HttpRequest, body: CompanyWrite, force: bool = False) -> Any:
    company = services.company_create(
        actor=_user(request), data=_payload(body, partial=False), force=force
    )
    return Status(201, company_out(company))


@router.get(
    "/companies/{company_id}", response={200: CompanyOut, **ERRORS}, summary="Get a company"
)
def companies_get(request: HttpRequest, response: HttpResponse, company_id: int) -> Any:
    company = selectors.company_get(user=_user(request), company_id=company_id)
    _etag(response, company.version)
    return company_out(company)


@router.patch(
    "/companies/{company_id}",
    response={200: CompanyOut, **WRITE_ERRORS},
    summary="Change a company",
    description='Send `If-Match: "<version>"` to refuse a stale write with 412.',
)
def companies_update(
    request: HttpRequest,
    response: HttpResponse,
    company_id: int,
    body: CompanyPatch,
    force: bool = False,
) -> Any:
    company = selectors.company_get(user=_user(request), company_id=company_id)
    company = services.company_update(
        actor=_user(request),
        company=company,
        data=_payload(body, partial=True),
        version=_if_match(request),
        force=force,
    )
    _etag(response, company.version)
    return company_out(company)


@router.delete(
    "/companies/{company_id}",
    response={204: None, **ERRORS},
    summary="Move a company to the recycle bin",
)
def companies_delete(request: HttpRequest, company_id: int) -> Any:
    company = selectors.company_get(user=_user(request), company_id=company_id)
    services.party_delete(actor=_user(request), obj=company)
    return Status(204, None)


@router.post(
    "/companies/{company_id}/restore",
    response={200: CompanyOut, **ERRORS},
    summary="Restore a company from the recycle bin",
)
def companies_restore(request: HttpRequest, company_id: int) -> Any:
    company = selectors.company_get(
        user=_user(request), company_id=company_id, include_deleted=True
    )
    services.party_restore(actor=_user(request), obj=company)
    return company_out(company)


# --- people ----------------------------------------------------------------------------------


@router.get("/people", response={200: PersonPage, **ERRORS}, summary="List people")
def people_list(request: HttpRequest, params: Query[ListQuery]) -> Any:
    qs = selectors.person_list(user=_user(request), filters=_filters(request, params))
    page = keyset_page(
        qs.select_related(None),
        sort=_sort(params.sort, selectors.PERSON_SORTS),
        cursor=params.cursor,
        size=_size(params.size),
    )
    ids = [p.pk for p in page.items]
    points, tags = _points_by_owner("person", ids), _tags_by_owner(Person, ids)
    jobs = _employments_by_person(ids)
    items = [
        person_out(p, points=points[p.pk], tags=tags[p.pk], employments=jobs[p.pk])
        for p in page.items
    ]
    return _json(request, {"items": items, "next_cursor": page.next_cursor})


@router.get(
    "/people/export",
    response=ERRORS,
    summary="Export people (CSV or XLSX)",
    description=EXPORT_DESCRIPTION,
    openapi_extra=EXPORT_OPENAPI,
)
def people_export(request: HttpRequest, params: Query[ExportQuery]) -> Any:
    from rapport.parties.views import party_export

    return party_export(
        user=_user(request),
        object_type="person",
        filters=_filters(request, params),
        sort=_sort(params.sort, selectors.PERSON_SORTS),
        fmt=params.format,
    )


@router.post(
    "/people",
    response={201: PersonOut, **WRITE_ERRORS},
    summary="Create a person",
    description="Answers 409 with the likely duplicates unless `force=true`.",
)
def people_create(request: HttpRequest, body: PersonWrite, force: bool = False) -> Any:
    person = services.person_create(
        actor=_user(request), data=_payload(body, partial=False), force=force
    )
    return Status(201, person_out(person))


@router.get("/people/{person_id}", response={200: PersonOut, **ERRORS}, summary="Get a person")
def people_get(request: HttpRequest, response: HttpResponse, person_id: int) -> Any:
    person = selectors.person_get(user=_user(request), person_id=person_id)
    _etag(response, person.version)
    return person_out(person)


@router.patch(
    "/people/{person_id}", response={200: PersonOut, **WRITE_ERRORS}, summary="Change a person"
)
def people_update(
    request: HttpRequest,
    response: HttpResponse,
    person_id: int,
    body: PersonPatch,
    force: bool = False,
) -> Any:
    person = selectors.person_get(user=_user(request), person_id=person_id)
    person = services.person_update(
        actor=_user(request),
        person=person,
        data=_payload(body, partial=True),
        version=_if_match(request),
        force=force,
    )
    _etag(response, person.version)
    return person_out(person)


@router.delete(
    "/people/{person_id}",
    response={204: None, **ERRORS},
    summary="Move a person to the recycle bin",
)
def people_delete(request: HttpRequest, person_id: int) -> Any:
    person = selectors.person_get(user=_user(request), person_id=person_id)
    services.party_delete(actor=_user(request), obj=person)
    return Status(204, None)


@router.post(
    "/people/{person_id}/restore",
    response={200: PersonOut, **ERRORS},
    summary="Restore a person from the recycle bin",
)
def people_restore(request: HttpRequest, person_id: int) -> Any:
    person = selectors.person_get(user=_user(request), person_id=person_id, include_deleted=True)
    services.party_restore(actor=_user(request), obj=person)
    return person_out(person)


# --- contact points, relations, duplicate check ---------------------------------------------


@router.get(
    "/contact-points",
    response={200: list[ContactPointOut], **ERRORS},
    summary="List contact points",
)
def contact_points_list(
    request: HttpRequest, company_id: int | None = None, person_id: int | None = None
) -> Any:
    qs = selectors.contact_point_list(
        user=_user(request), company_id=company_id, person_id=person_id
    )
    return list(qs[: settings.API_MAX_PAGE_SIZE])


@router.post(
    "/contact-points",
    response={201: ContactPointOut, **WRITE_ERRORS},
    summary="Add a phone, email or messenger to a company or person",
)
def contact_points_create(request: HttpRequest, body: ContactPointIn) -> Any:
    user = _user(request)
    if bool(body.company_id) == bool(body.person_id):
        raise FieldErrors.single("company_id", _("Give either company_id or person_id."))
    key = {"phone": "phones", "email": "emails", "messenger": "messengers"}[body.channel]
    item = {"raw": body.raw, "kind": body.kind} if body.kind else {"raw": body.raw}
    if body.company_id:
        if body.channel == "messenger":
            raise FieldErrors.single("channel", _("Companies have phones and emails."))
        company = selectors.company_get(user=user, company_id=body.company_id)
        existing = [
            {"raw": p.raw, "kind": p.kind}
            for p in company.contact_points.filter(channel=body.channel)
        ]
        company = services.company_update(
            actor=user, company=company, data={key: [*existing, item]}
        )
        owner: Company | Person = company
    else:
        person = selectors.person_get(user=user, person_id=body.person_id or 0)
        existing = [
            {"raw": p.raw, "kind": p.kind}
            for p in person.contact_points.filter(channel=body.channel)
        ]
        owner = services.person_update(actor=user, person=person, data={key: [*existing, item]})
    region = settings.DEFAULT_PHONE_REGION
    values = (
        {p.e164 or p.raw for p in parse_phones(body.raw, default_region=region)}
        if body.channel == "phone"
        else {body.raw.strip().lower(), body.raw.strip()}
    )
    point = (
        ContactPoint.objects.filter(
            **{"company" if isinstance(owner, Company) else "person": owner}
        )
        .filter(channel=body.channel)
        .order_by("-id")
    )
    found = next((p for p in point if (p.value or p.raw) in values or p.raw in values), None)
    return Status(201, found or point.first())


@router.post(
    "/company-relations",
    response={201: CompanyRelationOut, **WRITE_ERRORS},
    summary="Relate two companies",
)
def company_relations_create(request: HttpRequest, body: CompanyRelationIn) -> Any:
    user = _user(request)
    a = selectors.company_get(user=user, company_id=body.from_company_id)
    b = selectors.company_get(user=user, company_id=body.to_company_id)
    rel = services.company_relation_create(
        actor=user, from_company=a, to_company=b, kind=body.kind, note=body.note
    )
    return Status(201, rel)


@router.get(
    "/companies/{company_id}/relations",
    response={200: list[CompanyRelationOut], **ERRORS},
    summary="Relations of a company",
)
def company_relations_list(request: HttpRequest, company_id: int) -> Any:
    user = _user(request)
    company = selectors.company_get(user=user, company_id=company_id)
    return [rel for _d, rel, _o in selectors.company_relations(user=user, company=company)]


@router.delete(
    "/company-relations/{relation_id}",
    response={204: None, **ERRORS},
    summary="Remove a company relation",
)
def company_relations_delete(request: HttpRequest, relation_id: int) -> Any:
    user = _user(request)
    services.relation_delete(
        actor=user, relation=selectors.company_relation_get(user=user, relation_id=relation_id)
    )
    return Status(204, None)


@router.post(
    "/person-relations",
    response={201: PersonRelationOut, **WRITE_ERRORS},
    summary="Relate two people",
)
def person_relations_create(request: HttpRequest, body: PersonRelationIn) -> Any:
    user = _user(request)
    a = selectors.person_get(user=user, person_id=body.from_person_id)
    b = selectors.person_get(user=user, person_id=body.to_person_id)
    rel = services.person_relation_create(
        actor=user, from_person=a, to_person=b, kind=body.kind, note=body.note
    )
    return Status(201, rel)


@router.get(
    "/people/{person_id}/relations",
    response={200: list[PersonRelationOut], **ERRORS},
    summary="Relations of a person",
)
def person_relations_list(request: HttpRequest, person_id: int) -> Any:
    user = _user(request)
    person = selectors.person_get(user=user, person_id=person_id)
    return [rel for _d, rel, _o in selectors.person_relations(user=user, person=person)]


@router.delete(
    "/person-relations/{relation_id}",
    response={204: None, **ERRORS},
    summary="Remove a person relation",
)
def person_relations_delete(request: HttpRequest, relation_id: int) -> Any:
    user = _user(request)
    services.relation_delete(
        actor=user, relation=selectors.person_relation_get(user=user, relation_id=relation_id)
    )
    return Status(204, None)


@router.post(
    "/duplicates/check",
    response={200: list[DuplicateCandidateOut], **ERRORS},
    summary="Likely duplicates of a company or person about to be saved",
)
def duplicates_check(request: HttpRequest, body: DuplicateCheckIn) -> Any:
    region = settings.DEFAULT_PHONE_REGION
    phones = [
        p.e164 for raw in body.phones for p in parse_phones(raw, default_region=region) if p.e164
    ]
    tax_id = normalize_tax_id(body.tax_id, country=None).normalized if body.tax_id else ""
    cands = find_duplicates(
        object_type=body.object_type,
        name=body.name,
        tax_id=tax_id,
        phones=phones,
        emails=body.emails,
        exclude_id=body.exclude_id,
        user=_user(request),
    )
    return [c.as_dict() for c in cands]
