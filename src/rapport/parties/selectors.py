"""Every read of the directory, scoped to what the acting user may see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from rapport.accounts.models import Team, User
from rapport.core.customfields import custom_field_filter
from rapport.core.errors import FieldErrors
from rapport.core.scopes import scope_q
from rapport.parties.choices import CompanyKind
from rapport.parties.models import (
    Company,
    CompanyRelation,
    ContactPoint,
    Employment,
    Person,
    PersonRelation,
)

COMPANY_SORTS = {"name": "short_name", "created": "created_at", "id": "id", "city": "city"}
PERSON_SORTS = {"name": "last_name", "created": "created_at", "id": "id", "city": "city"}


@dataclass
class ListFilters:
    """Filters shared by the list pages and the API; names come from allowlists only."""

    q: str = ""
    kind: str = ""
    responsible_id: int | None = None
    team_id: int | None = None
    tag: str = ""
    created_from: dt.date | None = None
    created_to: dt.date | None = None
    company_id: int | None = None
    custom: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


def custom_filters_from(params: Mapping[str, str]) -> dict[str, str]:
    """`cf_<name>=value` query parameters as a custom-field filter (blank values ignored)."""
    return {
        key[3:]: value.strip()
        for key in params
        if key.startswith("cf_") and (value := str(params.get(key) or "")).strip()
    }


def _common_filters(qs: QuerySet[Any], f: ListFilters, object_type: str) -> QuerySet[Any]:
    qs = qs.filter(deleted_at__isnull=not f.deleted)
    if f.responsible_id:
        qs = qs.filter(responsible_id=f.responsible_id)
    if f.team_id:
        team = Team.objects.filter(pk=f.team_id).first()
        qs = qs.filter(team__path__startswith=team.path) if team else qs.none()
    if f.tag:
        qs = qs.filter(tags__name=f.tag)
    if f.created_from:
        qs = qs.filter(created_at__date__gte=f.created_from)
    if f.created_to:
        qs = qs.filter(created_at__date__lte=f.created_to)
    for name, value in f.custom.items():
        qs = qs.filter(custom_field_filter(object_type=object_type, name=name, value=value))
    if f.q:
        from rapport.core.search import search_candidates

        ids = search_candidates(q=f.q, object_types=[object_type]).values("object_id")
        qs = qs.filter(id__in=ids)
    return qs


def company_list(*, user: User, filters: ListFilters | None = None) -> QuerySet[Company]:
    f = filters or ListFilters()
    qs = Company.objects.filter(scope_q(user, "company", "view"))
    qs = _common_filters(qs, f, "company")
    if f.kind:
        if f.kind not in CompanyKind.values:
            raise FieldErrors.single("kind", _("Unknown kind."))
        qs = qs.filter(kinds_text__contains=f",{f.kind},")
    return qs.select_related("responsible")


def company_get(*, user: User, company_id: int, include_deleted: bool = False) -> Company:
    """The company if ``user`` may see it; 404 otherwise, exactly as if it did not exist."""
    qs = Company.objects.filter(scope_q(user, "company", "view"), pk=company_id)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    obj = qs.select_related("responsible", "team").first()
    if obj is None:
        raise Http404
    return obj


def person_list(*, user: User, filters: ListFilters | None = None) -> QuerySet[Person]:
    f = filters or ListFilters()
    qs = Person.objects.filter(scope_q(user, "person", "view"))
    qs = _common_filters(qs, f, "person")
    if f.company_id:
        qs = qs.filter(employments__company_id=f.company_id)
    return qs.select_related("responsible")


def person_get(*, user: User, person_id: int, include_deleted: bool = False) -> Person:
    qs = Person.objects.filter(scope_q(user, "person", "view"), pk=person_id)
    if not include_deleted:
        qs = qs.filter(deleted_at__isnull=True)
    obj = qs.select_related("responsible", "team").first()
    if obj is None:
        raise Http404
    return obj


def with_list_extras(qs: QuerySet[Any]) -> QuerySet[Any]:
    """Prefetch what list rows show: primary phone/email, tags."""
    return qs.prefetch_related(
        Prefetch("contact_points", queryset=ContactPoint.objects.filter(is_primary=True)),
        "tags",
    )


def company_people(*, user: User, company: Company) -> QuerySet[Employment]:
    visible = Person.objects.filter(scope_q(user, "person", "view"), deleted_at__isnull=True)
    return (
        Employment.objects.filter(company=company, person__in=visible)
        .select_related("person")
        .prefetch_related("person__contact_points")
        .order_by("-is_current", "person__last_name", "id")
    )


def person_companies(*, user: User, person: Person) -> QuerySet[Employment]:
    visible = Company.objects.filter(scope_q(user, "company", "view"), deleted_at__isnull=True)
    return (
        Employment.objects.filter(person=person, company__in=visible)
        .select_related("company")
        .order_by("-is_current", "company__short_name")
    )


def company_relations(
    *, user: User, company: Company
) -> list[tuple[str, CompanyRelation, Company]]:
    """(direction, relation, other company) for every relation to a company the user sees."""
    visible = Company.objects.filter(scope_q(user, "company", "view"), deleted_at__isnull=True)
    out: list[tuple[str, CompanyRelation, Company]] = []
    for rel in CompanyRelation.objects.filter(
        from_company=company, to_company__in=visible
    ).select_related("to_company"):
        out.append(("out", rel, rel.to_company))
    for rel in CompanyRelation.objects.filter(
        to_company=company, from_company__in=visible
    ).select_related("from_company"):
        out.append(("in", rel, rel.from_company))
    return out


def person_relations(*, user: User, person: Person) -> list[tuple[str, PersonRelation, Person]]:
    visible = Person.objects.filter(scope_q(user, "person", "view"), deleted_at__isnull=True)
    out: list[tuple[str, PersonRelation, Person]] = []
    for rel in PersonRelation.objects.filter(
        from_person=person, to_person__in=visible
    ).select_related("to_person"):
        out.append(("out", rel, rel.to_person))
    for rel in PersonRelation.objects.filter(
        to_person=person, from_person__in=visible
    ).select_related("from_person"):
        out.append(("in", rel, rel.from_person))
    return out


def company_relation_get(*, user: User, relation_id: int) -> CompanyRelation:
    visible = Company.objects.filter(scope_q(user, "company", "view"), deleted_at__isnull=True)
    rel = (
        CompanyRelation.objects.filter(
            pk=relation_id, from_company__in=visible, to_company__in=visible
        )
        .select_related("from_company")
        .first()
    )
    if rel is None:
        raise Http404
    return rel


def person_relation_get(*, user: User, relation_id: int) -> PersonRelation:
    visible = Person.objects.filter(scope_q(user, "person", "view"), deleted_at__isnull=True)
    rel = (
        PersonRelation.objects.filter(
            pk=relation_id, from_person__in=visible, to_person__in=visible
        )
        .select_related("from_person")
        .first()
    )
    if rel is None:
        raise Http404
    return rel


def recycle_bin(*, user: User) -> tuple[QuerySet[Company], QuerySet[Person]]:
    if not user.is_rapport_admin:
        return Company.objects.none(), Person.objects.none()
    return (
        Company.objects.filter(deleted_at__isnull=False)
        .select_related("deleted_by")
        .order_by("-deleted_at"),
        Person.objects.filter(deleted_at__isnull=False)
        .select_related("deleted_by")
        .order_by("-deleted_at"),
    )


def contact_point_list(
    *, user: User, company_id: int | None = None, person_id: int | None = None
) -> QuerySet[ContactPoint]:
    companies = Company.objects.filter(scope_q(user, "company", "view"), deleted_at__isnull=True)
    people = Person.objects.filter(scope_q(user, "person", "view"), deleted_at__isnull=True)
    qs = ContactPoint.objects.filter(Q(company__in=companies) | Q(person__in=people))
    if company_id:
        qs = qs.filter(company_id=company_id)
    if person_id:
        qs = qs.filter(person_id=person_id)
    return qs.order_by("id")
