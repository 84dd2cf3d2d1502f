"""API schemas of lead routing and absences. Write schemas forbid unknown keys (R3): ids,
versions, statuses, creators and handover times are the server's to set.

Only shapes and types are checked here; the rules (a target, amounts in order, an end after
the start, a deputy who is someone else and present) are the services'.
"""

from __future__ import annotations

import datetime as dt
import decimal

from ninja import Schema
from pydantic import Field

from rapport.parties.schemas import Strict
from rapport.routing.models import AbsenceKind, AbsenceStatus, HandoverObject, RoutingMethod
from rapport.sales.choices import LeadChannel


class RuleWrite(Strict):
    """A routing rule. Empty conditions match every lead; give a manager or a team."""

    name: str | None = Field(None, max_length=150)
    order: int | None = Field(None, ge=0, le=1_000_000)
    is_active: bool | None = None
    countries: list[str] | None = Field(
        None,
        max_length=300,
        description="ISO 3166 codes (RU, AZ, IT …) of the lead's phone or of its company's "
        "address.",
    )
    phone_prefixes: list[str] | None = Field(
        None, max_length=300, description='Phone prefixes in E.164, e.g. "+7495" (Moscow).'
    )
    places: list[str] | None = Field(
        None,
        max_length=300,
        description="Cities or regions looked for in the city and addresses of the lead's "
        "company and person, any case; any matches.",
    )
    channels: list[LeadChannel] | None = Field(None, max_length=20)
    sources: list[str] | None = Field(
        None, max_length=300, description="Matched against source and utm_source, any case."
    )
    amount_min: decimal.Decimal | None = None
    amount_max: decimal.Decimal | None = None
    products: list[str] | None = Field(
        None,
        max_length=300,
        description="Words looked for in the lead's product or service, any case; any matches.",
    )
    target_user_id: int | None = None
    target_team_id: int | None = None
    method: RoutingMethod | None = Field(None, description="For a team: how a member is chosen.")


class RuleOut(Schema):
    id: int
    name: str
    order: int
    is_active: bool
    countries: list[str]
    phone_prefixes: list[str]
    places: list[str]
    channels: list[str]
    sources: list[str]
    amount_min: str | None
    amount_max: str | None
    products: list[str]
    target_user_id: int | None
    target_team_id: int | None
    method: str
    sentence: str = Field(description="The rule as a sentence.")
    version: int


class RuleOrderIn(Strict):
    rule_ids: list[int] = Field(max_length=10_000, description="Every rule, in the new order.")


class AbsenceWrite(Strict):
    user_id: int | None = Field(None, description="Who is away; yourself when omitted.")
    starts_at: dt.datetime | None = Field(
        None, description="An unplanned absence without a start starts now."
    )
    ends_at: dt.datetime | None = None
    deputy_id: int | None = None
    kind: AbsenceKind | None = None
    note: str | None = Field(None, max_length=300)
    hand_over_tasks: bool | None = None
    hand_over_leads: bool | None = None
    hand_over_deals: bool | None = None


class AbsenceOut(Schema):
    id: int
    user_id: int
    user_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    deputy_id: int | None
    kind: str
    note: str
    status: AbsenceStatus
    hand_over_tasks: bool
    hand_over_leads: bool
    hand_over_deals: bool
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    version: int


class HandoverOut(Schema):
    id: int
    object_type: HandoverObject
    object_id: int
    object_repr: str
    from_user_id: int
    to_user_id: int
    at: dt.datetime
    returned_at: dt.datetime | None
    can_take_back: bool
    why_not: str = Field(description="Why it cannot be taken back; empty when it can.")


class NotHandedOverOut(Schema):
    object_type: str
    object_id: int
    repr: str
    why: str


class AbsenceDetailOut(AbsenceOut):
    handovers: list[HandoverOut]
    not_handed_over: list[NotHandedOverOut]


class TakeBackIn(Strict):
    handover_ids: list[int] | None = Field(
        None, max_length=10_000, description="The items to take back; all when omitted."
    )


class TakeBackOut(Schema):
    taken: list[HandoverOut]
    kept: list[HandoverOut]
