"""Who gets a new lead, and what happens to a user's work while they are away.

Public interface (the automation engine's "assign the responsible manager" action calls
these, as do the ``lead.created`` handler, the pages and the API):

- ``lead_route(*, lead, actor=None, at=None, dry_run=False) -> User | None``: the manager a
  lead should go to — a returning client's manager, else the first matching routing rule.
- ``assignee_pick(*, team, method, at=None, exclude=(), cursor_key=None, dry_run=False)``:
  a present member of a team by round-robin or least busy.
- ``user_is_absent(user, at=None)`` and ``present(users, at=None)``: presence checks.
- ``lead_assign_by_routing(*, lead)``: route a lead without a manager and assign it.
- absences: ``absence_create``, ``absence_update``, ``absence_cancel``, ``absence_start``,
  ``absence_end``, ``absences_due`` (the worker's job) and ``absence_take_back``.

Every write is one transaction, audited; absences record outbox events.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from django.db import transaction
from django.db.models import Count, F, Max, Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import Team, User
from rapport.activities.models import Interaction, NotificationKind, Task, TaskStatus
from rapport.activities.services import notify, task_update
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.errors import FieldErrors, PermissionDenied, ServiceError, StaleVersion
from rapport.core.events import event_record
from rapport.core.ownership import parse_when
from rapport.core.phones import phone_region
from rapport.core.scopes import SCOPE_ALL, SCOPE_TEAM
from rapport.routing.models import (
    Absence,
    AbsenceKind,
    AbsenceStatus,
    Handover,
    HandoverObject,
    RoutingCursor,
    RoutingMethod,
    RoutingRule,
)
from rapport.routing.selectors import absence_scope, is_head_of_sales
from rapport.sales.choices import DealStatus, LeadChannel, LeadStatus
from rapport.sales.models import Deal, Lead
from rapport.sales.services import deal_update, lead_update

OPEN_LEAD = [LeadStatus.NEW, LeadStatus.IN_WORK, LeadStatus.QUALIFIED]
OPEN_TASK = [TaskStatus.OPEN, TaskStatus.IN_PROGRESS]
RULE_FIELDS = [
    "name",
    "order",
    "is_active",
    "countries",
    "phone_prefixes",
    "places",
    "channels",
    "sources",
    "amount_min",
    "amount_max",
    "products",
    "target_user",
    "target_team",
    "method",
]
ABSENCE_FIELDS = [
    "user",
    "starts_at",
    "ends_at",
    "deputy",
    "kind",
    "note",
    "status",
    "hand_over_tasks",
    "hand_over_leads",
    "hand_over_deals",
]
MAX_AMOUNT = decimal.Decimal("99999999999999.99")
_PREFIX_RE = re.compile(r"^\+[1-9][0-9]{0,14}$")


# --- presence ---------------------------------------------------------------------------------


def _ids(users: Iterable[User | int]) -> list[int]:
    return [u if isinstance(u, int) else int(u.pk) for u in users]


def absent_user_ids(user_ids: Iterable[int], at: dt.datetime | None = None) -> set[int]:
    """Which of ``user_ids`` are away at ``at`` (now by default).

    The absence's times decide, not whether the worker has started it yet: a scheduled
    absence whose start has passed counts, an ended or cancelled one does not.
    """
    at = at or timezone.now()
    ids = list(user_ids)
    if not ids:
        return set()
    return set(
        Absence.objects.filter(
            user_id__in=ids,
            status__in=[AbsenceStatus.SCHEDULED, AbsenceStatus.ACTIVE],
            starts_at__lte=at,
            ends_at__gt=at,
        ).values_list("user_id", flat=True)
    )


def user_is_absent(user: User, at: dt.datetime | None = None) -> bool:
    """Whether ``user`` is on an absence at ``at`` (now by default)."""
    return bool(absent_user_ids([user.pk], at))


def present(users: Iterable[User], at: dt.datetime | None = None) -> list[User]:
    """The active users of ``users`` who are not away at ``at``, in the given order."""
    active = [u for u in users if u.is_active]
    away = absent_user_ids([u.pk for u in active], at)
    return [u for u in active if u.pk not in away]


def team_members(team: Team) -> list[User]:
    """Active users of ``team`` and its sub-teams, by id."""
    return list(
        User.objects.filter(team__path__startswith=team.path, is_active=True)
        .select_related("team")
        .order_by("id")
    )


def workload(user_ids: Iterable[int]) -> dict[int, int]:
    """Open leads + open deals + open tasks per user (three grouped queries)."""
    ids = list(user_ids)
    counts = dict.fromkeys(ids, 0)
    if not ids:
        return counts
    open_work = (
        Lead.objects.filter(responsible_id__in=ids, status__in=OPEN_LEAD, deleted_at__isnull=True),
        Deal.objects.filter(
            responsible_id__in=ids, status=DealStatus.OPEN, deleted_at__isnull=True
        ),
        Task.objects.filter(responsible_id__in=ids, status__in=OPEN_TASK, deleted_at__isnull=True),
    )
    for qs in open_work:
        for row in qs.order_by().values("responsible_id").annotate(n=Count("id")):
            counts[row["responsible_id"]] += row["n"]
    return counts


# --- picking a member of a team ---------------------------------------------------------------


def _cursor_locked(key: str) -> RoutingCursor:
    """The cursor row for ``key``, locked until the caller's transaction ends.

    On PostgreSQL a second transaction waits here for the first to commit and then reads
    its turn; SQLite's IMMEDIATE transactions already serialise writers.
    """
    RoutingCursor.objects.get_or_create(key=key)
    return RoutingCursor.objects.select_for_update().get(key=key)


def assignee_pick(
    *,
    team: Team,
    method: str,
    at: dt.datetime | None = None,
    exclude: Iterable[User | int] = (),
    cursor_key: str | None = None,
    dry_run: bool = False,
) -> User | None:
    """A present member of ``team`` (with its sub-teams) to give a new piece of work to.

    ``method``: "round_robin" — the next present member after the last one served, by id,
    taken under a row lock on the cursor ``cursor_key`` (default "team:<id>"), so two
    concurrent callers never take the same turn; "least_busy" — the present member with
    the fewest open leads + open deals + open tasks (ties: lowest id). Absent and inactive
    users, and those in ``exclude``, are skipped. None when nobody is present.
    ``dry_run`` answers without moving the round-robin cursor.
    Call it inside the transaction that assigns the work, so the turn and the assignment
    commit together.
    """
    if method not in RoutingMethod.values:
        raise FieldErrors.single("method", _("Choose round-robin or least busy."))
    skip = set(_ids(exclude))
    candidates = [u for u in present(team_members(team), at) if u.pk not in skip]
    if not candidates:
        return None
    key = cursor_key or f"team:{team.pk}"
    with transaction.atomic():
        cursor = RoutingCursor.objects.filter(key=key).first() if dry_run else _cursor_locked(key)
        if method == RoutingMethod.LEAST_BUSY:
            load = workload(u.pk for u in candidates)
            chosen = min(candidates, key=lambda u: (load[u.pk], u.pk))
        else:
            last = cursor.last_user_id if cursor and cursor.last_user_id else 0
            chosen = next((u for u in candidates if u.pk > last), candidates[0])
        if cursor is not None and not dry_run:
            RoutingCursor.objects.filter(pk=cursor.pk).update(
                last_user_id=chosen.pk, turns=F("turns") + 1, updated_at=timezone.now()
            )
    return chosen


# --- the routing table ------------------------------------------------------------------------


def _fold(text: str) -> str:
    return (text or "").casefold().strip()


def _lead_address(lead: Lead) -> tuple[set[str], str]:
    """The countries and the folded address text of the lead (as given) and of its
    company and person."""
    countries: set[str] = set()
    texts: list[str] = [lead.address]
    company = lead.company if lead.company_id else None
    person = lead.person if lead.person_id else None
    if company is not None:
        countries.add((company.country or "").upper())
        texts += [company.city, company.legal_address, company.postal_address]
    if person is not None:
        texts += [person.city, person.address]
    return countries - {""}, " | ".join(_fold(t) for t in texts if t)


def _region_matches(rule: RoutingRule, lead: Lead) -> bool:
    e164 = lead.phone_e164 or ""
    wanted = set(rule.countries or [])
    if e164 and phone_region(e164) in wanted:
        return True
    if e164 and any(e164.startswith(p) for p in rule.phone_prefixes or []):
        return True
    if not (wanted or rule.places):
        return False
    countries, address = _lead_address(lead)
    if countries & wanted:
        return True
    return bool(address) and any(_fold(p) in address for p in rule.places or [] if _fold(p))


def rule_matches(rule: RoutingRule, lead: Lead) -> bool:
    """Whether every condition of ``rule`` holds for ``lead`` (empty conditions hold)."""
    if (rule.countries or rule.phone_prefixes or rule.places) and not _region_matches(rule, lead):
        return False
    if rule.channels and lead.channel not in rule.channels:
        return False
    if rule.sources:
        wanted = {_fold(s) for s in rule.sources}
        if not ({_fold(lead.source), _fold(lead.utm_source)} - {""}) & wanted:
            return False
    if rule.amount_min is not None or rule.amount_max is not None:
        if lead.amount is None:
            return False
        if rule.amount_min is not None and lead.amount < rule.amount_min:
            return False
        if rule.amount_max is not None and lead.amount > rule.amount_max:
            return False
    if rule.products:
        interest = _fold(lead.interest)
        if not interest or not any(_fold(p) in interest for p in rule.products if _fold(p)):
            return False
    return True


def _last_dealt_with(lead: Lead) -> list[int]:
    """Managers of the lead's company/person: who dealt with them last, then the records'."""
    parties = Q(pk__in=[])
    if lead.company_id:
        parties |= Q(company_id=lead.company_id)
    if lead.person_id:
        parties |= Q(person_id=lead.person_id)
    interaction = (
        Interaction.objects.filter(parties, deleted_at__isnull=True, responsible__isnull=False)
        .order_by("-at", "-id")
        .values("responsible_id", "at")
        .first()
    )
    deal = (
        Deal.objects.filter(parties, deleted_at__isnull=True, responsible__isnull=False)
        .order_by("-updated_at", "-id")
        .values("responsible_id", "updated_at")
        .first()
    )
    dealt = sorted(
        [(i["at"], i["responsible_id"]) for i in [interaction] if i]
        + [(d["updated_at"], d["responsible_id"]) for d in [deal] if d],
        reverse=True,
    )
    chain = [uid for _at, uid in dealt]
    if lead.person_id and lead.person and lead.person.responsible_id:
        chain.append(lead.person.responsible_id)
    if lead.company_id and lead.company and lead.company.responsible_id:
        chain.append(lead.company.responsible_id)
    return list(dict.fromkeys(chain))


def returning_client_manager(lead: Lead, at: dt.datetime | None = None) -> User | None:
    """For a lead linked to a known company or person: the manager who dealt with them last
    (latest interaction or deal), else the record's responsible manager — the first of these
    who is active and present. None for a new client or when none of them is present."""
    if not lead.company_id and not lead.person_id:
        return None
    chain = _last_dealt_with(lead)
    if not chain:
        return None
    users = {u.pk: u for u in User.objects.filter(pk__in=chain).select_related("team")}
    here = {u.pk for u in present(users.values(), at)}
    return next((users[uid] for uid in chain if uid in here), None)


def heads_of_sales() -> list[User]:
    """Active administrators and users whose role may assign every lead."""
    return list(
        User.objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(role__is_admin=True)
            | Q(role__permissions__lead__assign=SCOPE_ALL)
        )
        .order_by("id")
    )


def _notify_unrouted(lead: Lead, at: dt.datetime | None) -> int:
    """Tell the present heads of sales (all of them if none is present), once per lead."""
    heads = heads_of_sales()
    to = present(heads, at) or heads
    sent = 0
    for head in to:
        note = notify(
            user_id=head.pk,
            kind=NotificationKind.LEAD_UNROUTED,
            key=f"lead_unrouted:{lead.pk}:{head.pk}",
            title=_(
                "New lead “%(lead)s” is unassigned: no routing rule matched, or nobody it "
                "names is present"
            )
            % {"lead": str(lead)},
            body=_("Assign it on the lead's page, or check the routing table and absences."),
            url=f"/leads/{lead.pk}/",
        )
        sent += note is not None
    return sent


@transaction.atomic
def lead_route(
    *,
    lead: Lead,
    actor: User | None = None,
    at: dt.datetime | None = None,
    dry_run: bool = False,
) -> User | None:
    """Who should get ``lead`` — without assigning it.

    1. A returning client (the lead is linked to a known company or person) goes to the
       manager who dealt with them last, if present.
    2. Else the first active routing rule (by order) that matches and has a present
       target: its manager, or a member of its team by round-robin or least busy.
    3. Else None: the lead stays unassigned and the heads of sales are notified (once per
       lead).

    Absent and inactive managers are skipped. ``actor`` is who asks (None for the system);
    routing reads the whole table whatever the actor's scope, since the head of sales set
    it. ``dry_run`` (a rule's test button) moves no round-robin turn and notifies nobody.
    Call it inside the transaction that assigns the lead.
    """
    manager = returning_client_manager(lead, at)
    if manager is not None:
        return manager
    rules = RoutingRule.objects.filter(is_active=True).select_related("target_user", "target_team")
    for rule in rules.order_by("order", "id"):
        if not rule_matches(rule, lead):
            continue
        if rule.target_user_id and rule.target_user is not None:
            if present([rule.target_user], at):
                return rule.target_user
            continue
        if rule.target_team is not None:
            picked = assignee_pick(
                team=rule.target_team,
                method=rule.method,
                at=at,
                cursor_key=f"rule:{rule.pk}",
                dry_run=dry_run,
            )
            if picked is not None:
                return picked
    if not dry_run:
        _notify_unrouted(lead, at)
    return None


@transaction.atomic
def lead_assign_by_routing(*, lead: Lead) -> User | None:
    """Route a lead that has no manager and assign it (through ``lead_update``: audited,
    versioned, ``lead.updated``). Does nothing to a lead that has a manager, is closed or
    deleted. Returns the manager assigned."""
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    if lead.responsible_id or lead.deleted_at is not None or lead.status not in OPEN_LEAD:
        return None
    manager = lead_route(lead=lead)
    if manager is None:
        return None
    lead_update(actor=None, lead=lead, data={"responsible_id": manager.pk})
    return manager


# --- routing rules: the table the head of sales edits -----------------------------------------


def _require_head(actor: User | None) -> None:
    if actor is not None and not is_head_of_sales(actor):
        raise PermissionDenied(_("Only the head of sales may change the routing table."))


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = re.split(r"[,;\n]", value)
    if not isinstance(value, list | tuple):
        return [str(value)]
    return [str(v).strip() for v in value if str(v).strip()]


def _decimal(value: Any, name: str, errors: dict[str, list[str]]) -> decimal.Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = decimal.Decimal(str(value).replace(" ", "").replace(",", "."))
    except decimal.InvalidOperation:
        errors[name] = [_("Enter a number.")]
        return None
    if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
        errors[name] = [_("Enter an amount from 0 to %(max)s.") % {"max": MAX_AMOUNT}]
        return None
    return amount.quantize(decimal.Decimal("0.01"))


def _has_country_code(prefix: str) -> bool:
    digits = prefix[1:]
    return any(
        phonenumbers.region_codes_for_country_code(int(digits[:n]))
        for n in (1, 2, 3)
        if len(digits) >= n
    )


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes")
    return bool(value)


def _rule_clean(
    data: dict[str, Any], existing: RoutingRule | None, errors: dict[str, list[str]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in data or existing is None:
        out["name"] = str(data.get("name") or "").strip()[:150]
        if not out["name"]:
            errors["name"] = [_("Name the rule.")]
    if "order" in data and data["order"] not in (None, ""):
        try:
            out["order"] = int(data["order"])
            if out["order"] < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["order"] = [_("Enter a whole number, 0 or more.")]
    if "is_active" in data:
        out["is_active"] = _bool(data["is_active"])
    if "countries" in data:
        codes = [c.upper() for c in _as_list(data["countries"])]
        bad = [c for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            errors["countries"] = [
                _("Unknown country code: %(codes)s. Use two letters, e.g. RU, AZ, IT.")
                % {"codes": ", ".join(bad)}
            ]
        out["countries"] = list(dict.fromkeys(codes))
    if "phone_prefixes" in data:
        raw_prefixes = _as_list(data["phone_prefixes"])
        prefixes = ["+" + re.sub(r"\D", "", p) for p in raw_prefixes]
        bad = [
            p
            for p, raw in zip(prefixes, raw_prefixes, strict=True)
            if not raw.startswith("+") or not _PREFIX_RE.match(p) or not _has_country_code(p)
        ]
        if bad:
            errors["phone_prefixes"] = [
                _("A phone prefix is “+” and the country code, then more digits, e.g. +7495.")
            ]
        out["phone_prefixes"] = list(dict.fromkeys(prefixes))
    if "places" in data:
        out["places"] = list(dict.fromkeys(p[:100] for p in _as_list(data["places"])))
    if "channels" in data:
        channels = _as_list(data["channels"])
        bad = [c for c in channels if c not in LeadChannel.values]
        if bad:
            errors["channels"] = [
                _("Unknown channel: %(codes)s. Use one of %(list)s.")
                % {"codes": ", ".join(bad), "list": ", ".join(LeadChannel.values)}
            ]
        out["channels"] = list(dict.fromkeys(channels))
    if "sources" in data:
        out["sources"] = list(dict.fromkeys(s[:100] for s in _as_list(data["sources"])))
    if "products" in data:
        out["products"] = list(dict.fromkeys(p[:200] for p in _as_list(data["products"])))
    if "amount_min" in data:
        out["amount_min"] = _decimal(data["amount_min"], "amount_min", errors)
    if "amount_max" in data:
        out["amount_max"] = _decimal(data["amount_max"], "amount_max", errors)
    low = out.get("amount_min", existing.amount_min if existing else None)
    high = out.get("amount_max", existing.amount_max if existing else None)
    if low is not None and high is not None and low > high and "amount_max" not in errors:
        errors["amount_max"] = [_("The upper amount is below the lower one.")]
    if "method" in data or existing is None:
        method = str(data.get("method") or RoutingMethod.ROUND_ROBIN)
        if method not in RoutingMethod.values:
            errors["method"] = [_("Choose round-robin or least busy.")]
        out["method"] = method
    if "target_user_id" in data:
        out["target_user"] = None
        if data["target_user_id"] not in (None, ""):
            try:
                out["target_user"] = User.objects.get(
                    pk=int(data["target_user_id"]), is_active=True
                )
            except (User.DoesNotExist, TypeError, ValueError):
                errors["target_user_id"] = [_("No active user with this id.")]
    if "target_team_id" in data:
        out["target_team"] = None
        if data["target_team_id"] not in (None, ""):
            try:
                out["target_team"] = Team.objects.get(pk=int(data["target_team_id"]))
            except (Team.DoesNotExist, TypeError, ValueError):
                errors["target_team_id"] = [_("No team with this id.")]
    user = out.get("target_user", existing.target_user if existing else None)
    team = out.get("target_team", existing.target_team if existing else None)
    if not {"target_user_id", "target_team_id"} & set(errors):
        if user is None and team is None:
            errors["target_user_id"] = [_("Give the lead to a manager or to a team.")]
        elif user is not None and team is not None:
            errors["target_team_id"] = [_("Choose a manager or a team, not both.")]
    return out


@transaction.atomic
def routing_rule_save(
    *,
    actor: User | None,
    data: dict[str, Any],
    rule: RoutingRule | None = None,
    version: int | None = None,
) -> RoutingRule:
    """Create a routing rule (at the end of the table unless ``order`` is given) or change
    one. Conditions not given stay as they are; empty ones match every lead."""
    _require_head(actor)
    if rule is not None:
        rule = RoutingRule.objects.select_for_update().get(pk=rule.pk)
        if version is not None and int(version) != rule.version:
            raise StaleVersion(current_version=rule.version)
    errors: dict[str, list[str]] = {}
    fields = _rule_clean(data, rule, errors)
    if errors:
        raise FieldErrors(errors)
    if rule is None:
        if "order" not in fields:
            last = RoutingRule.objects.aggregate(m=Max("order"))["m"]
            fields["order"] = (last or 0) + 10
        rule = RoutingRule(**fields, created_by=actor if actor and actor.pk else None)
        rule.save()
        changes = {k: [None, v] for k, v in snapshot(rule, RULE_FIELDS).items()}
        audit_record(
            actor=actor, instance=rule, object_type="routing_rule", action="create", changes=changes
        )
        return rule
    before = snapshot(rule, RULE_FIELDS)
    for k, v in fields.items():
        setattr(rule, k, v)
    changes = diff(before, snapshot(rule, RULE_FIELDS))
    if not changes:
        return rule
    changes["version"] = [rule.version, rule.version + 1]
    rule.version += 1
    rule.save()
    audit_record(
        actor=actor, instance=rule, object_type="routing_rule", action="update", changes=changes
    )
    return rule


@transaction.atomic
def routing_rule_delete(*, actor: User | None, rule: RoutingRule) -> None:
    """Remove a rule from the table; the audit keeps what it was."""
    _require_head(actor)
    rule = RoutingRule.objects.select_for_update().get(pk=rule.pk)
    audit_record(
        actor=actor,
        instance=rule,
        object_type="routing_rule",
        action="delete",
        changes={k: [v, None] for k, v in snapshot(rule, RULE_FIELDS).items()},
    )
    RoutingCursor.objects.filter(key=f"rule:{rule.pk}").delete()
    rule.delete()


@transaction.atomic
def routing_rules_reorder(*, actor: User | None, rule_ids: list[int]) -> list[RoutingRule]:
    """Put the rules in the order of ``rule_ids`` (every rule, once)."""
    _require_head(actor)
    rules = {r.pk: r for r in RoutingRule.objects.select_for_update().order_by("id")}
    try:
        wanted = [int(i) for i in rule_ids]
    except (TypeError, ValueError):
        wanted = []
    if sorted(wanted) != sorted(rules):
        raise FieldErrors.single("rule_ids", _("List every rule of the table once."))
    for position, pk in enumerate(wanted, start=1):
        rule = rules[pk]
        if rule.order != position * 10:
            changes = {
                "order": [rule.order, position * 10],
                "version": [rule.version, rule.version + 1],
            }
            RoutingRule.objects.filter(pk=pk).update(order=position * 10, version=F("version") + 1)
            audit_record(
                actor=actor,
                instance=rule,
                object_type="routing_rule",
                action="update",
                changes=changes,
            )
    return list(RoutingRule.objects.order_by("order", "id"))


def routing_rule_move(*, actor: User | None, rule: RoutingRule, offset: int) -> list[RoutingRule]:
    """Move a rule ``offset`` places up (negative) or down in the table."""
    ids = list(RoutingRule.objects.order_by("order", "id").values_list("pk", flat=True))
    at = ids.index(rule.pk)
    to = max(0, min(len(ids) - 1, at + offset))
    ids.insert(to, ids.pop(at))
    return routing_rules_reorder(actor=actor, rule_ids=ids)


def _or_list(items: list[str]) -> str:
    return (" " + _("or") + " ").join(items)


def _amount_text(value: decimal.Decimal) -> str:
    return formats.number_format(value, decimal_pos=0 if value == value.to_integral() else 2,
                                 force_grouping=True)  # fmt: skip


def rule_sentence(rule: RoutingRule) -> str:
    """The rule as a sentence a head of sales reads in the table."""
    parts: list[str] = []
    region: list[str] = []
    if rule.countries:
        region.append(
            _("the phone or the client's country is %(countries)s")
            % {"countries": _or_list(rule.countries)}
        )
    if rule.phone_prefixes:
        region.append(
            _("the phone starts with %(prefixes)s") % {"prefixes": _or_list(rule.phone_prefixes)}
        )
    if rule.places:
        region.append(
            _("the client's address mentions %(places)s") % {"places": _or_list(rule.places)}
        )
    if region:
        parts.append(_or_list(region))
    if rule.channels:
        labels = dict(LeadChannel.choices)
        names = [str(labels.get(c, c)) for c in rule.channels]
        parts.append(_("it came by %(channels)s") % {"channels": _or_list(names)})
    if rule.sources:
        parts.append(_("the source is %(sources)s") % {"sources": _or_list(rule.sources)})
    if rule.amount_min is not None and rule.amount_max is not None:
        parts.append(
            _("the amount is from %(low)s to %(high)s")
            % {"low": _amount_text(rule.amount_min), "high": _amount_text(rule.amount_max)}
        )
    elif rule.amount_min is not None:
        parts.append(_("the amount is at least %(low)s") % {"low": _amount_text(rule.amount_min)})
    elif rule.amount_max is not None:
        parts.append(_("the amount is at most %(high)s") % {"high": _amount_text(rule.amount_max)})
    if rule.products:
        quoted = [f"“{p}”" for p in rule.products]
        parts.append(_("the product or service mentions %(words)s") % {"words": _or_list(quoted)})
    if rule.target_user_id and rule.target_user is not None:
        target = _("it goes to %(user)s") % {"user": str(rule.target_user)}
    elif rule.target_team is not None:
        if rule.method == RoutingMethod.LEAST_BUSY:
            target = _("it goes to the least busy member of %(team)s") % {
                "team": rule.target_team.name
            }
        else:
            target = _("it goes to the members of %(team)s in turn") % {
                "team": rule.target_team.name
            }
    else:
        target = _("it goes to nobody")
    if not parts:
        return _("Any new lead: %(target)s.") % {"target": target}
    return _("If %(conditions)s, %(target)s.") % {
        "conditions": _(", and ").join(parts),
        "target": target,
    }


# --- absences ---------------------------------------------------------------------------------


def _may_manage(actor: User, user_id: int, team_id: int | None) -> bool:
    scope = absence_scope(actor)
    if scope == SCOPE_ALL or user_id == actor.pk:
        return True
    return scope == SCOPE_TEAM and team_id is not None and team_id in actor.team_subtree_ids()


def may_manage(actor: User, absence: Absence) -> bool:
    """Whether ``actor`` may change ``absence`` and take back its work for its user."""
    return _may_manage(actor, absence.user_id, absence.user.team_id)


def _check_manage(actor: User | None, absence: Absence) -> None:
    if actor is not None and not _may_manage(actor, absence.user_id, absence.user.team_id):
        raise PermissionDenied(_("You may not change this absence."))


def _overlapping(
    user_id: int, starts_at: dt.datetime, ends_at: dt.datetime, exclude_pk: int | None
) -> Absence | None:
    qs = Absence.objects.filter(
        user_id=user_id,
        status__in=[AbsenceStatus.SCHEDULED, AbsenceStatus.ACTIVE],
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    )
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.order_by("starts_at").first()


def _short(value: dt.datetime) -> str:
    return formats.date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")


def _absence_clean(
    data: dict[str, Any],
    actor: User | None,
    existing: Absence | None,
    errors: dict[str, list[str]],
    now: dt.datetime,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if existing is None:
        user: User | None = actor
        if data.get("user_id") not in (None, ""):
            try:
                user = User.objects.select_related("team").get(
                    pk=int(data["user_id"]), is_active=True
                )
            except (User.DoesNotExist, TypeError, ValueError):
                errors["user_id"] = [_("No active user with this id.")]
                user = None
            if (
                user is not None
                and actor is not None
                and not _may_manage(actor, user.pk, user.team_id)
            ):
                errors["user_id"] = [_("You may not record an absence for this user.")]
        elif user is None:
            errors["user_id"] = [_("Say who is away.")]
        out["user"] = user
        kind = str(data.get("kind") or AbsenceKind.PLANNED)
        if kind not in AbsenceKind.values:
            errors["kind"] = [_("Choose planned or unplanned.")]
        out["kind"] = kind
    elif "user_id" in data and data["user_id"] not in (None, "", existing.user_id):
        try:
            same = int(data["user_id"]) == existing.user_id
        except (TypeError, ValueError):
            same = False
        if not same:
            errors["user_id"] = [_("Who is away cannot change; cancel and record a new one.")]
    if existing is not None and "kind" in data and data["kind"] not in (None, ""):
        if data["kind"] not in AbsenceKind.values:
            errors["kind"] = [_("Choose planned or unplanned.")]
        else:
            out["kind"] = data["kind"]
    started = existing is not None and existing.status == AbsenceStatus.ACTIVE
    if "starts_at" in data or existing is None:
        starts = parse_when(data.get("starts_at"), "starts_at", errors)
        if starts is None and "starts_at" not in errors:
            if existing is None and out.get("kind") == AbsenceKind.UNPLANNED:
                starts = now  # an unplanned absence starts now unless told otherwise
            elif existing is None:
                errors["starts_at"] = [_("Give the start of the absence.")]
        if starts is not None and not (started and existing and starts == existing.starts_at):
            if started:
                errors["starts_at"] = [_("The absence has started; its start cannot change.")]
            else:
                out["starts_at"] = starts
    if "ends_at" in data or existing is None:
        ends = parse_when(data.get("ends_at"), "ends_at", errors)
        if ends is None and "ends_at" not in errors:
            errors["ends_at"] = [_("Give the end of the absence.")]
        elif ends is not None:
            out["ends_at"] = ends
    kind = out.get("kind", existing.kind if existing else AbsenceKind.PLANNED)
    starts_at = out.get("starts_at", existing.starts_at if existing else None)
    ends_at = out.get("ends_at", existing.ends_at if existing else None)
    if (
        "starts_at" in out
        and kind == AbsenceKind.PLANNED
        and starts_at is not None
        and starts_at < now - dt.timedelta(minutes=5)
    ):
        errors["starts_at"] = [
            _("A planned absence cannot start in the past; record it as unplanned.")
        ]
    if starts_at and ends_at and ends_at <= starts_at and "ends_at" not in errors:
        errors["ends_at"] = [_("The end must be after the start.")]
    if started and "ends_at" in out and ends_at is not None and ends_at <= now:
        errors["ends_at"] = [_("The end is in the past; to end the absence now, cancel it.")]
    if "note" in data:
        out["note"] = str(data["note"] or "").strip()[:300]
    for name in ("hand_over_tasks", "hand_over_leads", "hand_over_deals"):
        if name in data and data[name] is not None:
            if started:
                errors[name] = [_("The work was handed over at the start; this cannot change.")]
            else:
                out[name] = _bool(data[name])
    user = out.get("user", existing.user if existing else None)
    if "deputy_id" in data:
        deputy: User | None = None
        if data["deputy_id"] not in (None, ""):
            try:
                deputy = User.objects.get(pk=int(data["deputy_id"]), is_active=True)
            except (User.DoesNotExist, TypeError, ValueError):
                errors["deputy_id"] = [_("No active user with this id.")]
        if started and (deputy.pk if deputy else None) != existing.deputy_id:  # type: ignore[union-attr]
            errors["deputy_id"] = [_("The absence has started; its deputy cannot change.")]
        elif "deputy_id" not in errors:
            out["deputy"] = deputy
    deputy = out.get("deputy", existing.deputy if existing else None)
    if deputy is not None and user is not None and "deputy_id" not in errors:
        if deputy.pk == user.pk:
            errors["deputy_id"] = [_("The deputy must be someone else than who is away.")]
        elif starts_at and ends_at:
            clash = _overlapping(deputy.pk, starts_at, ends_at, None)
            if clash is not None:
                errors["deputy_id"] = [
                    _("The deputy is away too then (%(start)s – %(end)s).")
                    % {"start": _short(clash.starts_at), "end": _short(clash.ends_at)}
                ]
    if user is not None and starts_at and ends_at and not {"starts_at", "ends_at"} & set(errors):
        clash = _overlapping(user.pk, starts_at, ends_at, existing.pk if existing else None)
        if clash is not None:
            errors["starts_at"] = [
                _("This overlaps another absence of the same user (%(start)s – %(end)s).")
                % {"start": _short(clash.starts_at), "end": _short(clash.ends_at)}
            ]
        else:
            standing_in = (
                Absence.objects.filter(
                    deputy_id=user.pk,
                    status__in=[AbsenceStatus.SCHEDULED, AbsenceStatus.ACTIVE],
                    starts_at__lt=ends_at,
                    ends_at__gt=starts_at,
                )
                .select_related("user")
                .first()
            )
            if standing_in is not None:
                errors["starts_at"] = [
                    _("%(user)s is deputy for %(other)s then; choose another deputy there first.")
                    % {"user": str(user), "other": str(standing_in.user)}
                ]
    return out


def _absence_event(absence: Absence, name: str, actor: User | None) -> None:
    event_record(
        name=f"absence.{name}",
        object_type="absence",
        object_id=absence.pk,
        actor=actor,
        payload={
            "user": absence.user_id,
            "deputy": absence.deputy_id,
            "starts_at": absence.starts_at.isoformat(),
            "ends_at": absence.ends_at.isoformat(),
        },
    )


@transaction.atomic
def absence_create(
    *, actor: User | None, data: dict[str, Any], now: dt.datetime | None = None
) -> Absence:
    """Record an absence (``user_id`` defaults to the actor). An unplanned one may start now
    or in the past; then it starts at once: the work goes to the deputy in this call."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    fields = _absence_clean(data, actor, None, errors, now)
    if errors:
        raise FieldErrors(errors)
    absence = Absence(**fields, created_by=actor if actor and actor.pk else None)
    absence.save()
    audit_record(
        actor=actor,
        instance=absence,
        object_type="absence",
        action="create",
        changes={
            k: [None, v]
            for k, v in snapshot(absence, ABSENCE_FIELDS).items()
            if v not in ("", None)
        },
    )
    _absence_event(absence, "created", actor)
    if absence.starts_at <= now:
        absence_start(absence=absence, now=now)
        absence.refresh_from_db()
    return absence


@transaction.atomic
def absence_update(
    *,
    actor: User | None,
    absence: Absence,
    data: dict[str, Any],
    version: int | None = None,
    now: dt.datetime | None = None,
) -> Absence:
    """Change a scheduled absence, or the end and note of one under way."""
    now = now or timezone.now()
    absence = (
        Absence.objects.select_for_update(of=("self",))
        .select_related("user", "deputy")
        .get(pk=absence.pk)
    )
    _check_manage(actor, absence)
    if version is not None and int(version) != absence.version:
        raise StaleVersion(current_version=absence.version)
    if absence.status in (AbsenceStatus.ENDED, AbsenceStatus.CANCELLED):
        raise FieldErrors.single("status", _("This absence is over and cannot change."))
    errors: dict[str, list[str]] = {}
    fields = _absence_clean(data, actor, absence, errors, now)
    if errors:
        raise FieldErrors(errors)
    before = snapshot(absence, ABSENCE_FIELDS)
    for k, v in fields.items():
        setattr(absence, k, v)
    changes = diff(before, snapshot(absence, ABSENCE_FIELDS))
    if not changes:
        return absence
    changes["version"] = [absence.version, absence.version + 1]
    absence.version += 1
    absence.save()
    audit_record(
        actor=actor, instance=absence, object_type="absence", action="update", changes=changes
    )
    _absence_event(absence, "updated", actor)
    if absence.status == AbsenceStatus.SCHEDULED and absence.starts_at <= now:
        absence_start(absence=absence, now=now)
        absence.refresh_from_db()
    return absence


@transaction.atomic
def absence_cancel(
    *, actor: User | None, absence: Absence, now: dt.datetime | None = None
) -> Absence:
    """Cancel a scheduled absence; one under way ends now (its owner is offered the work
    back)."""
    now = now or timezone.now()
    absence = (
        Absence.objects.select_for_update(of=("self",))
        .select_related("user", "deputy")
        .get(pk=absence.pk)
    )
    _check_manage(actor, absence)
    if absence.status == AbsenceStatus.SCHEDULED:
        changes = {
            "status": [absence.status, AbsenceStatus.CANCELLED],
            "version": [absence.version, absence.version + 1],
        }
        Absence.objects.filter(pk=absence.pk).update(
            status=AbsenceStatus.CANCELLED, version=F("version") + 1, updated_at=now
        )
        audit_record(
            actor=actor, instance=absence, object_type="absence", action="update", changes=changes
        )
        _absence_event(absence, "cancelled", actor)
    elif absence.status == AbsenceStatus.ACTIVE:
        end = max(now, absence.starts_at + dt.timedelta(seconds=1))
        changes = {
            "ends_at": [absence.ends_at.isoformat(), end.isoformat()],
            "version": [absence.version, absence.version + 1],
        }
        Absence.objects.filter(pk=absence.pk).update(
            ends_at=end, version=F("version") + 1, updated_at=now
        )
        audit_record(
            actor=actor, instance=absence, object_type="absence", action="update", changes=changes
        )
        absence_end(absence=absence, now=end)
    else:
        raise FieldErrors.single("status", _("This absence is already over."))
    absence.refresh_from_db()
    return absence


def _due_deals_q(absence: Absence) -> Q:
    last_day = timezone.localtime(absence.ends_at).date()
    return Q(expected_close__lte=last_day) | Q(stage_deadline__lte=absence.ends_at)


def _items_to_hand_over(absence: Absence) -> list[tuple[str, Task | Lead | Deal]]:
    """The user's open tasks, open leads, and open deals due by the end of the absence
    (expected close date or stage deadline, overdue ones included)."""
    items: list[tuple[str, Task | Lead | Deal]] = []
    uid = absence.user_id
    if absence.hand_over_tasks:
        tasks = Task.objects.filter(
            responsible_id=uid, status__in=OPEN_TASK, deleted_at__isnull=True
        ).order_by("id")
        items += [(HandoverObject.TASK, t) for t in tasks]
    if absence.hand_over_leads:
        leads = Lead.objects.filter(
            responsible_id=uid, status__in=OPEN_LEAD, deleted_at__isnull=True
        ).order_by("id")
        items += [(HandoverObject.LEAD, lead) for lead in leads]
    if absence.hand_over_deals:
        deals = Deal.objects.filter(
            _due_deals_q(absence),
            responsible_id=uid,
            status=DealStatus.OPEN,
            deleted_at__isnull=True,
        ).order_by("id")
        items += [(HandoverObject.DEAL, d) for d in deals]
    return items


def _reassign(object_type: str, obj: Task | Lead | Deal, to: User) -> None:
    """Through the owning app's service, so the move is audited, versioned and evented."""
    data = {"responsible_id": to.pk}
    if isinstance(obj, Task):
        task_update(actor=None, task=obj, data=data)
    elif isinstance(obj, Lead):
        lead_update(actor=None, lead=obj, data=data)
    else:
        deal_update(actor=None, deal=obj, data=data)


def _hand_over(absence: Absence, now: dt.datetime) -> tuple[list[Handover], list[dict[str, Any]]]:
    user = absence.user
    deputy = absence.deputy
    if deputy is not None and not present([deputy], now):
        deputy = None  # the deputy became unavailable since: route within the team instead
    moved: list[Handover] = []
    kept: list[dict[str, Any]] = []
    for object_type, obj in _items_to_hand_over(absence):
        to = deputy
        if to is None and user.team is not None:
            to = assignee_pick(
                team=user.team, method=RoutingMethod.LEAST_BUSY, at=now, exclude=[user.pk]
            )
        if to is None:
            kept.append(
                {
                    "object_type": object_type,
                    "object_id": obj.pk,
                    "repr": str(obj)[:300],
                    "why": _("no deputy and nobody present in the team"),
                }
            )
            continue
        try:
            _reassign(object_type, obj, to)
        except ServiceError as exc:
            kept.append(
                {
                    "object_type": object_type,
                    "object_id": obj.pk,
                    "repr": str(obj)[:300],
                    "why": str(exc),
                }
            )
            continue
        moved.append(
            Handover.objects.create(
                absence=absence,
                object_type=object_type,
                object_id=obj.pk,
                object_repr=str(obj)[:300],
                from_user=user,
                to_user=to,
                at=now,
            )
        )
    return moved, kept


def absence_start(*, absence: Absence, now: dt.datetime | None = None) -> Absence | None:
    """Start ``absence`` if it is still scheduled and its time came — exactly once.

    The conditional update on the status is the claim: a second worker (or a second run)
    updates no row and does nothing. The user's open tasks, open leads and the deals due in
    the period go to the deputy (or, without one, to the least busy present member of the
    user's team), each through its app's service; a Handover row records each move and
    the receivers are notified. An absence already over when the worker gets to it (it was
    down) ends at once without moving anything. Returns the absence, or None if it was not
    started by this call.
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Absence.objects.filter(
            pk=absence.pk, status=AbsenceStatus.SCHEDULED, starts_at__lte=now
        ).update(status=AbsenceStatus.ACTIVE, started_at=now, version=F("version") + 1)
        if not claimed:
            return None
        absence = Absence.objects.select_related("user__team", "deputy").get(pk=absence.pk)
        if absence.ends_at <= now:
            Absence.objects.filter(pk=absence.pk).update(status=AbsenceStatus.ENDED, ended_at=now)
            audit_record(
                actor=None,
                instance=absence,
                object_type="absence",
                action="update",
                changes={"status": [AbsenceStatus.SCHEDULED, AbsenceStatus.ENDED]},
            )
            _absence_event(absence, "ended", None)
            return absence
        moved, kept = _hand_over(absence, now)
        Absence.objects.filter(pk=absence.pk).update(not_handed_over=kept)
        audit_record(
            actor=None,
            instance=absence,
            object_type="absence",
            action="update",
            changes={
                "status": [AbsenceStatus.SCHEDULED, AbsenceStatus.ACTIVE],
                "handed_over": [None, len(moved)],
                "not_handed_over": [None, len(kept)],
            },
        )
        _absence_event(absence, "started", None)
        per_user: dict[int, int] = {}
        for h in moved:
            per_user[h.to_user_id] = per_user.get(h.to_user_id, 0) + 1
        for uid, count in per_user.items():
            notify(
                user_id=uid,
                kind=NotificationKind.HANDOVER,
                key=f"absence_handover:{absence.pk}:{uid}",
                title=_("%(user)s is away until %(until)s: %(count)s items handed over to you")
                % {"user": str(absence.user), "until": _short(absence.ends_at), "count": count},
                url=f"/absences/{absence.pk}/",
            )
        absence.status = AbsenceStatus.ACTIVE
        return absence


def absence_end(*, absence: Absence, now: dt.datetime | None = None) -> Absence | None:
    """End an absence under way whose end came — exactly once (conditional update). The
    user is notified of what was handed over, with a link to take it back."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Absence.objects.filter(
            pk=absence.pk, status=AbsenceStatus.ACTIVE, ends_at__lte=now
        ).update(status=AbsenceStatus.ENDED, ended_at=now, version=F("version") + 1)
        if not claimed:
            return None
        absence = Absence.objects.select_related("user").get(pk=absence.pk)
        audit_record(
            actor=None,
            instance=absence,
            object_type="absence",
            action="update",
            changes={"status": [AbsenceStatus.ACTIVE, AbsenceStatus.ENDED]},
        )
        _absence_event(absence, "ended", None)
        count = absence.handovers.filter(returned_at__isnull=True).count()
        if count:
            notify(
                user_id=absence.user_id,
                kind=NotificationKind.HANDOVER,
                key=f"absence_return:{absence.pk}",
                title=_("Welcome back: %(count)s items were handed over; take them back")
                % {"count": count},
                url=f"/absences/{absence.pk}/take-back/",
            )
        return absence


def absences_due(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Start and end the absences whose time came (the worker's job, every minute).

    Catches up after downtime: everything past due is handled; each start and each end
    happens once however often, and however many workers, run it.
    """
    now = now or timezone.now()
    done = 0
    starting = Absence.objects.filter(status=AbsenceStatus.SCHEDULED, starts_at__lte=now)
    for pk in list(starting.order_by("starts_at", "id").values_list("pk", flat=True)[:limit]):
        done += absence_start(absence=Absence(pk=pk), now=now) is not None
    ending = Absence.objects.filter(status=AbsenceStatus.ACTIVE, ends_at__lte=now)
    for pk in list(ending.order_by("ends_at", "id").values_list("pk", flat=True)[:limit]):
        done += absence_end(absence=Absence(pk=pk), now=now) is not None
    return done


# --- taking work back -------------------------------------------------------------------------


@dataclass
class TakeBackResult:
    """What a take-back moved, and what it left with why."""

    taken: list[Handover] = field(default_factory=list)
    kept: list[tuple[Handover, str]] = field(default_factory=list)


def _load(h: Handover) -> Task | Lead | Deal | None:
    if h.object_type == HandoverObject.TASK:
        return Task.objects.filter(pk=h.object_id).select_related("responsible").first()
    if h.object_type == HandoverObject.LEAD:
        return Lead.objects.filter(pk=h.object_id).select_related("responsible").first()
    return Deal.objects.filter(pk=h.object_id).select_related("responsible").first()


def handover_state(h: Handover, obj: Task | Lead | Deal | None) -> str:
    """Why the item cannot be taken back ("" when it can)."""
    if h.returned_at is not None:
        return _("already taken back")
    if obj is None or obj.deleted_at is not None:
        return _("it was deleted")
    closed = (
        (isinstance(obj, Task) and obj.status not in OPEN_TASK)
        or (isinstance(obj, Lead) and obj.status not in OPEN_LEAD)
        or (isinstance(obj, Deal) and obj.status != DealStatus.OPEN)
    )
    if closed:
        return _("it is closed (%(status)s)") % {"status": obj.get_status_display()}
    if obj.responsible_id != h.to_user_id:
        who = str(obj.responsible) if obj.responsible else _("nobody")
        return _("it is now with %(user)s") % {"user": who}
    return ""


def handovers_with_state(absence: Absence) -> list[tuple[Handover, str]]:
    """Each handover of ``absence`` and why it cannot be taken back ("" when it can);
    one query per kind of item, not per item."""
    handovers = list(absence.handovers.select_related("to_user").order_by("object_type", "id"))
    ids: dict[str, list[int]] = {}
    for h in handovers:
        ids.setdefault(h.object_type, []).append(h.object_id)
    objects: dict[tuple[str, int], Task | Lead | Deal] = {}
    for object_type, model in (
        (HandoverObject.TASK, Task),
        (HandoverObject.LEAD, Lead),
        (HandoverObject.DEAL, Deal),
    ):
        if ids.get(object_type):
            rows = model.objects.filter(pk__in=ids[object_type]).select_related("responsible")
            objects.update({(object_type, o.pk): o for o in rows})
    return [(h, handover_state(h, objects.get((h.object_type, h.object_id)))) for h in handovers]


@transaction.atomic
def absence_take_back(
    *,
    actor: User | None,
    absence: Absence,
    handover_ids: list[int] | None = None,
    now: dt.datetime | None = None,
) -> TakeBackResult:
    """Give the user back what was handed over: all (``handover_ids`` None) or the items
    chosen. Only items still open and still with whom they were handed to move (through
    their app's service); the others are listed as kept, with why."""
    now = now or timezone.now()
    absence = Absence.objects.select_related("user").get(pk=absence.pk)
    _check_manage(actor, absence)
    if absence.status in (AbsenceStatus.SCHEDULED, AbsenceStatus.CANCELLED):
        raise FieldErrors.single("status", _("Nothing was handed over for this absence."))
    if not absence.user.is_active:
        raise FieldErrors.single("user_id", _("The user is no longer active."))
    handovers = absence.handovers.select_for_update().order_by("object_type", "id")
    if handover_ids is not None:
        try:
            wanted = {int(i) for i in handover_ids}
        except (TypeError, ValueError):
            raise FieldErrors.single("handover_ids", _("Give handover ids.")) from None
        handovers = handovers.filter(pk__in=wanted)
        if len(handovers) != len(wanted):
            raise FieldErrors.single(
                "handover_ids", _("Some of these items were not handed over in this absence.")
            )
    result = TakeBackResult()
    for h in list(handovers):
        obj = _load(h)
        why = handover_state(h, obj)
        if why or obj is None:
            result.kept.append((h, why))
            continue
        try:
            _reassign(h.object_type, obj, absence.user)
        except ServiceError as exc:
            result.kept.append((h, str(exc)))
            continue
        Handover.objects.filter(pk=h.pk, returned_at__isnull=True).update(returned_at=now)
        h.returned_at = now
        result.taken.append(h)
    if result.taken:
        audit_record(
            actor=actor,
            instance=absence,
            object_type="absence",
            action="update",
            changes={
                "taken_back": [
                    None,
                    [f"{h.object_type}:{h.object_id}" for h in result.taken],
                ]
            },
        )
        event_record(
            name="absence.taken_back",
            object_type="absence",
            object_id=absence.pk,
            actor=actor,
            payload={"items": [[h.object_type, h.object_id] for h in result.taken]},
        )
    return result
