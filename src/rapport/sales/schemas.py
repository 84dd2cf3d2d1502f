"""API schemas for the sales process. Write schemas forbid unknown keys (no mass assignment, R3):
ids, versions, teams, creators, statuses and stage timestamps are the server's to set.

Only shapes and types are checked here; every business rule (negative amounts, currencies,
strict-pipeline order, entry conditions, loss reasons) is the services' and answers from there.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from ninja import Schema
from pydantic import Field

from rapport.parties.schemas import DuplicateCandidateOut, Strict
from rapport.sales.choices import LeadChannel, LeadStatus, PipelineKind

Amount = decimal.Decimal | None


class Ref(Schema):
    """A related record as a reference: its id and a name to show."""

    id: int
    name: str


# --- pipelines, stages, loss reasons ----------------------------------------------------------


class StageOut(Schema):
    id: int
    pipeline_id: int
    name: str
    order: int
    color: str
    probability: int
    time_limit_hours: int | None
    required_fields: list[str]
    is_active: bool


class PipelineOut(Schema):
    id: int
    version: int
    name: str
    kind: str
    order: int
    is_active: bool
    no_contact_days: int | None = Field(
        None, description="Remind the manager after this many days without contact"
    )
    stages: list[StageOut] = Field(description="Ordered as on the board")


class PipelineWrite(Strict):
    name: str = Field(max_length=100)
    kind: PipelineKind = PipelineKind.FREE
    order: int = Field(100, ge=0, le=1_000_000)
    is_active: bool = True
    no_contact_days: int | None = Field(None, ge=1, le=365)


class PipelinePatch(Strict):
    name: str | None = Field(None, max_length=100)
    kind: PipelineKind | None = None
    order: int | None = Field(None, ge=0, le=1_000_000)
    is_active: bool | None = None
    no_contact_days: int | None = Field(None, ge=1, le=365)


class StageWrite(Strict):
    name: str = Field(max_length=100)
    order: int | None = Field(None, ge=0, le=1_000_000, description="Empty: after the last")
    color: str = Field("#4f7cff", max_length=7)
    probability: int = 0
    time_limit_hours: int | None = None
    required_fields: list[str] = Field(
        default_factory=list,
        description="Deal fields required to enter: amount, company, person, contact, "
        "expected_close, source, or cf:<custom field name>",
    )


class StagePatch(Strict):
    name: str | None = Field(None, max_length=100)
    order: int | None = Field(None, ge=0, le=1_000_000)
    color: str | None = Field(None, max_length=7)
    probability: int | None = None
    time_limit_hours: int | None = None
    required_fields: list[str] | None = None
    is_active: bool | None = None


class StageOrderIn(Strict):
    stage_ids: list[int] = Field(description="Every stage of the pipeline once, in the new order")


class LossReasonOut(Schema):
    id: int
    name: str
    order: int
    is_active: bool


class LossReasonWrite(Strict):
    name: str = Field(max_length=100)
    is_active: bool = True


# --- deals ------------------------------------------------------------------------------------


class DealOut(Schema):
    id: int
    version: int
    title: str
    company: Ref | None
    person: Ref | None
    contact: Ref | None
    pipeline_id: int
    stage: Ref | None
    amount: str | None = Field(description="Decimal as a string")
    currency: str
    expected_close: dt.date | None
    responsible: Ref | None
    team_id: int | None
    coworker_ids: list[int]
    source: str
    lead_id: int | None
    status: str
    loss_reason: Ref | None
    loss_comment: str
    won_amount: str | None
    closed_at: dt.datetime | None
    stage_entered_at: dt.datetime
    days_in_stage: int
    overdue: bool
    custom_fields: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None


class DealPage(Schema):
    items: list[DealOut]
    next_cursor: str | None


class DealWrite(Strict):
    title: str = Field(max_length=200)
    company_id: int | None = None
    person_id: int | None = None
    contact_id: int | None = None
    pipeline_id: int | None = Field(None, description="Empty: the first active pipeline")
    stage_id: int | None = Field(
        None, description="Empty: the first stage (a strict pipeline always starts there)"
    )
    amount: Amount = None
    currency: str | None = Field(None, max_length=3, description="Empty: the default currency")
    expected_close: dt.date | None = None
    responsible_id: int | None = None
    coworker_ids: list[int] = Field(default_factory=list)
    source: str = Field("", max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class DealPatch(Strict):
    """Fields of a deal; its stage and status change by moves (move, win, lose, reopen)."""

    title: str | None = Field(None, max_length=200)
    company_id: int | None = None
    person_id: int | None = None
    contact_id: int | None = None
    amount: Amount = None
    currency: str | None = Field(None, max_length=3)
    expected_close: dt.date | None = None
    responsible_id: int | None = None
    coworker_ids: list[int] | None = None
    source: str | None = Field(None, max_length=100)
    custom_fields: dict[str, Any] | None = None


class MoveFields(Strict):
    """Entry fields a stage asks for, filled in the same step as the move."""

    company_id: int | None = None
    person_id: int | None = None
    contact_id: int | None = None
    amount: Amount = None
    expected_close: dt.date | None = None
    source: str | None = Field(None, max_length=100)
    custom_fields: dict[str, Any] | None = None


class MoveIn(Strict):
    stage_id: int
    version: int | None = Field(None, description='What you saw; or send `If-Match: "<version>"`')
    fields: MoveFields | None = None


class WinIn(Strict):
    amount: Amount = Field(None, description="The actual amount; empty: the planned one")
    version: int | None = None


class LoseIn(Strict):
    loss_reason_id: int | None = Field(None, description="Required: one of GET /loss-reasons")
    comment: str = Field("", max_length=2000)
    version: int | None = None


class VersionIn(Strict):
    version: int | None = None


class StageChangeOut(Schema):
    id: int
    from_stage: Ref | None
    to_stage: Ref | None
    from_status: str = Field(description="Empty for the deal's creation")
    to_status: str
    at: dt.datetime
    by: Ref | None
    seconds_in_previous: int | None
    limit_exceeded: bool
    amount: str | None


class ColumnOut(Schema):
    stage: StageOut
    count: int
    total: str = Field(description="Sum of the column's amounts, decimal as a string")
    deals: list[DealOut]
    next_cursor: str | None


class BoardOut(Schema):
    pipeline: PipelineOut
    columns: list[ColumnOut]


# --- leads ------------------------------------------------------------------------------------


class LeadOut(Schema):
    id: int
    version: int
    name: str
    phone: str
    phone_e164: str
    email: str
    company_name: str
    address: str
    text: str
    interest: str
    amount: str | None
    currency: str
    channel: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    status: str
    reject_reason: str
    responsible: Ref | None
    team_id: int | None
    source: str
    company: Ref | None
    person: Ref | None
    converted_at: dt.datetime | None
    custom_fields: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None


class LeadPage(Schema):
    items: list[LeadOut]
    next_cursor: str | None


class LeadWrite(Strict):
    name: str = Field("", max_length=200)
    phone: str = Field("", max_length=100)
    email: str = Field("", max_length=254)
    company_name: str = Field("", max_length=300)
    address: str = Field("", max_length=300, description="City or address, as given.")
    text: str = Field("", max_length=10000)
    interest: str = Field("", max_length=200)
    amount: Amount = None
    currency: str | None = Field(None, max_length=3)
    channel: LeadChannel = LeadChannel.MANUAL
    utm_source: str = Field("", max_length=100)
    utm_medium: str = Field("", max_length=100)
    utm_campaign: str = Field("", max_length=100)
    responsible_id: int | None = None
    source: str = Field("", max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class LeadPatch(Strict):
    name: str | None = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=100)
    email: str | None = Field(None, max_length=254)
    company_name: str | None = Field(None, max_length=300)
    address: str | None = Field(None, max_length=300)
    text: str | None = Field(None, max_length=10000)
    interest: str | None = Field(None, max_length=200)
    amount: Amount = None
    currency: str | None = Field(None, max_length=3)
    channel: LeadChannel | None = None
    utm_source: str | None = Field(None, max_length=100)
    utm_medium: str | None = Field(None, max_length=100)
    utm_campaign: str | None = Field(None, max_length=100)
    status: LeadStatus | None = Field(
        None, description="new, in_work or qualified; convert and reject have their own calls"
    )
    responsible_id: int | None = None
    source: str | None = Field(None, max_length=100)
    custom_fields: dict[str, Any] | None = None


class LeadDealIn(Strict):
    """The deal a conversion opens; empty fields come from the lead."""

    title: str | None = Field(None, max_length=200)
    pipeline_id: int | None = None
    stage_id: int | None = None
    amount: Amount = None
    currency: str | None = Field(None, max_length=3)
    expected_close: dt.date | None = None


class LeadConvertIn(Strict):
    company_id: int | None = Field(None, description="Link this company instead of a match")
    person_id: int | None = Field(None, description="Link this person instead of a match")
    create_company: bool = Field(True, description="Create the company when none is found")
    create_person: bool = Field(True, description="Create the person when none is found")
    deal: LeadDealIn | None = None
    version: int | None = None


class LeadRejectIn(Strict):
    reason: str = Field("", max_length=300)
    version: int | None = None


class LeadMatchesOut(Schema):
    company: list[DuplicateCandidateOut]
    person: list[DuplicateCandidateOut]


# --- funnel -----------------------------------------------------------------------------------


class FunnelStageOut(Schema):
    stage: Ref
    entered: int
    amount: str
    conversion: float | None = Field(description="Share of entries that reached the next stage")
    lost: int
    lost_amount: str
    avg_hours: float | None
    limit_hours: int | None
    over_limit: int


class FunnelReasonOut(Schema):
    reason: str
    count: int
    amount: str


class FunnelGroupOut(Schema):
    id: int | str | None
    name: str
    open: int
    won: int
    lost: int
    won_amount: str


class FunnelOut(Schema):
    pipeline: Ref
    date_from: dt.date
    date_to: dt.date
    stages: list[FunnelStageOut]
    created: int
    won: int
    won_amount: str
    lost: int
    lost_amount: str
    overall: float | None = Field(description="Won / deals that entered the first stage")
    by_reason: list[FunnelReasonOut]
    by_manager: list[FunnelGroupOut]
    by_team: list[FunnelGroupOut]
    by_source: list[FunnelGroupOut]
