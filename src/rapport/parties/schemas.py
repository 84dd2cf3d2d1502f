"""API schemas for the directory. Write schemas forbid unknown keys (no mass assignment, R3)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

from rapport.parties.choices import (
    CompanyKind,
    CompanyRelationKind,
    EmploymentRole,
    EntityType,
    MessengerKind,
    PersonRelationKind,
    PhoneKind,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneIn(Strict):
    raw: str = Field(max_length=200, description="As typed; several numbers in one value are split")
    kind: PhoneKind = PhoneKind.MOBILE


class EmailIn(Strict):
    raw: str = Field(max_length=200)
    kind: str = Field("work", max_length=12)


class MessengerIn(Strict):
    raw: str = Field(max_length=200)
    kind: MessengerKind = MessengerKind.OTHER


class BankAccountIn(Strict):
    bank_name: str = Field(max_length=200)
    account_number: str = Field(max_length=40)
    bic: str = Field("", max_length=20)
    correspondent_account: str = Field("", max_length=40)
    currency: str = Field("", max_length=3)


class ContactPointOut(Schema):
    id: int
    channel: str
    kind: str
    raw: str
    value: str
    extension: str
    valid: bool
    is_primary: bool


class CompanyWrite(Strict):
    short_name: str = Field(max_length=200)
    full_name: str = Field("", max_length=400)
    entity_type: EntityType = EntityType.LEGAL_ENTITY
    legal_form: str = Field("", max_length=40)
    tax_id: str = Field("", max_length=40)
    tax_country: str = Field("", max_length=2)
    registration_number: str = Field("", max_length=40)
    kinds: list[CompanyKind] = Field(default_factory=list)
    industry: str = Field("", max_length=120)
    website: str = Field("", max_length=200)
    legal_address: str = Field("", max_length=2000)
    postal_address: str = Field("", max_length=2000)
    country: str = Field("", max_length=2)
    city: str = Field("", max_length=120)
    client_since: dt.date | None = None
    responsible_id: int | None = None
    source: str = Field("", max_length=100)
    notes: str = Field("", max_length=10000)
    tags: list[str] = Field(default_factory=list)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    phones: list[PhoneIn] = Field(default_factory=list)
    emails: list[EmailIn] = Field(default_factory=list)
    bank_accounts: list[BankAccountIn] = Field(default_factory=list)
    default_region: str | None = Field(
        None, max_length=2, description="Region for national numbers"
    )


class CompanyPatch(Strict):
    short_name: str | None = Field(None, max_length=200)
    full_name: str | None = Field(None, max_length=400)
    entity_type: EntityType | None = None
    legal_form: str | None = Field(None, max_length=40)
    tax_id: str | None = Field(None, max_length=40)
    tax_country: str | None = Field(None, max_length=2)
    registration_number: str | None = Field(None, max_length=40)
    kinds: list[CompanyKind] | None = None
    industry: str | None = Field(None, max_length=120)
    website: str | None = Field(None, max_length=200)
    legal_address: str | None = Field(None, max_length=2000)
    postal_address: str | None = Field(None, max_length=2000)
    country: str | None = Field(None, max_length=2)
    city: str | None = Field(None, max_length=120)
    client_since: dt.date | None = None
    responsible_id: int | None = None
    source: str | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=10000)
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    phones: list[PhoneIn] | None = None
    emails: list[EmailIn] | None = None
    default_region: str | None = Field(None, max_length=2)


class CompanyOut(Schema):
    id: int
    version: int
    short_name: str
    full_name: str
    entity_type: str
    legal_form: str
    tax_id: str
    tax_country: str
    registration_number: str
    kinds: list[str]
    industry: str
    website: str
    legal_address: str
    postal_address: str
    country: str
    city: str
    client_since: dt.date | None
    responsible_id: int | None
    team_id: int | None
    source: str
    notes: str
    tags: list[str]
    custom_fields: dict[str, Any]
    contact_points: list[ContactPointOut]
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None


class EmploymentIn(Strict):
    company_id: int
    position: str = Field("", max_length=150)
    role: EmploymentRole = EmploymentRole.OTHER


class EmploymentOut(Schema):
    company_id: int
    company: str
    position: str
    role: str
    is_current: bool


class PersonWrite(Strict):
    first_name: str = Field("", max_length=100)
    last_name: str = Field("", max_length=100)
    middle_name: str = Field("", max_length=100)
    birthday: dt.date | None = None
    time_zone: str = Field("", max_length=64, description="Empty: follow the first valid phone")
    city: str = Field("", max_length=120)
    address: str = Field("", max_length=2000)
    responsible_id: int | None = None
    source: str = Field("", max_length=100)
    notes: str = Field("", max_length=10000)
    tags: list[str] = Field(default_factory=list)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    phones: list[PhoneIn] = Field(default_factory=list)
    emails: list[EmailIn] = Field(default_factory=list)
    messengers: list[MessengerIn] = Field(default_factory=list)
    employments: list[EmploymentIn] = Field(default_factory=list)
    default_region: str | None = Field(None, max_length=2)


class PersonPatch(Strict):
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    middle_name: str | None = Field(None, max_length=100)
    birthday: dt.date | None = None
    time_zone: str | None = Field(None, max_length=64)
    city: str | None = Field(None, max_length=120)
    address: str | None = Field(None, max_length=2000)
    responsible_id: int | None = None
    source: str | None = Field(None, max_length=100)
    notes: str | None = Field(None, max_length=10000)
    tags: list[str] | None = None
    custom_fields: dict[str, Any] | None = None
    phones: list[PhoneIn] | None = None
    emails: list[EmailIn] | None = None
    messengers: list[MessengerIn] | None = None
    employments: list[EmploymentIn] | None = None
    default_region: str | None = Field(None, max_length=2)


class PersonOut(Schema):
    id: int
    version: int
    first_name: str
    last_name: str
    middle_name: str
    full_name: str
    birthday: dt.date | None
    time_zone: str
    city: str
    address: str
    responsible_id: int | None
    team_id: int | None
    source: str
    notes: str
    tags: list[str]
    custom_fields: dict[str, Any]
    contact_points: list[ContactPointOut]
    employments: list[EmploymentOut]
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None


class CompanyPage(Schema):
    items: list[CompanyOut]
    next_cursor: str | None


class PersonPage(Schema):
    items: list[PersonOut]
    next_cursor: str | None


class ContactPointIn(Strict):
    company_id: int | None = None
    person_id: int | None = None
    channel: str = Field(pattern="^(phone|email|messenger)$")
    raw: str = Field(max_length=200)
    kind: str = Field("", max_length=12)


class CompanyRelationIn(Strict):
    from_company_id: int
    to_company_id: int
    kind: CompanyRelationKind
    note: str = Field("", max_length=300)


class CompanyRelationOut(Schema):
    id: int
    from_company_id: int
    to_company_id: int
    kind: str
    note: str


class PersonRelationIn(Strict):
    from_person_id: int
    to_person_id: int
    kind: PersonRelationKind
    note: str = Field("", max_length=300)


class PersonRelationOut(Schema):
    id: int
    from_person_id: int
    to_person_id: int
    kind: str
    note: str


class DuplicateCheckIn(Strict):
    object_type: str = Field(pattern="^(company|person)$")
    name: str = Field(max_length=400)
    tax_id: str = Field("", max_length=40)
    phones: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    exclude_id: int | None = None


class DuplicateCandidateOut(Schema):
    object_type: str
    id: int | None
    title: str
    score: int
    reasons: list[str]
    responsible: str


class ErrorOut(Schema):
    error: dict[str, Any]
