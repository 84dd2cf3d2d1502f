"""Every write of the sales process: pipelines, leads, deals and their moves.

The board, the deal pages, the API and (later) automations and the importer call these
functions, so a strict pipeline refuses a skipped stage the same way whoever asks.
Each write is one transaction, audited, with an outbox event.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.customfields import custom_fields_clean
from rapport.core.emails import normalize_email
from rapport.core.errors import DuplicateFound, FieldErrors, PermissionDenied, StaleVersion
from rapport.core.events import changes_payload, event_record
from rapport.core.ownership import parse_date, resolve_responsible, team_for
from rapport.core.phones import parse_phone
from rapport.core.scopes import scope_allows
from rapport.parties.duplicates import find_duplicates
from rapport.parties.models import Company, Person
from rapport.sales import stage_days
from rapport.sales.choices import (
    STAGE_REQUIREMENTS,
    DealStatus,
    LeadChannel,
    LeadStatus,
    PipelineKind,
)
from rapport.sales.models import Deal, Lead, LossReason, Pipeline, Stage, StageChange

DEAL_FIELDS = [
    "title",
    "company",
    "person",
    "contact",
    "amount",
    "currency",
    "expected_close",
    "responsible",
    "source",
    "custom_fields",
]
LEAD_FIELDS = [
    "name",
    "phone",
    "email",
    "company_name",
    "address",
    "text",
    "interest",
    "amount",
    "currency",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "responsible",
    "source",
    "custom_fields",
]
MAX_AMOUNT = decimal.Decimal("99999999999999.99")


class StageRequirementsMissing(FieldErrors):
    """A deal may not enter a stage before these fields are filled (the board asks for them)."""

    def __init__(self, stage: Stage, missing: list[str]) -> None:
        self.stage = stage
        self.missing = missing
        labels = [requirement_label(m) for m in missing]
        message = _("Fill in before “%(stage)s”: %(fields)s.") % {
            "stage": stage.name,
            "fields": ", ".join(labels),
        }
        per_field = _("Required before the deal enters “%(stage)s”.") % {"stage": stage.name}
        super().__init__({m.replace("cf:", "custom_fields."): [per_field] for m in missing})
        self.message = message

    def __str__(self) -> str:
        return self.message


def currencies() -> list[str]:
    return list(settings.CURRENCIES)


def requirement_label(code: str) -> str:
    if code.startswith("cf:"):
        from rapport.core.models import CustomFieldDefinition

        defn = CustomFieldDefinition.objects.filter(object_type="deal", name=code[3:]).first()
        return defn.label if defn else code[3:]
    return str(STAGE_REQUIREMENTS.get(code, code))


def _require_admin(actor: User | None) -> None:
    if actor is not None and not (actor.is_superuser or actor.is_rapport_admin):
        raise PermissionDenied(_("Only administrators may change pipelines."))


def _check(actor: User | None, object_type: str, action: str, obj: Deal | Lead) -> None:
    if actor is not None and not scope_allows(
        actor, object_type, action, owner_id=obj.responsible_id, team_id=obj.team_id
    ):
        raise PermissionDenied(_("You may not %(action)s this record.") % {"action": _(action)})


def _check_version(obj: Deal | Lead, version: int | None) -> None:
    if version is not None and int(version) != obj.version:
        raise StaleVersion(current_version=obj.version)


def _amount(value: Any, field: str, errors: dict[str, list[str]]) -> decimal.Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = decimal.Decimal(str(value).replace(" ", "").replace(",", "."))
    except decimal.InvalidOperation:
        errors[field] = [_("Enter a number.")]
        return None
    if not amount.is_finite():
        errors[field] = [_("Enter a number.")]
        return None
    if amount < 0:
        errors[field] = [_("The amount cannot be negative.")]
        return None
    if amount > MAX_AMOUNT:
        errors[field] = [_("The amount is too large.")]
        return None
    return amount.quantize(decimal.Decimal("0.01"))


def _currency(value: Any, errors: dict[str, list[str]]) -> str:
    code = str(value or settings.DEFAULT_CURRENCY).strip().upper()
    if code not in settings.CURRENCIES:
        errors["currency"] = [
            _("Unknown currency “%(code)s”; use one of %(list)s.")
            % {"code": code, "list": ", ".join(settings.CURRENCIES)}
        ]
    return code


def _visible_party(
    actor: User | None,
    model: type[Company] | type[Person],
    value: Any,
    field: str,
    errors: dict[str, list[str]],
) -> Company | Person | None:
    if value in (None, ""):
        return None
    object_type = "company" if model is Company else "person"
    try:
        obj = model.objects.get(pk=int(value), deleted_at__isnull=True)
    except (Company.DoesNotExist, Person.DoesNotExist, ValueError, TypeError):
        obj = None
    if obj is None or (
        actor is not None
        and not scope_allows(
            actor, object_type, "view", owner_id=obj.responsible_id, team_id=obj.team_id
        )
    ):
        errors[field] = [_("No such record, or it is outside your access.")]
        return None
    return obj


# --- pipelines --------------------------------------------------------------------------------


@transaction.atomic
def pipeline_save(
    *, actor: User | None, data: dict[str, Any], pipeline: Pipeline | None = None
) -> Pipeline:
    """Create or rename a pipeline; its kind can change only while it has no deals."""
    _require_admin(actor)
    errors: dict[str, list[str]] = {}
    name = str(data.get("name", pipeline.name if pipeline else "")).strip()
    if not name:
        errors["name"] = [_("This field is required.")]
    kind = str(data.get("kind") or (pipeline.kind if pipeline else PipelineKind.FREE))
    if kind not in PipelineKind.values:
        errors["kind"] = [_("Choose strict, free or stageless.")]
    if pipeline and kind != pipeline.kind and pipeline.deals.exists():
        errors["kind"] = [_("The kind cannot change once the pipeline has deals.")]
    no_contact: int | None = pipeline.no_contact_days if pipeline else None
    if "no_contact_days" in data:
        raw = data["no_contact_days"]
        try:
            no_contact = int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            no_contact = None
            errors["no_contact_days"] = [_("Enter a whole number of days.")]
        if no_contact is not None and not 1 <= no_contact <= 365:
            errors["no_contact_days"] = [_("Enter between 1 and 365 days, or leave it empty.")]
    if errors:
        raise FieldErrors(errors)
    created = pipeline is None
    obj = pipeline or Pipeline()
    tracked = ["name", "kind", "order", "is_active", "no_contact_days"]
    before = {} if created else snapshot(obj, tracked)
    obj.name = name[:100]
    obj.kind = kind
    if "order" in data:
        obj.order = int(data["order"] or 0)
    if "is_active" in data:
        obj.is_active = bool(data["is_active"])
    obj.no_contact_days = no_contact
    if not created:
        obj.version += 1
    obj.save()
    after = snapshot(obj, tracked)
    audit_record(
        actor=actor,
        instance=obj,
        object_type="pipeline",
        action="create" if created else "update",
        changes=diff(before, after),
    )
    return obj


def _stage_clean(data: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in data:
        out["name"] = str(data["name"] or "").strip()[:100]
        if not out["name"]:
            errors["name"] = [_("This field is required.")]
    if "color" in data:
        color = str(data["color"] or "").strip()
        if not (len(color) == 7 and color.startswith("#")):
            errors["color"] = [_("Enter a colour as #RRGGBB.")]
        out["color"] = color
    if "probability" in data:
        try:
            out["probability"] = int(data["probability"] or 0)
            if not 0 <= out["probability"] <= 100:
                raise ValueError
        except (TypeError, ValueError):
            errors["probability"] = [_("Enter a whole number from 0 to 100.")]
    if "time_limit_hours" in data:
        raw = data["time_limit_hours"]
        try:
            out["time_limit_hours"] = int(raw) if raw not in (None, "") else None
            if out["time_limit_hours"] is not None and out["time_limit_hours"] <= 0:
                raise ValueError
        except (TypeError, ValueError):
            errors["time_limit_hours"] = [_("Enter a positive number of hours, or leave empty.")]
    if "required_fields" in data:
        from rapport.core.customfields import definitions_for

        allowed = set(STAGE_REQUIREMENTS) | {f"cf:{d.name}" for d in definitions_for("deal")}
        wanted = [str(f) for f in data["required_fields"] or []]
        bad = [f for f in wanted if f not in allowed]
        if bad:
            errors["required_fields"] = [
                _("Unknown fields: %(fields)s.") % {"fields": ", ".join(bad)}
            ]
        out["required_fields"] = sorted(set(wanted) - set(bad))
    if "order" in data:
        out["order"] = int(data["order"] or 0)
    if "is_active" in data:
        out["is_active"] = bool(data["is_active"])
    return out


@transaction.atomic
def stage_save(
    *, actor: User | None, pipeline: Pipeline, data: dict[str, Any], stage: Stage | None = None
) -> Stage:
    _require_admin(actor)
    if not pipeline.has_stages:
        raise FieldErrors.single("pipeline", _("A stageless pipeline has no stages."))
    if stage is not None and stage.pipeline_id != pipeline.pk:
        raise FieldErrors.single("stage", _("This stage belongs to another pipeline."))
    errors: dict[str, list[str]] = {}
    if stage is None and "name" not in data:
        errors["name"] = [_("This field is required.")]
    fields = _stage_clean(data, errors)
    if (
        stage is not None
        and fields.get("is_active") is False
        and stage.deals.filter(status=DealStatus.OPEN, deleted_at__isnull=True).exists()
    ):
        errors["is_active"] = [_("Move the open deals out of this stage first.")]
    if errors:
        raise FieldErrors(errors)
    created = stage is None
    obj = stage or Stage(pipeline=pipeline)
    names = [
        "name",
        "order",
        "color",
        "probability",
        "time_limit_hours",
        "required_fields",
        "is_active",
    ]
    before = {} if created else snapshot(obj, names)
    if created and "order" not in fields:
        last = pipeline.stages.aggregate(m=Max("order"))["m"]
        fields["order"] = (last or 0) + 10
    for k, v in fields.items():
        setattr(obj, k, v)
    obj.save()
    audit_record(
        actor=actor,
        instance=obj,
        object_type="stage",
        action="create" if created else "update",
        changes=diff(before, snapshot(obj, names)),
    )
    return obj


@transaction.atomic
def stages_reorder(*, actor: User | None, pipeline: Pipeline, stage_ids: list[int]) -> None:
    _require_admin(actor)
    stages = {s.pk: s for s in pipeline.stages.all()}
    if set(stage_ids) != set(stages):
        raise FieldErrors.single("stage_ids", _("List every stage of the pipeline once."))
    for i, sid in enumerate(stage_ids):
        stages[sid].order = (i + 1) * 10
        stages[sid].save(update_fields=["order", "updated_at"])
    audit_record(
        actor=actor,
        instance=pipeline,
        object_type="pipeline",
        action="update",
        changes={"stage_order": [None, stage_ids]},
    )


@transaction.atomic
def stage_delete(*, actor: User | None, stage: Stage) -> None:
    """Remove a stage nobody used; a used one is deactivated, so history keeps its name."""
    _require_admin(actor)
    if stage.deals.filter(status=DealStatus.OPEN, deleted_at__isnull=True).exists():
        raise FieldErrors.single("stage", _("Move the open deals out of this stage first."))
    used = StageChange.objects.filter(to_stage=stage).exists() or stage.deals.exists()
    audit_record(
        actor=actor,
        instance=stage,
        object_type="stage",
        action="update" if used else "delete",
        changes={"is_active": [stage.is_active, False]} if used else {"name": [stage.name, None]},
    )
    if used:
        stage.is_active = False
        stage.save(update_fields=["is_active", "updated_at"])
    else:
        stage.delete()


@transaction.atomic
def loss_reason_save(
    *, actor: User | None, name: str, reason: LossReason | None = None, is_active: bool = True
) -> LossReason:
    _require_admin(actor)
    clean = name.strip()[:100]
    if not clean:
        raise FieldErrors.single("name", _("This field is required."))
    clash = LossReason.objects.filter(name__iexact=clean)
    if reason is not None:
        clash = clash.exclude(pk=reason.pk)
    if clash.exists():
        raise FieldErrors.single("name", _("This reason is already in the list."))
    obj = reason or LossReason()
    before = {} if reason is None else {"name": obj.name, "is_active": obj.is_active}
    obj.name, obj.is_active = clean, is_active
    obj.save()
    audit_record(
        actor=actor,
        instance=obj,
        object_type="loss_reason",
        action="create" if reason is None else "update",
        changes=diff(before, {"name": obj.name, "is_active": obj.is_active}),
    )
    return obj


def first_stage(pipeline: Pipeline) -> Stage | None:
    return pipeline.stages.filter(is_active=True).order_by("order", "id").first()


# --- deals ------------------------------------------------------------------------------------


def _deal_clean(
    data: dict[str, Any], actor: User | None, errors: dict[str, list[str]], existing: Deal | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "title" in data or existing is None:
        out["title"] = str(data.get("title") or "").strip()[:200]
        if not out["title"]:
            errors["title"] = [_("This field is required.")]
    if "company_id" in data:
        out["company"] = _visible_party(actor, Company, data["company_id"], "company_id", errors)
    if "person_id" in data:
        out["person"] = _visible_party(actor, Person, data["person_id"], "person_id", errors)
    if "contact_id" in data:
        out["contact"] = _visible_party(actor, Person, data["contact_id"], "contact_id", errors)
    if "amount" in data:
        out["amount"] = _amount(data["amount"], "amount", errors)
    if "currency" in data or existing is None:
        out["currency"] = _currency(data.get("currency"), errors)
    if "expected_close" in data:
        out["expected_close"] = parse_date(data["expected_close"], "expected_close", errors)
    if "responsible_id" in data or existing is None:
        out["responsible"] = resolve_responsible(actor, "deal", data.get("responsible_id"), errors)
    if "source" in data:
        out["source"] = str(data["source"] or "").strip()[:100]
    if "custom_fields" in data:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="deal",
                values=dict(data["custom_fields"] or {}),
                existing=existing.custom_fields if existing else None,
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    elif existing is None:
        try:
            out["custom_fields"] = custom_fields_clean(object_type="deal", values={})
        except FieldErrors as exc:
            errors.update(exc.errors)
    return out


def _coworkers(actor: User | None, ids: Any, errors: dict[str, list[str]]) -> list[User]:
    try:
        wanted = {int(i) for i in ids or []}
    except (TypeError, ValueError):
        errors["coworker_ids"] = [_("Give user ids.")]
        return []
    users = list(User.objects.filter(pk__in=wanted, is_active=True))
    if len(users) != len(wanted):
        errors["coworker_ids"] = [_("No active user with this id.")]
    return users


def missing_requirements(deal: Deal, stage: Stage) -> list[str]:
    """The stage's entry conditions this deal does not meet yet."""
    missing = []
    for code in stage.required_fields or []:
        if code.startswith("cf:"):
            value = (deal.custom_fields or {}).get(code[3:])
        else:
            value = getattr(deal, code, None)
        if value in (None, "", [], {}):
            missing.append(code)
    return missing


def _record_change(
    deal: Deal,
    *,
    actor: User | None,
    from_stage: Stage | None,
    from_status: str,
    now: Any,
    previous: tuple[Any, Any] = (None, None),
) -> StageChange:
    """``previous``: (entered at, deadline) of the stay that ends now, read before the move."""
    seconds = None
    exceeded = False
    since, deadline = previous
    if from_status and since is not None:
        seconds = max(0, int((now - since).total_seconds()))
        exceeded = bool(deadline and deadline < now)
    change = StageChange.objects.create(
        deal=deal,
        pipeline_id=deal.pipeline_id,
        from_stage=from_stage,
        to_stage=deal.stage,
        from_status=from_status,
        to_status=deal.status,
        at=now,
        by=actor if actor and actor.pk else None,
        seconds_in_previous=seconds,
        limit_exceeded=exceeded,
        amount=deal.won_amount if deal.status == DealStatus.WON else deal.amount,
        loss_reason=deal.loss_reason if deal.status == DealStatus.LOST else None,
    )
    stage_days.record(change, responsible=deal.responsible_id, team=deal.team_id)
    return change


def _enter_stage(deal: Deal, stage: Stage | None, now: Any) -> tuple[Any, Any]:
    """Start a new stay; returns the previous one's (entered at, deadline) for the history."""
    previous = (deal.stage_entered_at, deal.stage_deadline)
    deal.stage = stage
    deal.stage_entered_at = now
    limit = stage.time_limit if stage is not None else None
    deal.stage_deadline = now + limit if limit and deal.status == DealStatus.OPEN else None
    deal.stalled_at = None
    return previous


@transaction.atomic
def deal_create(*, actor: User | None, data: dict[str, Any]) -> Deal:
    """A new open deal at the pipeline's first stage (or the stage given, in free pipelines)."""
    if actor is not None and not scope_allows(
        actor, "deal", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not create deals."))
    errors: dict[str, list[str]] = {}
    fields = _deal_clean(data, actor, errors, None)
    pipeline = Pipeline.objects.filter(
        pk=_int(data.get("pipeline_id")) or 0, is_active=True
    ).first()
    if pipeline is None:
        pipeline = Pipeline.objects.filter(is_active=True).order_by("order", "id").first()
        if pipeline is None or data.get("pipeline_id") not in (None, ""):
            errors["pipeline_id"] = [_("Choose an active pipeline.")]
    stage: Stage | None = None
    if pipeline is not None and pipeline.has_stages:
        first = first_stage(pipeline)
        if data.get("stage_id") not in (None, ""):
            stage = Stage.objects.filter(pk=_int(data["stage_id"]) or 0, is_active=True).first()
            if stage is None or stage.pipeline_id != pipeline.pk:
                errors["stage_id"] = [_("This stage belongs to another pipeline.")]
            elif pipeline.is_strict and first is not None and stage.pk != first.pk:
                errors["stage_id"] = [
                    _("In a strict pipeline a deal starts at “%(stage)s”.") % {"stage": first.name}
                ]
        else:
            stage = first
        if stage is None and "stage_id" not in errors:
            errors["pipeline_id"] = [_("This pipeline has no stages yet.")]
    coworkers = _coworkers(actor, data.get("coworker_ids"), errors)
    if errors:
        raise FieldErrors(errors)
    assert pipeline is not None  # noqa: S101 - errors raised above otherwise
    lead = data.get("lead")
    deal = Deal(pipeline=pipeline, **fields)
    deal.team = team_for(deal.responsible, actor)
    deal.created_by = actor if actor and actor.pk else None
    if isinstance(lead, Lead):
        deal.lead = lead
    now = timezone.now()
    _enter_stage(deal, stage, now)
    if stage is not None:
        missing = missing_requirements(deal, stage)
        if missing:
            raise StageRequirementsMissing(stage, missing)
    deal.save()
    if coworkers:
        deal.coworkers.set(coworkers)
    _record_change(deal, actor=actor, from_stage=None, from_status="", now=now)
    changes: dict[str, Any] = {
        k: [None, v] for k, v in snapshot(deal, DEAL_FIELDS).items() if v not in ("", None, {})
    }
    changes["pipeline"] = [None, pipeline.pk]
    if stage is not None:
        changes["stage"] = [None, stage.pk]
    if coworkers:
        changes["coworkers"] = [None, sorted(u.pk for u in coworkers)]
    audit_record(actor=actor, instance=deal, object_type="deal", action="create", changes=changes)
    event_record(
        name="deal.created",
        object_type="deal",
        object_id=deal.pk,
        actor=actor,
        payload={"pipeline": pipeline.pk, "stage": stage.pk if stage else None},
    )
    return deal


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@transaction.atomic
def deal_update(
    *, actor: User | None, deal: Deal, data: dict[str, Any], version: int | None = None
) -> Deal:
    """Change the deal's fields (not its stage or status: those are moves)."""
    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    _check(actor, "deal", "edit", deal)
    _check_version(deal, version)
    refused = {"pipeline_id", "stage_id", "status"} & set(data)
    errors: dict[str, list[str]] = {
        k: [_("Change it by moving the deal, not by editing it.")] for k in refused
    }
    fields = _deal_clean(data, actor, errors, deal)
    coworkers = _coworkers(actor, data["coworker_ids"], errors) if "coworker_ids" in data else None
    if errors:
        raise FieldErrors(errors)
    before = snapshot(deal, DEAL_FIELDS)
    owners = (deal.responsible_id, deal.team_id)
    for k, v in fields.items():
        setattr(deal, k, v)
    if "responsible" in fields:
        deal.team = team_for(deal.responsible, actor)
    if deal.stage is not None and deal.is_open:
        # Entry conditions hold while a deal stays in the stage: clearing one is refused.
        missing = missing_requirements(deal, deal.stage)
        if missing:
            raise StageRequirementsMissing(deal.stage, missing)
    changes = diff(before, snapshot(deal, DEAL_FIELDS))
    if coworkers is not None:
        old = sorted(deal.coworkers.values_list("pk", flat=True))
        new = sorted(u.pk for u in coworkers)
        if old != new:
            deal.coworkers.set(coworkers)
            changes["coworkers"] = [old, new]
    if not changes:
        return deal
    changes["version"] = [deal.version, deal.version + 1]
    deal.version += 1
    deal.save()
    stage_days.transfer(deal.pk, old=owners, new=(deal.responsible_id, deal.team_id))
    audit_record(actor=actor, instance=deal, object_type="deal", action="update", changes=changes)
    event_record(
        name="deal.updated",
        object_type="deal",
        object_id=deal.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    return deal


def _locked_open(actor: User | None, deal: Deal, version: int | None) -> Deal:
    # Lock the deal row only: PostgreSQL refuses FOR UPDATE on the nullable (stage) join side.
    deal = (
        Deal.objects.select_for_update(of=("self",))
        .select_related("pipeline", "stage")
        .get(pk=deal.pk)
    )
    _check(actor, "deal", "edit", deal)
    if deal.deleted_at is not None:
        raise FieldErrors.single("deal", _("The deal is in the recycle bin."))
    if version is not None and int(version) != deal.version:
        raise StaleVersion(current_version=deal.version)
    return deal


def _after_move(
    deal: Deal,
    *,
    actor: User | None,
    from_stage: Stage | None,
    from_status: str,
    now: Any,
    event: str,
    previous: tuple[Any, Any],
    extra: dict[str, Any] | None = None,
) -> Deal:
    change = _record_change(
        deal,
        actor=actor,
        from_stage=from_stage,
        from_status=from_status,
        now=now,
        previous=previous,
    )
    audit_changes: dict[str, Any] = {"version": [deal.version, deal.version + 1]}
    if from_stage != deal.stage:
        audit_changes["stage"] = [
            from_stage.pk if from_stage else None,
            deal.stage.pk if deal.stage else None,
        ]
    if from_status != deal.status:
        audit_changes["status"] = [from_status, deal.status]
    audit_changes.update(extra or {})
    deal.version += 1
    deal.save()
    audit_record(
        actor=actor, instance=deal, object_type="deal", action="update", changes=audit_changes
    )
    event_record(
        name=event,
        object_type="deal",
        object_id=deal.pk,
        actor=actor,
        payload={
            "from_stage": from_stage.pk if from_stage else None,
            "to_stage": deal.stage.pk if deal.stage else None,
            "seconds_in_previous": change.seconds_in_previous,
            "limit_exceeded": change.limit_exceeded,
        },
    )
    return deal


@transaction.atomic
def deal_move(
    *,
    actor: User | None,
    deal: Deal,
    stage: Stage | int,
    version: int | None = None,
    fields: dict[str, Any] | None = None,
) -> Deal:
    """Move an open deal to another stage of its pipeline.

    Strict pipelines refuse a forward jump over a stage and a stage whose entry fields are
    empty (``fields`` may fill them in the same step: the board's dialog sends them).
    ``version`` is what the caller saw: a stale one (someone moved it meanwhile) is refused.
    """
    deal = _locked_open(actor, deal, version)
    # Re-read even a Stage given as an object: its order and state must be the current ones.
    target = Stage.objects.filter(pk=stage.pk if isinstance(stage, Stage) else stage).first()
    if target is None:
        raise FieldErrors.single("stage_id", _("No such stage."))
    if not deal.pipeline.has_stages:
        raise FieldErrors.single("stage_id", _("A stageless pipeline has no stages."))
    if target.pipeline_id != deal.pipeline_id:
        raise FieldErrors.single(
            "stage_id",
            _("“%(stage)s” belongs to another pipeline than “%(pipeline)s”.")
            % {"stage": target.name, "pipeline": deal.pipeline.name},
        )
    if not target.is_active:
        raise FieldErrors.single("stage_id", _("This stage is no longer in use."))
    if deal.status != DealStatus.OPEN:
        raise FieldErrors.single("status", _("The deal is closed; reopen it first."))
    if deal.stage_id == target.pk:
        return deal
    if deal.pipeline.is_strict and deal.stage is not None:
        between = deal.pipeline.stages.filter(
            is_active=True, order__gt=deal.stage.order, order__lt=target.order
        ).order_by("order")
        skipped = list(between.values_list("name", flat=True))
        if target.order > deal.stage.order and skipped:
            raise FieldErrors.single(
                "stage_id",
                _("Stages go in order in this pipeline: pass “%(stages)s” first.")
                % {"stages": "”, “".join(skipped)},
            )
    if fields:
        deal = deal_update(actor=actor, deal=deal, data=fields)
        deal = (
            Deal.objects.select_for_update(of=("self",))
            .select_related("pipeline", "stage")
            .get(pk=deal.pk)
        )
    missing = missing_requirements(deal, target)
    if missing:
        raise StageRequirementsMissing(target, missing)
    now = timezone.now()
    from_stage = deal.stage
    previous = _enter_stage(deal, target, now)
    return _after_move(
        deal,
        actor=actor,
        from_stage=from_stage,
        from_status=DealStatus.OPEN,
        now=now,
        previous=previous,
        event="deal.stage_changed",
    )


@transaction.atomic
def deal_win(
    *, actor: User | None, deal: Deal, amount: Any = None, version: int | None = None
) -> Deal:
    """Close the deal as won with its actual amount (the planned one unless given)."""
    deal = _locked_open(actor, deal, version)
    if deal.status != DealStatus.OPEN:
        raise FieldErrors.single("status", _("The deal is already closed."))
    errors: dict[str, list[str]] = {}
    actual = _amount(amount, "amount", errors) if amount not in (None, "") else deal.amount
    if actual is None and not errors:
        errors["amount"] = [_("Enter the actual amount of the won deal.")]
    if deal.pipeline.is_strict and deal.stage is not None:
        last = deal.pipeline.stages.filter(is_active=True).order_by("-order", "-id").first()
        if last is not None and last.pk != deal.stage_id:
            errors["stage_id"] = [
                _("In this pipeline a deal is won from its last stage, “%(stage)s”.")
                % {"stage": last.name}
            ]
    if errors:
        raise FieldErrors(errors)
    now = timezone.now()
    from_stage = deal.stage
    deal.status = DealStatus.WON
    deal.won_amount = actual
    deal.closed_at = now
    previous = _enter_stage(deal, deal.stage, now)
    return _after_move(
        deal,
        actor=actor,
        from_stage=from_stage,
        from_status=DealStatus.OPEN,
        now=now,
        previous=previous,
        event="deal.won",
        extra={"won_amount": [None, str(actual)]},
    )


@transaction.atomic
def deal_lose(
    *,
    actor: User | None,
    deal: Deal,
    reason_id: Any,
    comment: str = "",
    version: int | None = None,
) -> Deal:
    """Close the deal as lost: a reason from the list is required, a comment optional."""
    deal = _locked_open(actor, deal, version)
    if deal.status != DealStatus.OPEN:
        raise FieldErrors.single("status", _("The deal is already closed."))
    reason = LossReason.objects.filter(pk=_int(reason_id) or 0, is_active=True).first()
    if reason is None:
        raise FieldErrors.single("loss_reason_id", _("Choose why the deal was lost."))
    now = timezone.now()
    from_stage = deal.stage
    deal.status = DealStatus.LOST
    deal.loss_reason = reason
    deal.loss_comment = str(comment or "").strip()[:2000]
    deal.closed_at = now
    previous = _enter_stage(deal, deal.stage, now)
    return _after_move(
        deal,
        actor=actor,
        from_stage=from_stage,
        from_status=DealStatus.OPEN,
        now=now,
        previous=previous,
        event="deal.lost",
        extra={"loss_reason": [None, reason.pk], "loss_comment": [None, deal.loss_comment]},
    )


@transaction.atomic
def deal_reopen(*, actor: User | None, deal: Deal, version: int | None = None) -> Deal:
    """Open a won or lost deal again, in the stage it was closed from."""
    deal = _locked_open(actor, deal, version)
    if deal.status == DealStatus.OPEN:
        return deal
    previous = deal.status
    now = timezone.now()
    deal.status = DealStatus.OPEN
    deal.closed_at = None
    deal.loss_reason = None
    deal.loss_comment = ""
    deal.won_amount = None
    stay = _enter_stage(deal, deal.stage, now)
    return _after_move(
        deal,
        actor=actor,
        from_stage=deal.stage,
        from_status=previous,
        now=now,
        previous=stay,
        event="deal.reopened",
    )


def _soft_delete(actor: User | None, obj: Deal | Lead, object_type: str) -> None:
    """Move a deal or lead to the recycle bin: audited, with a ``<type>.deleted`` event."""
    if obj.deleted_at is not None:
        return
    obj.deleted_at = timezone.now()
    obj.deleted_by = actor if actor and actor.pk else None
    obj.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    audit_record(
        actor=actor,
        instance=obj,
        object_type=object_type,
        action="delete",
        changes={"deleted_at": [None, obj.deleted_at.isoformat()]},
    )
    event_record(
        name=f"{object_type}.deleted", object_type=object_type, object_id=obj.pk, actor=actor
    )


@transaction.atomic
def deal_delete(*, actor: User | None, deal: Deal) -> None:
    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    _check(actor, "deal", "delete", deal)
    _soft_delete(actor, deal, "deal")


@transaction.atomic
def deal_restore(*, actor: User | None, deal: Deal) -> None:
    deal = Deal.objects.select_for_update().get(pk=deal.pk)
    _check(actor, "deal", "delete", deal)
    if deal.deleted_at is None:
        return
    old = deal.deleted_at.isoformat()
    deal.deleted_at = None
    deal.deleted_by = None
    deal.save(update_fields=["deleted_at", "deleted_by", "updated_at"])
    audit_record(
        actor=actor,
        instance=deal,
        object_type="deal",
        action="restore",
        changes={"deleted_at": [old, None]},
    )
    event_record(name="deal.restored", object_type="deal", object_id=deal.pk, actor=actor)


def deals_mark_stalled(*, now: Any = None, limit: int = 500) -> int:
    """Flag open deals whose stage time limit ran out and record ``deal.stalled`` — once per
    stay in a stage (a move resets the flag). Safe to run concurrently and repeatedly."""
    now = now or timezone.now()
    done = 0
    ids = list(
        Deal.objects.filter(
            status=DealStatus.OPEN,
            stage_deadline__lt=now,
            stalled_at__isnull=True,
            deleted_at__isnull=True,
        )
        .order_by("stage_deadline")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        with transaction.atomic():
            # The conditional update is the "exactly once": a second sweeper updates 0 rows.
            won = Deal.objects.filter(pk=pk, stalled_at__isnull=True, status=DealStatus.OPEN)
            if not won.update(stalled_at=now):
                continue
            deal = Deal.objects.select_related("stage").get(pk=pk)
            days = (now - deal.stage_entered_at).days
            event_record(
                name="deal.stalled",
                object_type="deal",
                object_id=deal.pk,
                payload={
                    "stage": deal.stage_id,
                    "stage_name": deal.stage.name if deal.stage else "",
                    "days_in_stage": days,
                    "responsible": deal.responsible_id,
                    "entered_at": deal.stage_entered_at.isoformat(),
                },
            )
            done += 1
    return done


def deals_contacted(
    *, company_id: int | None, person_id: int | None, deal_id: int | None, at: Any
) -> int:
    """A call, email, meeting or message with a client was done at ``at``: the open deals
    of that client (and the deal named) count it as their last contact."""
    q = Q()
    if deal_id:
        q |= Q(pk=deal_id)
    if company_id:
        q |= Q(company_id=company_id)
    if person_id:
        q |= Q(person_id=person_id) | Q(contact_id=person_id)
    if not q:
        return 0
    return (
        Deal.objects.filter(q, status=DealStatus.OPEN, deleted_at__isnull=True)
        .filter(Q(last_contact_at__isnull=True) | Q(last_contact_at__lt=at))
        .update(last_contact_at=at)
    )


def deals_mark_silent(*, now: Any = None, limit: int = 500) -> int:
    """Record ``deal.stalled`` (reason: no contact) for open deals whose client has had no
    contact for the pipeline's ``no_contact_days`` — once per silence: a new contact starts
    a new one. Safe to run concurrently and repeatedly (conditional update)."""
    now = now or timezone.now()
    done = 0
    for pipeline in Pipeline.objects.filter(no_contact_days__isnull=False, is_active=True):
        cutoff = now - dt.timedelta(days=int(pipeline.no_contact_days or 0))
        since = Coalesce(F("last_contact_at"), F("created_at"))
        due = (
            Deal.objects.filter(pipeline=pipeline, status=DealStatus.OPEN, deleted_at__isnull=True)
            .annotate(since=since)
            .filter(since__lt=cutoff)
            .filter(Q(no_contact_alerted_at__isnull=True) | Q(no_contact_alerted_at__lt=F("since")))
        )
        for pk, silent_since in due.values_list("pk", "since")[:limit]:
            with transaction.atomic():
                won = Deal.objects.filter(pk=pk, status=DealStatus.OPEN).filter(
                    Q(no_contact_alerted_at__isnull=True)
                    | Q(no_contact_alerted_at__lt=silent_since)
                )
                if not won.update(no_contact_alerted_at=now):
                    continue
                deal = Deal.objects.select_related("stage").get(pk=pk)
                event_record(
                    name="deal.stalled",
                    object_type="deal",
                    object_id=deal.pk,
                    payload={
                        "reason": "no_contact",
                        "stage": deal.stage_id,
                        "stage_name": deal.stage.name if deal.stage else "",
                        "days_without_contact": (now - silent_since).days,
                        "responsible": deal.responsible_id,
                        "since": silent_since.isoformat(),
                    },
                )
                done += 1
    return done


# --- leads ------------------------------------------------------------------------------------


def _lead_clean(
    data: dict[str, Any], actor: User | None, errors: dict[str, list[str]], existing: Lead | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, size in (
        ("name", 200),
        ("company_name", 300),
        ("address", 300),
        ("interest", 200),
        ("utm_source", 100),
        ("utm_medium", 100),
        ("utm_campaign", 100),
        ("source", 100),
    ):
        if name in data:
            out[name] = str(data[name] or "").strip()[:size]
    if "text" in data:
        out["text"] = str(data["text"] or "").strip()
    if "phone" in data:
        raw = str(data["phone"] or "").strip()[:100]
        out["phone"] = raw
        parsed = parse_phone(raw, default_region=settings.DEFAULT_PHONE_REGION) if raw else None
        out["phone_e164"] = parsed.e164 if parsed and parsed.valid and parsed.e164 else ""
    if "email" in data:
        raw = str(data["email"] or "").strip()
        if raw:
            email = normalize_email(raw)
            if not email.valid:
                errors["email"] = [_("“%(email)s” is not a valid email address.") % {"email": raw}]
            out["email"] = email.normalized if email.valid else raw
        else:
            out["email"] = ""
    if "amount" in data:
        out["amount"] = _amount(data["amount"], "amount", errors)
    if "currency" in data or existing is None:
        out["currency"] = _currency(data.get("currency"), errors)
    if "channel" in data or existing is None:
        channel = str(data.get("channel") or LeadChannel.MANUAL)
        if channel not in LeadChannel.values:
            errors["channel"] = [_("Unknown channel.")]
        out["channel"] = channel
    if "responsible_id" in data or existing is None:
        out["responsible"] = resolve_responsible(actor, "lead", data.get("responsible_id"), errors)
    if "custom_fields" in data or existing is None:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="lead",
                values=dict(data.get("custom_fields") or {}),
                existing=existing.custom_fields if existing else None,
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    name_given = out.get("name", existing.name if existing else "")
    contact_given = any(
        out.get(k, getattr(existing, k, "") if existing else "")
        for k in ("phone", "email", "company_name")
    )
    if not name_given and not contact_given:
        errors["name"] = [_("Give at least a name, a phone, an email or a company name.")]
    return out


def lead_matches(lead: Lead, actor: User | None) -> dict[str, list[Any]]:
    """Directory records the lead's contacts point to (the duplicate guard's matcher)."""
    phones = [lead.phone_e164] if lead.phone_e164 else []
    emails = [lead.email] if lead.email and "@" in lead.email else []
    out: dict[str, list[Any]] = {"company": [], "person": []}
    if lead.name or phones or emails:
        out["person"] = find_duplicates(
            object_type="person", name=lead.name, phones=phones, emails=emails, user=actor
        )
    if lead.company_name:
        out["company"] = find_duplicates(
            object_type="company", name=lead.company_name, phones=phones, emails=emails, user=actor
        )
    return out


def _link_matches(lead: Lead, actor: User | None) -> None:
    """Link the lead to the best visible match when it is certain (phone, email, tax id)."""
    matches = lead_matches(lead, actor)
    strong = 90
    phones = [lead.phone_e164] if lead.phone_e164 else []
    emails = [lead.email] if lead.email and "@" in lead.email else []
    for kind, model in (("person", Person), ("company", Company)):
        best = next((c for c in matches[kind] if c.visible and c.score >= strong), None)
        if best is None and (phones or emails):
            # The same phone or email is certain, though the guard scores a lone phone lower.
            exact = find_duplicates(
                object_type=kind, name="", phones=phones, emails=emails, user=actor
            )
            best = next((c for c in exact if c.visible), None)
        if best is not None:
            setattr(lead, kind, model.objects.filter(pk=best.object_id).first())


@transaction.atomic
def lead_create(*, actor: User | None, data: dict[str, Any]) -> Lead:
    if actor is not None and not scope_allows(
        actor, "lead", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not create leads."))
    errors: dict[str, list[str]] = {}
    fields = _lead_clean(data, actor, errors, None)
    if errors:
        raise FieldErrors(errors)
    lead = Lead(**fields)
    lead.team = team_for(lead.responsible, actor)
    lead.created_by = actor if actor and actor.pk else None
    _link_matches(lead, actor)
    lead.save()
    changes = {
        k: [None, v] for k, v in snapshot(lead, LEAD_FIELDS).items() if v not in ("", None, {})
    }
    audit_record(actor=actor, instance=lead, object_type="lead", action="create", changes=changes)
    event_record(
        name="lead.created",
        object_type="lead",
        object_id=lead.pk,
        actor=actor,
        payload={"channel": lead.channel},
    )
    return lead


@transaction.atomic
def lead_update(
    *, actor: User | None, lead: Lead, data: dict[str, Any], version: int | None = None
) -> Lead:
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    _check(actor, "lead", "edit", lead)
    _check_version(lead, version)
    if lead.status == LeadStatus.CONVERTED:
        raise FieldErrors.single("status", _("A converted lead is kept as it was."))
    errors: dict[str, list[str]] = {}
    status = data.get("status")
    if status is not None and status not in (
        LeadStatus.NEW,
        LeadStatus.IN_WORK,
        LeadStatus.QUALIFIED,
    ):
        errors["status"] = [_("Use convert or reject for this status.")]
    fields = _lead_clean(data, actor, errors, lead)
    if errors:
        raise FieldErrors(errors)
    before = snapshot(lead, [*LEAD_FIELDS, "status"])
    for k, v in fields.items():
        setattr(lead, k, v)
    if status:
        lead.status = status
    if "responsible" in fields:
        lead.team = team_for(lead.responsible, actor)
    if {"phone", "email", "name", "company_name"} & set(fields):
        _link_matches(lead, actor)
    changes = diff(before, snapshot(lead, [*LEAD_FIELDS, "status"]))
    if not changes:
        return lead
    changes["version"] = [lead.version, lead.version + 1]
    lead.version += 1
    lead.save()
    audit_record(actor=actor, instance=lead, object_type="lead", action="update", changes=changes)
    event_record(
        name="lead.updated",
        object_type="lead",
        object_id=lead.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    return lead


@transaction.atomic
def lead_reject(*, actor: User | None, lead: Lead, reason: str, version: int | None = None) -> Lead:
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    _check(actor, "lead", "edit", lead)
    _check_version(lead, version)
    if lead.status == LeadStatus.CONVERTED:
        raise FieldErrors.single("status", _("A converted lead cannot be rejected."))
    clean = str(reason or "").strip()[:300]
    if not clean:
        raise FieldErrors.single("reject_reason", _("Say why the lead is rejected."))
    changes = {
        "status": [lead.status, LeadStatus.REJECTED],
        "reject_reason": [lead.reject_reason, clean],
        "version": [lead.version, lead.version + 1],
    }
    lead.status = LeadStatus.REJECTED
    lead.reject_reason = clean
    lead.version += 1
    lead.save()
    audit_record(actor=actor, instance=lead, object_type="lead", action="update", changes=changes)
    event_record(name="lead.rejected", object_type="lead", object_id=lead.pk, actor=actor)
    return lead


@transaction.atomic
def lead_convert(
    *,
    actor: User | None,
    lead: Lead,
    company_id: int | None = None,
    person_id: int | None = None,
    create_company: bool = True,
    create_person: bool = True,
    deal: dict[str, Any] | None = None,
    version: int | None = None,
) -> Deal:
    """Qualify the lead in one step: link or create its company and person, open a deal.

    Existing records win over new ones: ids given, then the lead's matches; a company or
    person is created only when none is found (the duplicate guard decides).
    """
    from rapport.parties.services import company_create, person_create

    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    _check(actor, "lead", "edit", lead)
    _check_version(lead, version)
    if lead.status in (LeadStatus.CONVERTED, LeadStatus.REJECTED):
        raise FieldErrors.single(
            "status",
            _("This lead is already %(status)s.") % {"status": lead.get_status_display()},
        )
    errors: dict[str, list[str]] = {}
    company = cast(
        Company | None,
        _visible_party(actor, Company, company_id, "company_id", errors)
        if company_id
        else lead.company,
    )
    person = cast(
        Person | None,
        _visible_party(actor, Person, person_id, "person_id", errors) if person_id else lead.person,
    )
    if errors:
        raise FieldErrors(errors)
    phones = [{"raw": lead.phone, "kind": "mobile"}] if lead.phone else []
    emails = [{"raw": lead.email}] if lead.email else []
    if company is None and create_company and lead.company_name:
        try:
            company = company_create(
                actor=actor,
                data={
                    "short_name": lead.company_name,
                    "kinds": ["client"],
                    "source": lead.source or lead.get_channel_display(),
                    "responsible_id": lead.responsible_id,
                },
            )
        except DuplicateFound as exc:
            company = _first_visible(Company, exc.candidates)
            if company is None:
                raise
    if person is None and create_person and (lead.name or phones or emails):
        name = lead.name or lead.email or lead.phone
        first, _sep, last = name.partition(" ")
        try:
            person = person_create(
                actor=actor,
                data={
                    "first_name": first,
                    "last_name": last,
                    "phones": phones,
                    "emails": emails,
                    "source": lead.source or lead.get_channel_display(),
                    "responsible_id": lead.responsible_id,
                    "address": lead.address,
                    "employments": [{"company_id": company.pk}] if company else [],
                },
            )
        except DuplicateFound as exc:
            person = _first_visible(Person, exc.candidates)
            if person is None:
                raise
    deal_data = {
        "title": lead.interest or lead.company_name or lead.name or _("Deal from a lead"),
        "amount": lead.amount,
        "currency": lead.currency or settings.DEFAULT_CURRENCY,
        "responsible_id": lead.responsible_id,
        "source": lead.source or lead.get_channel_display(),
        **(deal or {}),
        "company_id": company.pk if company else None,
        "person_id": person.pk if person else None,
        "contact_id": person.pk if person and company else None,
        "lead": lead,
    }
    new_deal = deal_create(actor=actor, data=deal_data)
    changes = {
        "status": [lead.status, LeadStatus.CONVERTED],
        "company": [lead.company_id, company.pk if company else None],
        "person": [lead.person_id, person.pk if person else None],
        "deal": [None, new_deal.pk],
        "version": [lead.version, lead.version + 1],
    }
    lead.status = LeadStatus.CONVERTED
    lead.company = company
    lead.person = person
    lead.converted_at = timezone.now()
    lead.version += 1
    lead.save()
    audit_record(actor=actor, instance=lead, object_type="lead", action="update", changes=changes)
    event_record(
        name="lead.converted",
        object_type="lead",
        object_id=lead.pk,
        actor=actor,
        payload={
            "deal": new_deal.pk,
            "company": company.pk if company else None,
            "person": person.pk if person else None,
        },
    )
    return new_deal


def _first_visible(model: type[Company] | type[Person], candidates: list[Any]) -> Any:
    for c in candidates:
        if c.visible and c.object_id:
            return model.objects.filter(pk=c.object_id, deleted_at__isnull=True).first()
    return None


@transaction.atomic
def lead_delete(*, actor: User | None, lead: Lead) -> None:
    lead = Lead.objects.select_for_update().get(pk=lead.pk)
    _check(actor, "lead", "delete", lead)
    _soft_delete(actor, lead, "lead")
