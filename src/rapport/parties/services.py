"""Every write to the directory: one transaction each, audited, with an outbox event.

Pages, the API and (later) the importer and automations call these functions and
nothing else, so a rule holds the same way whoever writes.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from rapport.accounts.models import User
from rapport.core.audit import audit_record, diff, snapshot
from rapport.core.bulk import objects_insert, rows_insert, rows_update
from rapport.core.concurrency import merge_stale
from rapport.core.customfields import custom_fields_clean, definitions_for
from rapport.core.emails import normalize_email, split_email_field
from rapport.core.errors import DuplicateFound, FieldErrors, PermissionDenied, StaleVersion
from rapport.core.events import changes_payload, event_record
from rapport.core.models import AuditEntry, CustomFieldDefinition, OutboxEvent, SearchDocument
from rapport.core.names import name_block_keys, name_key, recase, strip_legal_form
from rapport.core.ownership import parse_date as _parse_date
from rapport.core.ownership import resolve_responsible as _resolve_responsible
from rapport.core.ownership import team_for as _team_for
from rapport.core.phones import ParsedPhone, parse_phones, phone_region, timezone_for_phone
from rapport.core.scopes import scope_allows
from rapport.core.search import search_body, search_index
from rapport.core.taxids import normalize_tax_id
from rapport.parties.choices import (
    CompanyKind,
    CompanyRelationKind,
    EmploymentRole,
    EntityType,
    MessengerKind,
    PersonRelationKind,
    PhoneKind,
)
from rapport.parties.duplicates import find_duplicates, name_keys_save
from rapport.parties.models import (
    BankAccount,
    Company,
    CompanyNameKey,
    CompanyRelation,
    ContactPoint,
    Employment,
    Person,
    PersonNameKey,
    PersonRelation,
    Tag,
)

COMPANY_FIELDS = [
    "entity_type",
    "short_name",
    "full_name",
    "legal_form",
    "tax_id",
    "tax_country",
    "registration_number",
    "kinds_text",
    "industry",
    "website",
    "legal_address",
    "postal_address",
    "country",
    "city",
    "client_since",
    "responsible",
    "source",
    "notes",
    "custom_fields",
]
PERSON_FIELDS = [
    "first_name",
    "last_name",
    "middle_name",
    "birthday",
    "time_zone",
    "time_zone_manual",
    "city",
    "address",
    "responsible",
    "source",
    "notes",
    "custom_fields",
]
REQUIRED_MSG = "This field is required."


# --- contact points ---------------------------------------------------------------------------


def contact_points_build(
    *,
    phones: list[dict[str, Any]],
    emails: list[dict[str, Any]],
    messengers: list[dict[str, Any]],
    default_region: str,
    parse: Callable[..., list[ParsedPhone]] = parse_phones,
) -> tuple[list[ContactPoint], dict[str, list[str]]]:
    """Unsaved ContactPoints from the typed values; a cell may hold several numbers.
    ``parse``: ``parse_phones``, or a memo of it (the importer parses a cell once a chunk)."""
    points: list[ContactPoint] = []
    errors: dict[str, list[str]] = {}
    for item in phones:
        raw = str(item.get("raw") or item.get("value") or "").strip()
        if not raw:
            continue
        kind = item.get("kind") or PhoneKind.MOBILE
        if kind not in PhoneKind.values:
            errors.setdefault("phones", []).append(
                _("Unknown phone kind: %(kind)s.") % {"kind": kind}
            )
            continue
        # A number saved before keeps the region it was read with ("region": its country).
        region = str(item.get("region") or default_region)
        for parsed in parse(raw, default_region=region):
            points.append(
                ContactPoint(
                    channel="phone",
                    kind=kind,
                    raw=parsed.raw[:200],
                    value=parsed.e164 or "",
                    extension=parsed.extension or str(item.get("extension") or ""),
                    valid=parsed.valid,
                )
            )
    for item in emails:
        raw = str(item.get("raw") or item.get("value") or "").strip()
        for token in split_email_field(raw) if raw else []:
            email = normalize_email(token)
            if not email.valid:
                errors.setdefault("emails", []).append(
                    _("“%(email)s” is not a valid email address.") % {"email": token}
                )
                continue
            points.append(
                ContactPoint(
                    channel="email",
                    kind=str(item.get("kind") or "work"),
                    raw=token[:200],
                    value=email.normalized,
                )
            )
    for item in messengers:
        handle = str(item.get("raw") or item.get("value") or "").strip()
        if not handle:
            continue
        kind = item.get("kind") or MessengerKind.OTHER
        if kind not in MessengerKind.values:
            errors.setdefault("messengers", []).append(
                _("Unknown messenger: %(kind)s.") % {"kind": kind}
            )
            continue
        points.append(
            ContactPoint(
                channel="messenger",
                kind=kind,
                raw=handle[:200],
                value=handle.lstrip("@").lower()[:200],
            )
        )
    seen: set[tuple[str, str]] = set()
    unique: list[ContactPoint] = []
    for p in points:
        key = (p.channel, p.value or p.raw)
        if key in seen:
            continue
        seen.add(key)
        unique.append(p)
    for ch in ("phone", "email"):
        firsts = [p for p in unique if p.channel == ch]
        if firsts:
            firsts[0].is_primary = True
    for i, p in enumerate(unique):
        p.position = i
    return unique, errors


def _points_summary(points: list[ContactPoint]) -> list[str]:
    return [
        f"{p.channel}:{p.value or p.raw}{' x' + p.extension if p.extension else ''}" for p in points
    ]


def _collections(
    owner: Company | Person,
    points: list[ContactPoint] | None,
    data: dict[str, Any],
    *,
    current: bool = False,
) -> dict[str, Any]:
    """Contact details and tags as the audit log records them, so a stale edit merges them
    like plain fields: untouched in the form -> the values saved meanwhile stay (R10)."""
    out: dict[str, Any] = {}
    if points is not None:
        out["contact_points"] = _points_summary(points)
    if data.get("tags") is not None:
        out["tags"] = (
            sorted(owner.tags.values_list("name", flat=True))
            if current
            else sorted({n.strip()[:60] for n in data["tags"] if n and n.strip()})
        )
    return out


def _replace_points(owner: Company | Person, points: list[ContactPoint]) -> None:
    field = "company" if isinstance(owner, Company) else "person"
    ContactPoint.objects.filter(**{field: owner}).delete()
    for p in points:
        setattr(p, field, owner)
    ContactPoint.objects.bulk_create(points)


def _current_points(owner: Company | Person) -> list[ContactPoint]:
    return list(owner.contact_points.all())


# --- shared checks ----------------------------------------------------------------------------


def _kept_points(old: list[ContactPoint], channel: str) -> list[dict[str, Any]]:
    """Saved contact details as service input; a saved number is read again in its own
    country, not in the region of the request that keeps it."""
    out: list[dict[str, Any]] = []
    for p in old:
        if p.channel != channel:
            continue
        item: dict[str, Any] = {"raw": p.raw, "kind": p.kind, "extension": p.extension}
        if channel == "phone" and p.valid and p.value:
            item["region"] = phone_region(p.value)
        out.append(item)
    return out


def contact_points_input(owner: Company | Person, channel: str) -> list[dict[str, Any]]:
    """A record's saved phones or emails in the form the create/update services take (the
    importer and the merge extend or restore them)."""
    return _kept_points(_current_points(owner), channel)


def _tags(names: list[str]) -> list[Tag]:
    clean = sorted({n.strip()[:60] for n in names if n and n.strip()})
    existing = {t.name: t for t in Tag.objects.filter(name__in=clean)}
    for n in clean:
        if n not in existing:
            existing[n] = Tag.objects.create(name=n)
    return [existing[n] for n in clean]


def _visible_or_error(actor: User | None, obj: Company | Person, object_type: str) -> bool:
    return actor is None or scope_allows(
        actor, object_type, "view", owner_id=obj.responsible_id, team_id=obj.team_id
    )


def _check_write(actor: User | None, object_type: str, action: str, obj: Company | Person) -> None:
    if actor is not None and not scope_allows(
        actor, object_type, action, owner_id=obj.responsible_id, team_id=obj.team_id
    ):
        raise PermissionDenied(_("You may not %(action)s this record.") % {"action": _(action)})


def _check_version(
    obj: Company | Person,
    object_type: str,
    version: int | None,
    submitted: dict[str, Any],
    current: dict[str, Any],
    merge: bool,
) -> dict[str, Any]:
    """The fields to apply; raises StaleVersion when ``version`` is stale and cannot merge."""
    if version is None or int(version) == obj.version:
        return submitted
    if not merge:
        raise StaleVersion(current_version=obj.version)
    apply, conflicts = merge_stale(
        object_type=object_type,
        object_id=obj.pk,
        read_version=int(version),
        current=current,
        submitted=submitted,
    )
    if conflicts:
        raise StaleVersion(current_version=obj.version, conflicts=conflicts)
    return apply


# --- companies --------------------------------------------------------------------------------


def _company_clean(
    data: dict[str, Any],
    actor: User | None,
    errors: dict[str, list[str]],
    existing: Company | None,
    *,
    definitions: list[CustomFieldDefinition] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "short_name" in data or existing is None:
        raw_name = str(data.get("short_name") or "").strip()
        if not raw_name:
            errors["short_name"] = [_(REQUIRED_MSG)]
        stripped, form = strip_legal_form(raw_name)
        out["short_name"] = raw_name[:200]
        if not stripped and raw_name:
            errors["short_name"] = [_("Enter the company's name, not only its legal form.")]
    for f in (
        "full_name",
        "legal_form",
        "registration_number",
        "industry",
        "website",
        "legal_address",
        "postal_address",
        "city",
        "source",
        "notes",
    ):
        if f in data:
            out[f] = str(data[f] or "").strip()
    if "short_name" in out and not out.get("legal_form") and not (existing and existing.legal_form):
        _stripped, form = strip_legal_form(out["short_name"])
        if form:
            out["legal_form"] = form
    if "entity_type" in data:
        if data["entity_type"] not in EntityType.values:
            errors["entity_type"] = [_("Choose a legal entity or a sole trader.")]
        else:
            out["entity_type"] = data["entity_type"]
    if "country" in data:
        out["country"] = str(data["country"] or "").strip().upper()[:2]
    if "kinds" in data:
        kinds = data["kinds"] or []
        if isinstance(kinds, str):
            kinds = [k for k in kinds.split(",") if k.strip()]
        bad = [k for k in kinds if k not in CompanyKind.values]
        if bad:
            errors["kinds"] = [_("Unknown kind: %(kinds)s.") % {"kinds": ", ".join(bad)}]
        out["kinds_text"] = (
            "," + ",".join(sorted(set(kinds), key=CompanyKind.values.index)) + "," if kinds else ""
        )
    if "tax_id" in data:
        raw_tax = str(data.get("tax_id") or "").strip()
        country = str(data.get("tax_country") or data.get("country") or "").upper() or None
        if raw_tax:
            res = normalize_tax_id(raw_tax, country=country)
            if not res.valid:
                msg = {
                    "not_digits": _("A tax id holds digits only."),
                    "length": _("Wrong number of digits for this country's tax id."),
                    "checksum": _("The tax id's check digits do not match: check for a typo."),
                }.get(res.error_code or "", _("Invalid tax id."))
                errors["tax_id"] = [msg]
            out["tax_id"] = res.normalized
            out["tax_country"] = country or ""
        else:
            out["tax_id"], out["tax_country"] = "", country or ""
    if "client_since" in data:
        out["client_since"] = _parse_date(data["client_since"], "client_since", errors)
    if "responsible_id" in data or existing is None:
        out["responsible"] = _resolve_responsible(
            actor, "company", data.get("responsible_id"), errors
        )
    if "custom_fields" in data:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="company",
                values=data["custom_fields"] or {},
                existing=existing.custom_fields if existing else None,
                definitions=definitions,
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    elif existing is None:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="company", values={}, definitions=definitions
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    return out


def _company_reindex(company: Company) -> None:
    search_index(**_company_search_doc(company, list(company.contact_points.all())))


def _company_search_doc(company: Company, points: list[ContactPoint]) -> dict[str, Any]:
    """``search_index`` arguments of a company with these contact points."""
    return {
        "object_type": "company",
        "object_id": company.pk,
        "title": company.short_name,
        "subtitle": company.city or company.industry,
        "body": search_body(
            names=[company.short_name, company.full_name],
            phones=[p.value for p in points if p.channel == "phone" and p.value]
            + [p.raw for p in points if p.channel == "phone"],
            emails=[p.value for p in points if p.channel == "email"],
            extra=[company.tax_id, company.website],
        ),
        "team_id": company.team_id,
        "responsible_id": company.responsible_id,
        "deleted": company.deleted_at is not None,
    }


def _phones_and_emails(points: list[ContactPoint]) -> tuple[list[str], list[str]]:
    return (
        [p.value for p in points if p.channel == "phone" and p.value],
        [p.value for p in points if p.channel == "email"],
    )


@transaction.atomic
def company_create(*, actor: User | None, data: dict[str, Any], force: bool = False) -> Company:
    """Create a company with its contact points and bank accounts; guard against duplicates."""
    if actor is not None and not scope_allows(
        actor, "company", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not create companies."))
    errors: dict[str, list[str]] = {}
    fields = _company_clean(data, actor, errors, None)
    region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
    points, perr = contact_points_build(
        phones=data.get("phones") or [],
        emails=data.get("emails") or [],
        messengers=[],
        default_region=region,
    )
    errors.update(perr)
    if errors:
        raise FieldErrors(errors)
    phones, emails = _phones_and_emails(points)
    if not force:
        cands = find_duplicates(
            object_type="company",
            name=fields["short_name"],
            tax_id=fields.get("tax_id", ""),
            phones=phones,
            emails=emails,
            user=actor,
        )
        if cands:
            raise DuplicateFound(cands)
    responsible = fields.get("responsible")
    company = Company(**fields)
    company.team = _team_for(responsible, actor)
    company.created_by = actor if actor and actor.pk else None
    company.name_key = name_key(company.short_name)
    company.save()
    name_keys_save(company)
    if data.get("tags") is not None:
        company.tags.set(_tags(list(data["tags"])))
    _replace_points(company, points)
    for acc in data.get("bank_accounts") or []:
        _bank_account_add(company, acc)
    _company_reindex(company)
    changes = {
        k: [None, v]
        for k, v in snapshot(company, COMPANY_FIELDS).items()
        if v not in ("", None, {})
    }
    if points:
        changes["contact_points"] = [None, _points_summary(points)]
    audit_record(
        actor=actor, instance=company, object_type="company", action="create", changes=changes
    )
    event_record(name="company.created", object_type="company", object_id=company.pk, actor=actor)
    return company


def _bank_summary(accounts: list[BankAccount]) -> list[str]:
    return [f"{a.bank_name}: {a.account_number} {a.bic}".strip() for a in accounts]


def _bank_accounts_set(company: Company, wanted: list[dict[str, Any]]) -> list[Any] | None:
    """The given accounts replace the stored ones in order (the edit page shows the first);
    stored ones beyond the list stay. Returns [old, new] summaries when anything changed."""
    stored = list(company.bank_accounts.all())
    before = _bank_summary(stored)
    for i, acc in enumerate(wanted):
        bank, number = (
            str(acc.get("bank_name") or "").strip(),
            str(acc.get("account_number") or "").strip(),
        )
        if not bank or not number:
            raise FieldErrors.single(
                "bank_accounts", _("A bank account needs a bank and an account number.")
            )
        if i < len(stored):
            row = stored[i]
            row.bank_name, row.account_number = bank, number.replace(" ", "")
            row.bic = str(acc.get("bic") or "").strip()
            row.save(update_fields=["bank_name", "account_number", "bic", "updated_at"])
        else:
            _bank_account_add(company, acc)
    after = _bank_summary(list(company.bank_accounts.all()))
    return [before, after] if before != after else None


def _bank_account_add(company: Company, acc: dict[str, Any]) -> BankAccount:
    bank, number = (
        str(acc.get("bank_name") or "").strip(),
        str(acc.get("account_number") or "").strip(),
    )
    if not bank or not number:
        raise FieldErrors.single(
            "bank_accounts", _("A bank account needs a bank and an account number.")
        )
    return BankAccount.objects.create(
        company=company,
        bank_name=bank,
        account_number=number.replace(" ", ""),
        bic=str(acc.get("bic") or "").strip(),
        correspondent_account=str(acc.get("correspondent_account") or "").strip(),
        currency=str(acc.get("currency") or "").upper()[:3],
    )


@transaction.atomic
def company_update(
    *,
    actor: User | None,
    company: Company,
    data: dict[str, Any],
    version: int | None = None,
    merge: bool = False,
    force: bool = True,
) -> Company:
    """Change the fields present in ``data``.

    ``version`` is the version the caller read: a stale one raises StaleVersion,
    unless ``merge`` (pages) and the other changes touch other fields.
    """
    company = Company.objects.select_for_update().get(pk=company.pk)
    _check_write(actor, "company", "edit", company)
    errors: dict[str, list[str]] = {}
    fields = _company_clean(data, actor, errors, company)
    if errors:
        raise FieldErrors(errors)
    before = snapshot(company, COMPANY_FIELDS)
    fields_cmp = {
        ("responsible" if k == "responsible" else k): (v.pk if k == "responsible" and v else v)
        for k, v in fields.items()
    }
    new_points: list[ContactPoint] | None = None
    if "phones" in data or "emails" in data:
        old = _current_points(company)
        region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
        phones_in = data.get("phones")
        emails_in = data.get("emails")
        new_points, perr = contact_points_build(
            phones=phones_in if phones_in is not None else _kept_points(old, "phone"),
            emails=emails_in if emails_in is not None else _kept_points(old, "email"),
            messengers=[],
            default_region=region,
        )
        if perr:
            raise FieldErrors(perr)
    apply = _check_version(
        company,
        "company",
        version,
        {**fields_cmp, **_collections(company, new_points, data)},
        {**before, **_collections(company, _current_points(company), data, current=True)},
        merge,
    )
    if "contact_points" not in apply:
        new_points = None  # a stale form's contact details: the ones saved meanwhile stay
    for k in apply:
        if k not in fields:
            continue
        setattr(company, k, fields[k])
    if "short_name" in apply:
        company.name_key = name_key(company.short_name)
    if "responsible" in apply:
        company.team = _team_for(company.responsible, actor)
    if not force and ("short_name" in apply or "tax_id" in apply or new_points is not None):
        phones, emails = _phones_and_emails(
            new_points if new_points is not None else _current_points(company)
        )
        cands = find_duplicates(
            object_type="company",
            name=company.short_name,
            tax_id=company.tax_id,
            phones=phones,
            emails=emails,
            exclude_id=company.pk,
            user=actor,
        )
        if cands:
            raise DuplicateFound(cands)
    after = snapshot(company, COMPANY_FIELDS)
    changes = diff(before, after)
    if new_points is not None:
        old_summary = _points_summary(_current_points(company))
        new_summary = _points_summary(new_points)
        if old_summary != new_summary:
            _replace_points(company, new_points)
            changes["contact_points"] = [old_summary, new_summary]
    if data.get("tags") is not None and "tags" in apply:
        old_tags = sorted(company.tags.values_list("name", flat=True))
        tags = _tags(list(data["tags"]))
        if old_tags != [t.name for t in tags]:
            company.tags.set(tags)
            changes["tags"] = [old_tags, [t.name for t in tags]]
    if data.get("bank_accounts") is not None:
        banks = _bank_accounts_set(company, list(data["bank_accounts"]))
        if banks is not None:
            changes["bank_accounts"] = banks
    if not changes:
        return company
    changes["version"] = [company.version, company.version + 1]
    company.version += 1
    company.save(
        update_fields=[*(set(apply) & set(fields)), "name_key", "team", "version", "updated_at"]
    )
    if "short_name" in apply:
        name_keys_save(company)
    _company_reindex(company)
    audit_record(
        actor=actor, instance=company, object_type="company", action="update", changes=changes
    )
    event_record(
        name="company.updated",
        object_type="company",
        object_id=company.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    return company


# --- people -----------------------------------------------------------------------------------


def _person_clean(
    data: dict[str, Any],
    actor: User | None,
    errors: dict[str, list[str]],
    existing: Person | None,
    *,
    definitions: list[CustomFieldDefinition] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in ("first_name", "last_name", "middle_name"):
        if f in data:
            value = " ".join(str(data[f] or "").split())
            out[f] = recase(value) if value else ""
    for f in ("city", "address", "source", "notes"):
        if f in data:
            out[f] = str(data[f] or "").strip()
    if existing is None or any(f in data for f in ("first_name", "last_name")):
        first = out.get("first_name", existing.first_name if existing else "")
        last = out.get("last_name", existing.last_name if existing else "")
        if not first and not last:
            errors["last_name"] = [_("Enter a first or a last name.")]
    if "birthday" in data:
        out["birthday"] = _parse_date(data["birthday"], "birthday", errors)
        if out["birthday"] and out["birthday"] > timezone.localdate():
            errors["birthday"] = [_("A birthday cannot be in the future.")]
    if "time_zone" in data:
        tz = str(data["time_zone"] or "").strip()
        if tz:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                errors["time_zone"] = [_("Unknown time zone: %(tz)s.") % {"tz": tz}]
        out["time_zone"] = tz
        out["time_zone_manual"] = bool(tz)
    if "responsible_id" in data or existing is None:
        out["responsible"] = _resolve_responsible(
            actor, "person", data.get("responsible_id"), errors
        )
    if "custom_fields" in data:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="person",
                values=data["custom_fields"] or {},
                existing=existing.custom_fields if existing else None,
                definitions=definitions,
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    elif existing is None:
        try:
            out["custom_fields"] = custom_fields_clean(
                object_type="person", values={}, definitions=definitions
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    return out


def _auto_time_zone(person: Person, points: list[ContactPoint]) -> None:
    if person.time_zone_manual:
        return
    for p in points:
        if p.channel == "phone" and p.valid and p.value:
            tz = timezone_for_phone(p.value)
            if tz:
                person.time_zone = tz
                return
    person.time_zone = ""


def _person_reindex(person: Person) -> None:
    points = list(person.contact_points.all())
    companies = list(
        person.employments.select_related("company").values_list("company__short_name", flat=True)
    )
    search_index(**_person_search_doc(person, points, companies))


def _person_search_doc(
    person: Person, points: list[ContactPoint], companies: list[str]
) -> dict[str, Any]:
    """``search_index`` arguments of a person with these contact points and employers."""
    return {
        "object_type": "person",
        "object_id": person.pk,
        "title": person.full_name,
        "subtitle": ", ".join(companies)[:300],
        "body": search_body(
            names=[person.full_name],
            phones=[p.value for p in points if p.channel == "phone" and p.value]
            + [p.raw for p in points if p.channel == "phone"],
            emails=[p.value for p in points if p.channel == "email"],
            extra=[p.value for p in points if p.channel == "messenger"],
        ),
        "team_id": person.team_id,
        "responsible_id": person.responsible_id,
        "deleted": person.deleted_at is not None,
    }


def _employments_clean(
    actor: User | None, items: list[dict[str, Any]], errors: dict[str, list[str]]
) -> list[tuple[Company, str, str]]:
    out: list[tuple[Company, str, str]] = []
    for item in items:
        try:
            company = Company.objects.get(
                pk=int(item.get("company_id") or 0), deleted_at__isnull=True
            )
        except (Company.DoesNotExist, ValueError, TypeError):
            errors["employments"] = [_("No such company.")]
            continue
        job = _employment_check(actor, company, item, errors)
        if job is not None:
            out.append(job)
    return out


def _employment_check(
    actor: User | None, company: Company, item: dict[str, Any], errors: dict[str, list[str]]
) -> tuple[Company, str, str] | None:
    """(company, position, role) of one employment the actor may record, else None + error."""
    if not _visible_or_error(actor, company, "company"):
        errors["employments"] = [_("No such company.")]  # same answer as missing (R2)
        return None
    role = item.get("role") or EmploymentRole.OTHER
    if role not in EmploymentRole.values:
        errors["employments"] = [_("Unknown role: %(role)s.") % {"role": role}]
        return None
    return company, str(item.get("position") or "").strip()[:150], role


@transaction.atomic
def person_create(*, actor: User | None, data: dict[str, Any], force: bool = False) -> Person:
    """Create a person with contact points and the companies they work at."""
    if actor is not None and not scope_allows(
        actor, "person", "create", owner_id=actor.pk, team_id=actor.team_id
    ):
        raise PermissionDenied(_("You may not create people."))
    errors: dict[str, list[str]] = {}
    fields = _person_clean(data, actor, errors, None)
    region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
    points, perr = contact_points_build(
        phones=data.get("phones") or [],
        emails=data.get("emails") or [],
        messengers=data.get("messengers") or [],
        default_region=region,
    )
    errors.update(perr)
    jobs = _employments_clean(actor, data.get("employments") or [], errors)
    if errors:
        raise FieldErrors(errors)
    person = Person(**fields)
    phones, emails = _phones_and_emails(points)
    if not force:
        cands = find_duplicates(
            object_type="person", name=person.full_name, phones=phones, emails=emails, user=actor
        )
        if cands:
            raise DuplicateFound(cands)
    person.team = _team_for(fields.get("responsible"), actor)
    person.created_by = actor if actor and actor.pk else None
    person.name_key = name_key(person.full_name)
    _auto_time_zone(person, points)
    person.save()
    name_keys_save(person)
    _replace_points(person, points)
    for company, position, role in jobs:
        Employment.objects.create(person=person, company=company, position=position, role=role)
    if data.get("tags") is not None:
        person.tags.set(_tags(list(data["tags"])))
    _person_reindex(person)
    changes = {
        k: [None, v]
        for k, v in snapshot(person, PERSON_FIELDS).items()
        if v not in ("", None, {}, False)
    }
    if points:
        changes["contact_points"] = [None, _points_summary(points)]
    if jobs:
        changes["employments"] = [None, [f"{c.pk}:{pos}:{r}" for c, pos, r in jobs]]
    audit_record(
        actor=actor, instance=person, object_type="person", action="create", changes=changes
    )
    event_record(name="person.created", object_type="person", object_id=person.pk, actor=actor)
    return person


@transaction.atomic
def person_update(
    *,
    actor: User | None,
    person: Person,
    data: dict[str, Any],
    version: int | None = None,
    merge: bool = False,
    force: bool = True,
) -> Person:
    person = Person.objects.select_for_update().get(pk=person.pk)
    _check_write(actor, "person", "edit", person)
    errors: dict[str, list[str]] = {}
    fields = _person_clean(data, actor, errors, person)
    jobs = (
        _employments_clean(actor, data["employments"], errors)
        if data.get("employments") is not None
        else None
    )
    if errors:
        raise FieldErrors(errors)
    before = snapshot(person, PERSON_FIELDS)
    fields_cmp = {k: (v.pk if k == "responsible" and v else v) for k, v in fields.items()}
    new_points: list[ContactPoint] | None = None
    if any(k in data for k in ("phones", "emails", "messengers")):
        old = _current_points(person)
        region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)

        def keep(channel: str) -> list[dict[str, Any]]:
            return _kept_points(old, channel)

        new_points, perr = contact_points_build(
            phones=data["phones"] if data.get("phones") is not None else keep("phone"),
            emails=data["emails"] if data.get("emails") is not None else keep("email"),
            messengers=data["messengers"]
            if data.get("messengers") is not None
            else keep("messenger"),
            default_region=region,
        )
        if perr:
            raise FieldErrors(perr)
    apply = _check_version(
        person,
        "person",
        version,
        {**fields_cmp, **_collections(person, new_points, data)},
        {**before, **_collections(person, _current_points(person), data, current=True)},
        merge,
    )
    if "contact_points" not in apply:
        new_points = None  # a stale form's contact details: the ones saved meanwhile stay
    for k in apply:
        if k not in fields:
            continue
        setattr(person, k, fields[k])
        if k == "time_zone":
            person.time_zone_manual = bool(fields[k])
    person.name_key = name_key(person.full_name)
    if "responsible" in apply:
        person.team = _team_for(person.responsible, actor)
    if not force:
        phones, emails = _phones_and_emails(
            new_points if new_points is not None else _current_points(person)
        )
        cands = find_duplicates(
            object_type="person",
            name=person.full_name,
            phones=phones,
            emails=emails,
            exclude_id=person.pk,
            user=actor,
        )
        if cands:
            raise DuplicateFound(cands)
    changes: dict[str, Any] = {}
    if new_points is not None:
        old_summary = _points_summary(_current_points(person))
        new_summary = _points_summary(new_points)
        if old_summary != new_summary:
            _replace_points(person, new_points)
            changes["contact_points"] = [old_summary, new_summary]
            _auto_time_zone(person, new_points)
    changes.update(diff(before, snapshot(person, PERSON_FIELDS)))
    if jobs is not None:
        old_jobs = sorted(f"{e.company_id}:{e.position}:{e.role}" for e in person.employments.all())
        new_jobs = sorted(f"{c.pk}:{pos}:{r}" for c, pos, r in jobs)
        if old_jobs != new_jobs:
            person.employments.exclude(company__in=[c for c, _p, _r in jobs]).delete()
            for company, position, role in jobs:
                Employment.objects.update_or_create(
                    person=person, company=company, defaults={"position": position, "role": role}
                )
            changes["employments"] = [old_jobs, new_jobs]
    if data.get("tags") is not None and "tags" in apply:
        old_tags = sorted(person.tags.values_list("name", flat=True))
        tags = _tags(list(data["tags"]))
        if old_tags != [t.name for t in tags]:
            person.tags.set(tags)
            changes["tags"] = [old_tags, [t.name for t in tags]]
    if not changes:
        return person
    changes["version"] = [person.version, person.version + 1]
    person.version += 1
    person.save(update_fields=[*PERSON_FIELDS, "name_key", "team", "version", "updated_at"])
    name_keys_save(person)
    _person_reindex(person)
    audit_record(
        actor=actor, instance=person, object_type="person", action="update", changes=changes
    )
    event_record(
        name="person.updated",
        object_type="person",
        object_id=person.pk,
        actor=actor,
        payload=changes_payload(changes),
    )
    return person


# --- recycle bin ------------------------------------------------------------------------------


def _reindex(obj: Company | Person) -> None:
    if isinstance(obj, Company):
        _company_reindex(obj)
    else:
        _person_reindex(obj)


@transaction.atomic
def party_delete(*, actor: User | None, obj: Company | Person) -> None:
    """Move a company or person to the recycle bin; its relations stay for a restore."""
    object_type = "company" if isinstance(obj, Company) else "person"
    _check_write(actor, object_type, "delete", obj)
    if obj.deleted_at is not None:
        return
    obj.deleted_at = timezone.now()
    obj.deleted_by = actor if actor and actor.pk else None
    obj.version += 1
    obj.save(update_fields=["deleted_at", "deleted_by", "version", "updated_at"])
    _reindex(obj)
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
def party_restore(*, actor: User | None, obj: Company | Person) -> None:
    """Bring a record back from the recycle bin (administrators only)."""
    if actor is not None and not actor.is_rapport_admin:
        raise PermissionDenied(_("Only an administrator can restore from the recycle bin."))
    object_type = "company" if isinstance(obj, Company) else "person"
    if obj.deleted_at is None:
        return
    old = obj.deleted_at.isoformat()
    obj.deleted_at = None
    obj.deleted_by = None
    obj.version += 1
    obj.save(update_fields=["deleted_at", "deleted_by", "version", "updated_at"])
    _reindex(obj)
    audit_record(
        actor=actor,
        instance=obj,
        object_type=object_type,
        action="restore",
        changes={"deleted_at": [old, None]},
    )
    event_record(
        name=f"{object_type}.restored", object_type=object_type, object_id=obj.pk, actor=actor
    )


PURGE_CHUNK = 1000  # records a statement reads, checks or deletes at once


def parties_purge_blockers(
    model: type[Company] | type[Person], ids: Sequence[int]
) -> dict[int, list[str]]:
    """What else refers to each of the records ``ids`` (deals, tasks, interactions …): a purge
    would lose it. Records nothing refers to are absent.

    Rows deleted with a record (on_delete=CASCADE: contact points, company links, relations,
    bank accounts, search keys) are part of it; rows that would only lose their reference
    (SET_NULL, SET_DEFAULT, SET) or that forbid the delete (PROTECT, RESTRICT) belong to
    something else and block the purge. The relations are the ones Django's deletion
    Collector follows, walked as it walks them (into the rows a CASCADE deletes too), with one
    query per blocking relation for all the records."""
    blocking: dict[int, list[str]] = {}
    protected: dict[int, list[tuple[str, int]]] = {}
    for part in _chunks(list(ids), PURGE_CHUNK):
        _blockers_walk(model, "", part, blocking, protected, (model,))
    for pk, found in protected.items():
        blocking[pk] = [_protected(found)]  # forbidden: the only reason given, as Django raises
    return blocking


def _blockers_walk(
    model: Any,
    path: str,
    ids: list[int],
    blocking: dict[int, list[str]],
    protected: dict[int, list[tuple[str, int]]],
    seen: tuple[Any, ...],
) -> None:
    """``path``: the lookup from ``model`` to the purged record's id ("" for the record)."""
    from django.db.models import CASCADE, DO_NOTHING, PROTECT, RESTRICT, Count
    from django.db.models.deletion import get_candidate_relations_to_delete

    rel: Any
    for rel in get_candidate_relations_to_delete(model._meta):
        on_delete = rel.field.remote_field.on_delete
        related: Any = rel.related_model
        lookup = f"{rel.field.name}__{path}" if path else rel.field.name
        if on_delete is DO_NOTHING:
            continue
        if on_delete is CASCADE:  # deleted with the record: what refers to those rows counts
            if related not in seen:
                _blockers_walk(related, lookup, ids, blocking, protected, (*seen, related))
            continue
        # RESTRICT refuses as PROTECT does (Django lets it pass for a row deleted along
        # another CASCADE path; no relation of a record's own rows is RESTRICT today)
        counts = (
            related._base_manager.filter(**{f"{lookup}__in": ids})
            .order_by()
            .values_list(lookup)
            .annotate(n=Count("pk"))
        )
        what = str(related._meta.verbose_name_plural)
        for pk, n in counts:
            if on_delete in (PROTECT, RESTRICT):
                protected.setdefault(pk, []).append((what, n))
            else:
                blocking.setdefault(pk, []).append(f"{what}: {n}")


def _protected(found: list[tuple[str, int]]) -> str:
    return f"{found[0][0]}: {sum(n for _what, n in found)}" if found else "?"


def party_purge_blockers(obj: Company | Person) -> list[str]:
    """What else refers to the record (``parties_purge_blockers`` for one record)."""
    model: type[Company] | type[Person] = Company if isinstance(obj, Company) else Person
    return parties_purge_blockers(model, [obj.pk]).get(obj.pk, [])


def _referred(obj: Company | Person, blockers: list[str]) -> FieldErrors:
    return FieldErrors.single(
        "id",
        _("%(record)s is referred to by other records (%(what)s).")
        % {"record": str(obj), "what": "; ".join(blockers)},
    )


@transaction.atomic
def party_purge(*, actor: User | None, obj: Company | Person, reason: str) -> None:
    """Remove a record for good (an import's undo): only while nothing else refers to it."""
    object_type = "company" if isinstance(obj, Company) else "person"
    refused = _parties_purge(actor=actor, object_type=object_type, objs=[obj], reason=reason)
    if refused:
        raise refused[obj.pk]


@transaction.atomic
def parties_purge(
    *, actor: User | None, object_type: str, objs: Sequence[Company | Person], reason: str
) -> dict[int, str]:
    """Remove records of one type for good (an import's undo), as ``party_purge`` removes
    one, a chunk at a time: a record is kept when the actor may not delete it or something
    else refers to it. Returns the ids kept -> why.

    Each removed record gets its audit entry and ``{type}.purged`` event, loses its search
    document, and takes the rows of its own with it (CASCADE)."""
    refused = _parties_purge(actor=actor, object_type=object_type, objs=objs, reason=reason)
    return {pk: str(exc) for pk, exc in refused.items()}


def _parties_purge(
    *, actor: User | None, object_type: str, objs: Sequence[Company | Person], reason: str
) -> dict[int, PermissionDenied | FieldErrors]:
    from django.db import router
    from django.db.models.deletion import Collector

    from rapport.core.events import in_dispatch
    from rapport.core.nudge import outbox_nudge_on_commit

    model: type[Company] | type[Person] = Company if object_type == "company" else Person
    who = actor if actor is not None and actor.pk else None
    kept: dict[int, PermissionDenied | FieldErrors] = {}
    purged = 0
    for start in range(0, len(objs), PURGE_CHUNK):
        allowed: list[Company | Person] = []
        for obj in objs[start : start + PURGE_CHUNK]:
            try:
                _check_write(actor, object_type, "delete", obj)
            except PermissionDenied as exc:
                kept[obj.pk] = exc  # checked first, as party_purge always did
                continue
            allowed.append(obj)
        blockers = parties_purge_blockers(model, [o.pk for o in allowed])
        for obj in allowed:
            if obj.pk in blockers:
                kept[obj.pk] = _referred(obj, blockers[obj.pk])
        gone = [o for o in allowed if o.pk not in blockers]
        if not gone:
            continue
        ids = [o.pk for o in gone]
        now = timezone.now()
        objects_insert(
            AuditEntry,
            [
                AuditEntry(
                    actor=who,
                    object_type=object_type,
                    object_id=o.pk,
                    object_repr=str(o)[:300],
                    action="delete",
                    changes={"purged": [None, reason]},
                )
                for o in gone
            ],
        )
        SearchDocument.objects.filter(object_type=object_type, object_id__in=ids).delete()
        collector = Collector(using=router.db_for_write(model))
        collector.collect(gone)
        collector.delete()  # the records and, in bulk, the rows of their own (CASCADE)
        objects_insert(
            OutboxEvent,
            [
                OutboxEvent(
                    name=f"{object_type}.purged",
                    object_type=object_type,
                    object_id=pk,
                    actor=who,
                    payload={},
                    available_at=now,
                )
                for pk in ids
            ],
        )
        purged += len(ids)
    if purged and not in_dispatch():
        outbox_nudge_on_commit()  # as event_record does
    return kept


# --- relations --------------------------------------------------------------------------------


@transaction.atomic
def company_relation_create(
    *, actor: User | None, from_company: Company, to_company: Company, kind: str, note: str = ""
) -> CompanyRelation:
    if kind not in CompanyRelationKind.values:
        raise FieldErrors.single("kind", _("Unknown relation."))
    if from_company.pk == to_company.pk:
        raise FieldErrors.single("to_company_id", _("A company cannot be related to itself."))
    _check_write(actor, "company", "edit", from_company)
    rel, created = CompanyRelation.objects.get_or_create(
        from_company=from_company, to_company=to_company, kind=kind, defaults={"note": note.strip()}
    )
    if created:
        audit_record(
            actor=actor,
            instance=from_company,
            object_type="company",
            action="update",
            changes={"relations": [None, f"{kind} {to_company.pk}"]},
        )
        event_record(
            name="company.related",
            object_type="company",
            object_id=from_company.pk,
            actor=actor,
            payload={"relation_id": rel.pk},
        )
    return rel


@transaction.atomic
def person_relation_create(
    *, actor: User | None, from_person: Person, to_person: Person, kind: str, note: str = ""
) -> PersonRelation:
    if kind not in PersonRelationKind.values:
        raise FieldErrors.single("kind", _("Unknown relation."))
    if from_person.pk == to_person.pk:
        raise FieldErrors.single("to_person_id", _("A person cannot be related to themselves."))
    _check_write(actor, "person", "edit", from_person)
    rel, created = PersonRelation.objects.get_or_create(
        from_person=from_person, to_person=to_person, kind=kind, defaults={"note": note.strip()}
    )
    if created:
        audit_record(
            actor=actor,
            instance=from_person,
            object_type="person",
            action="update",
            changes={"relations": [None, f"{kind} {to_person.pk}"]},
        )
        event_record(
            name="person.related",
            object_type="person",
            object_id=from_person.pk,
            actor=actor,
            payload={"relation_id": rel.pk},
        )
    return rel


@transaction.atomic
def relation_delete(*, actor: User | None, relation: CompanyRelation | PersonRelation) -> None:
    owner: Company | Person
    if isinstance(relation, CompanyRelation):
        owner, object_type = relation.from_company, "company"
    else:
        owner, object_type = relation.from_person, "person"
    _check_write(actor, object_type, "edit", owner)
    audit_record(
        actor=actor,
        instance=owner,
        object_type=object_type,
        action="update",
        changes={"relations": [f"{relation.kind} {relation.pk}", None]},
    )
    relation.delete()


# --- bulk writes (the importer) ----------------------------------------------------------------


class _Jobs:
    """Employments in an audit entry, written out once the new records have ids."""

    def __init__(self, jobs: list[tuple[Company, str, str]], *, sort: bool) -> None:
        self.jobs, self.sort = list(jobs), sort

    def render(self) -> list[str]:
        out = [f"{c.pk}:{pos}:{role}" for c, pos, role in self.jobs]
        return sorted(out) if self.sort else out


def bulk_render(value: Any) -> Any:
    """A value staged by a ``DirectoryBatch`` as JSON: records as their ids."""
    if isinstance(value, _Jobs):
        return value.render()
    if isinstance(value, Company | Person):
        return value.pk
    if isinstance(value, list | tuple):
        return [bulk_render(v) for v in value]
    if isinstance(value, dict):
        return {k: bulk_render(v) for k, v in value.items()}
    return value


class _Staged:
    """A record the batch creates or changes, with its contact points and employments."""

    def __init__(
        self,
        obj: Company | Person,
        *,
        new: bool,
        points: list[ContactPoint],
        jobs: list[tuple[Company, str, str]],
    ) -> None:
        self.obj, self.new, self.points, self.jobs = obj, new, points, jobs
        self.added_jobs: list[tuple[Company, str, str]] = []
        # saved employments: company id -> Employment id; those to delete or retitle
        self.job_ids: dict[int, int] = {}
        self.dropped_jobs: list[int] = []
        self.retitled_jobs: dict[int, tuple[str, str]] = {}
        self.points_changed = new
        self.keys_changed = new
        self.dirty = False  # an existing row to update
        self.tags: list[str] | None = None


class DirectoryBatch:
    """Many creates and updates of companies and people, written with bulk statements.

    The same rules as ``company_create``/``person_create``/``company_update``/
    ``person_update`` (the same cleaning functions, permission checks, audit entries and
    outbox events, one of each per record and change), but nothing touches the database
    until ``flush``: the caller (the importer) decides a whole chunk in memory, then one
    flush writes the records, contact points, employments, name keys, search documents,
    audit entries and events with a handful of statements. Call inside a transaction.

    Existing records are read (and locked on PostgreSQL) with ``load``. ``mark``/``undo_to``
    take back what a row staged when a later step of the same row fails, as the
    single-record services' transaction would. No duplicate guard: the importer decides
    matches itself (``force=True`` in the single-record calls). An update given the
    ``version`` the caller read raises StaleVersion when the record has another one (undo).
    """

    def __init__(
        self,
        *,
        actor: User | None,
        responsible_id: int | None = None,
        parse_phones: Callable[..., list[ParsedPhone]] = parse_phones,
    ) -> None:
        self.actor = actor
        self.parse_phones = parse_phones
        errors: dict[str, list[str]] = {}
        self.responsible = {
            t: _resolve_responsible(actor, t, responsible_id, errors) for t in ("company", "person")
        }
        if errors:
            raise FieldErrors(errors)
        self.team = {t: _team_for(r, actor) for t, r in self.responsible.items()}
        self.definitions = {t: definitions_for(t) for t in ("company", "person")}
        self.staged: dict[tuple[str, int], _Staged] = {}  # (type, id(obj)) -> state
        self.order: list[_Staged] = []
        # audit entries and events in order: (record, action, changes, repr, event name)
        self.log: list[tuple[_Staged, str, dict[str, Any], str, str]] = []
        self._journal: list[Callable[[], Any]] = []
        self._by_pk: dict[tuple[str, int], _Staged] = {}
        self._employers: dict[int, Company] = {}  # saved companies employments name

    # ------------------------------------------------------------------ reading

    def load(self, *, companies: list[int], people: list[int], lock: bool = True) -> None:
        """Read existing records with their contact points (and employments) to change them."""
        todo: list[tuple[type[Company] | type[Person], list[int]]] = [
            (Company, companies),
            (Person, people),
        ]
        for model, ids in todo:
            kind = "company" if model is Company else "person"
            ids = [i for i in dict.fromkeys(ids) if (kind, i) not in self._by_pk]
            for part in _chunks(ids):
                qs: Any = model.objects.filter(pk__in=part)
                if lock and transaction.get_connection().in_atomic_block:
                    qs = qs.select_for_update()
                objs = {o.pk: o for o in qs.order_by()}
                points: dict[int, list[ContactPoint]] = {pk: [] for pk in objs}
                for p in ContactPoint.objects.filter(**{f"{kind}_id__in": list(objs)}).order_by(
                    "position", "id"
                ):
                    points[getattr(p, f"{kind}_id")].append(p)
                jobs: dict[int, list[tuple[Company, str, str]]] = {pk: [] for pk in objs}
                job_ids: dict[int, dict[int, int]] = {pk: {} for pk in objs}
                if model is Person:
                    for e in Employment.objects.filter(person_id__in=list(objs)).select_related(
                        "company"
                    ):
                        jobs[e.person_id].append((e.company, e.position, e.role))
                        job_ids[e.person_id][e.company_id] = e.pk
                        self._employers.setdefault(e.company_id, e.company)
                for pk, obj in objs.items():
                    st = _Staged(obj, new=False, points=points[pk], jobs=jobs[pk])
                    st.job_ids = job_ids[pk]
                    self.staged[(kind, id(obj))] = st
                    self._by_pk[(kind, pk)] = st

    def get(self, kind: str, pk: int) -> Company | Person | None:
        st = self._by_pk.get((kind, pk))
        return st.obj if st else None

    def state(self, obj: Company | Person) -> _Staged:
        return self.staged[(_kind(obj), id(obj))]

    def points(self, obj: Company | Person) -> list[ContactPoint]:
        return self.state(obj).points

    def contact_points_input(self, obj: Company | Person, channel: str) -> list[dict[str, Any]]:
        """Like ``contact_points_input``, from the batch's state of the record."""
        return _kept_points(self.points(obj), channel)

    def jobs(self, person: Person) -> list[tuple[Company, str, str]]:
        return self.state(person).jobs

    # ------------------------------------------------------------------ staging

    def mark(self) -> int:
        return len(self._journal)

    def undo_to(self, mark: int) -> None:
        while len(self._journal) > mark:
            self._journal.pop()()

    def _stage_new(self, st: _Staged) -> None:
        key = (_kind(st.obj), id(st.obj))
        self.staged[key] = st
        self.order.append(st)

        def undo() -> None:
            del self.staged[key]
            self.order.remove(st)

        self._journal.append(undo)

    def _audit(self, st: _Staged, action: str, changes: dict[str, Any], event: str) -> None:
        self.log.append((st, action, changes, str(st.obj)[:300], event))
        self._journal.append(self.log.pop)

    def company_create(self, *, data: dict[str, Any]) -> Company:
        """``company_create`` staged (no bank accounts: an import has none)."""
        if self.actor is not None and not scope_allows(
            self.actor, "company", "create", owner_id=self.actor.pk, team_id=self.actor.team_id
        ):
            raise PermissionDenied(_("You may not create companies."))
        errors: dict[str, list[str]] = {}
        clean = {k: v for k, v in data.items() if k != "responsible_id"}
        fields = _company_clean(
            clean, self.actor, errors, None, definitions=self.definitions["company"]
        )
        fields["responsible"] = self.responsible["company"]
        points, perr = contact_points_build(
            phones=data.get("phones") or [],
            emails=data.get("emails") or [],
            messengers=[],
            default_region=str(data.get("default_region") or settings.DEFAULT_PHONE_REGION),
            parse=self.parse_phones,
        )
        errors.update(perr)
        if errors:
            raise FieldErrors(errors)
        company = Company(**fields)
        company.team = self.team["company"]
        company.created_by = self.actor if self.actor and self.actor.pk else None
        company.name_key = name_key(company.short_name)
        st = _Staged(company, new=True, points=points, jobs=[])
        if data.get("tags") is not None:
            st.tags = list(data["tags"])
        self._stage_new(st)
        changes = {
            k: [None, v]
            for k, v in snapshot(company, COMPANY_FIELDS).items()
            if v not in ("", None, {})
        }
        if points:
            changes["contact_points"] = [None, _points_summary(points)]
        self._audit(st, "create", changes, "company.created")
        return company

    def person_create(
        self, *, data: dict[str, Any], employments: Sequence[tuple[Company, str]] = ()
    ) -> Person:
        """``person_create`` staged; ``employments``: (company, position), staged or saved."""
        if self.actor is not None and not scope_allows(
            self.actor, "person", "create", owner_id=self.actor.pk, team_id=self.actor.team_id
        ):
            raise PermissionDenied(_("You may not create people."))
        errors: dict[str, list[str]] = {}
        clean = {k: v for k, v in data.items() if k != "responsible_id"}
        fields = _person_clean(
            clean, self.actor, errors, None, definitions=self.definitions["person"]
        )
        fields["responsible"] = self.responsible["person"]
        points, perr = contact_points_build(
            phones=data.get("phones") or [],
            emails=data.get("emails") or [],
            messengers=data.get("messengers") or [],
            default_region=str(data.get("default_region") or settings.DEFAULT_PHONE_REGION),
            parse=self.parse_phones,
        )
        errors.update(perr)
        jobs = self._jobs_check(employments, errors)
        if errors:
            raise FieldErrors(errors)
        person = Person(**fields)
        person.team = self.team["person"]
        person.created_by = self.actor if self.actor and self.actor.pk else None
        person.name_key = name_key(person.full_name)
        _auto_time_zone(person, points)
        st = _Staged(person, new=True, points=points, jobs=jobs)
        st.added_jobs = list(jobs)
        if data.get("tags") is not None:
            st.tags = list(data["tags"])
        self._stage_new(st)
        changes = {
            k: [None, v]
            for k, v in snapshot(person, PERSON_FIELDS).items()
            if v not in ("", None, {}, False)
        }
        if points:
            changes["contact_points"] = [None, _points_summary(points)]
        if jobs:
            changes["employments"] = [None, _Jobs(jobs, sort=False)]
        self._audit(st, "create", changes, "person.created")
        return person

    def _jobs_check(
        self, employments: Sequence[tuple[Company, str]], errors: dict[str, list[str]]
    ) -> list[tuple[Company, str, str]]:
        out: list[tuple[Company, str, str]] = []
        for company, position in employments:
            if company.deleted_at is not None:
                errors["employments"] = [_("No such company.")]
                continue
            job = _employment_check(self.actor, company, {"position": position}, errors)
            if job is not None:
                out.append(job)
        return out

    def _snapshot_state(self, st: _Staged) -> Callable[[], None]:
        obj = st.obj
        saved = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
        points, jobs, added = list(st.points), list(st.jobs), list(st.added_jobs)
        job_ids, dropped, retitled = dict(st.job_ids), list(st.dropped_jobs), dict(st.retitled_jobs)
        flags = (st.points_changed, st.keys_changed, st.dirty)

        def undo() -> None:
            for k, v in saved.items():
                setattr(obj, k, v)
            st.points, st.jobs, st.added_jobs = points, jobs, added
            st.job_ids, st.dropped_jobs, st.retitled_jobs = job_ids, dropped, retitled
            st.points_changed, st.keys_changed, st.dirty = flags

        return undo

    def _changed(self, st: _Staged, changes: dict[str, Any], event: str) -> None:
        obj = st.obj
        changes["version"] = [obj.version, obj.version + 1]
        obj.version += 1
        if not st.new:
            st.dirty = True
        self._audit(st, "update", changes, event)

    def company_update(
        self, *, company: Company, data: dict[str, Any], version: int | None = None
    ) -> dict[str, Any]:
        """``company_update`` staged; returns the changes ({} when none). ``version``: the
        one the caller read (StaleVersion when the record has another; no merge). The
        importer passes none: the batch read the record in its transaction."""
        st = self.state(company)
        _check_write(self.actor, "company", "edit", company)
        errors: dict[str, list[str]] = {}
        fields = _company_clean(
            data, self.actor, errors, company, definitions=self.definitions["company"]
        )
        if "responsible" in fields and "responsible_id" not in data:
            del fields["responsible"]
        if errors:
            raise FieldErrors(errors)
        new_points: list[ContactPoint] | None = None
        if "phones" in data or "emails" in data:
            region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
            new_points, perr = contact_points_build(
                phones=data["phones"]
                if data.get("phones") is not None
                else _kept_points(st.points, "phone"),
                emails=data["emails"]
                if data.get("emails") is not None
                else _kept_points(st.points, "email"),
                messengers=[],
                default_region=region,
                parse=self.parse_phones,
            )
            if perr:
                raise FieldErrors(perr)
        _version_check(company, version)
        undo = self._snapshot_state(st)
        before = snapshot(company, COMPANY_FIELDS)
        for k, v in fields.items():
            setattr(company, k, v)
        if "short_name" in fields:
            old_key = company.name_key
            company.name_key = name_key(company.short_name)
            st.keys_changed = st.keys_changed or company.name_key != old_key
        changes: dict[str, Any] = diff(before, snapshot(company, COMPANY_FIELDS))
        if new_points is not None:
            old_summary, new_summary = _points_summary(st.points), _points_summary(new_points)
            if old_summary != new_summary:
                st.points, st.points_changed = new_points, True
                changes["contact_points"] = [old_summary, new_summary]
        if not changes:
            undo()
            return {}
        self._journal.append(undo)
        self._changed(st, changes, "company.updated")
        return changes

    def person_update(
        self,
        *,
        person: Person,
        data: dict[str, Any],
        employments: Sequence[tuple[Company, str]] = (),
        version: int | None = None,
    ) -> dict[str, Any]:
        """``person_update`` staged; ``employments`` are added to the person's (none
        removed); ``data["employments"]`` (``company_id``, ``position``, ``role``), as in
        ``person_update``, are all the person's: the others are removed. ``version``: as in
        ``company_update``. Returns the changes ({} when none)."""
        st = self.state(person)
        _check_write(self.actor, "person", "edit", person)
        errors: dict[str, list[str]] = {}
        fields = _person_clean(
            data, self.actor, errors, person, definitions=self.definitions["person"]
        )
        if "responsible" in fields and "responsible_id" not in data:
            del fields["responsible"]
        wanted = (
            self._employments_clean(data["employments"], errors)
            if data.get("employments") is not None
            else None
        )
        known = {id(c) for c, _p, _r in st.jobs} | {c.pk for c, _p, _r in st.jobs if c.pk}
        jobs = self._jobs_check(
            [(c, p) for c, p in employments if id(c) not in known and c.pk not in known], errors
        )
        if errors:
            raise FieldErrors(errors)
        new_points: list[ContactPoint] | None = None
        if any(k in data for k in ("phones", "emails", "messengers")):
            region = str(data.get("default_region") or settings.DEFAULT_PHONE_REGION)
            new_points, perr = contact_points_build(
                phones=data["phones"]
                if data.get("phones") is not None
                else _kept_points(st.points, "phone"),
                emails=data["emails"]
                if data.get("emails") is not None
                else _kept_points(st.points, "email"),
                messengers=data["messengers"]
                if data.get("messengers") is not None
                else _kept_points(st.points, "messenger"),
                default_region=region,
                parse=self.parse_phones,
            )
            if perr:
                raise FieldErrors(perr)
        _version_check(person, version)
        undo = self._snapshot_state(st)
        before = snapshot(person, PERSON_FIELDS)
        for k, v in fields.items():
            setattr(person, k, v)
            if k == "time_zone":
                person.time_zone_manual = bool(v)
        old_key = person.name_key
        person.name_key = name_key(person.full_name)
        st.keys_changed = st.keys_changed or person.name_key != old_key
        changes: dict[str, Any] = {}
        if new_points is not None:
            old_summary, new_summary = _points_summary(st.points), _points_summary(new_points)
            if old_summary != new_summary:
                st.points, st.points_changed = new_points, True
                changes["contact_points"] = [old_summary, new_summary]
                _auto_time_zone(person, new_points)
        changes.update(diff(before, snapshot(person, PERSON_FIELDS)))
        if wanted is not None:
            old_jobs = list(st.jobs)
            if self._jobs_replace(st, wanted):
                changes["employments"] = [_Jobs(old_jobs, sort=True), _Jobs(wanted, sort=True)]
        if jobs:
            old_jobs = list(st.jobs)
            st.jobs = [*st.jobs, *jobs]
            st.added_jobs = [*st.added_jobs, *jobs]
            changes["employments"] = [_Jobs(old_jobs, sort=True), _Jobs(st.jobs, sort=True)]
        if not changes:
            undo()
            return {}
        self._journal.append(undo)
        self._changed(st, changes, "person.updated")
        return changes

    def _employments_clean(
        self, items: list[dict[str, Any]], errors: dict[str, list[str]]
    ) -> list[tuple[Company, str, str]]:
        """``_employments_clean`` with the companies read once a batch (those the loaded
        people work at are read already)."""
        ids: list[int | None] = []
        for item in items:
            try:
                ids.append(int(item.get("company_id") or 0))
            except (ValueError, TypeError):
                ids.append(None)
        missing = [i for i in ids if i and i not in self._employers]
        if missing:
            self._employers.update(Company.objects.in_bulk(missing))
        out: list[tuple[Company, str, str]] = []
        for pk, item in zip(ids, items, strict=True):
            company = self._employers.get(pk) if pk else None
            if company is None or company.deleted_at is not None:
                errors["employments"] = [_("No such company.")]
                continue
            job = _employment_check(self.actor, company, item, errors)
            if job is not None:
                out.append(job)
        return out

    def _jobs_replace(self, st: _Staged, wanted: list[tuple[Company, str, str]]) -> bool:
        """The person's employments become ``wanted``, as ``person_update`` makes them: the
        others go, a kept company's position and role are updated. False when no change."""
        if sorted(f"{c.pk}:{p}:{r}" for c, p, r in st.jobs) == sorted(
            f"{c.pk}:{p}:{r}" for c, p, r in wanted
        ):
            return False
        by_pk = {c.pk: (c, p, r) for c, p, r in wanted}
        added = [j for j in st.added_jobs if j[0].pk in by_pk]
        for company_id in [i for i in st.job_ids if i not in by_pk]:
            st.dropped_jobs.append(st.job_ids.pop(company_id))
        saved = {(c.pk, p, r) for c, p, r in st.jobs}
        for c, p, r in by_pk.values():
            if c.pk in st.job_ids:
                if (c.pk, p, r) not in saved:
                    st.retitled_jobs[st.job_ids[c.pk]] = (p, r)
            else:
                added = [j for j in added if j[0].pk != c.pk] + [(c, p, r)]
        st.added_jobs, st.jobs = added, list(wanted)
        return True

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        """Write everything staged; afterwards every staged record has its id."""
        now = timezone.now()
        new = {k: [st for st in self.order if _kind(st.obj) == k] for k in ("company", "person")}
        objects_insert(Company, [st.obj for st in new["company"]], ids=True)
        objects_insert(Person, [st.obj for st in new["person"]], ids=True)
        for st in self.order:
            self._by_pk[(_kind(st.obj), st.obj.pk)] = st
        changed = [st for st in self.staged.values() if st.dirty]
        updates: list[tuple[Any, list[str]]] = [(Company, COMPANY_FIELDS), (Person, PERSON_FIELDS)]
        for model, names in updates:
            rows = [st.obj for st in changed if isinstance(st.obj, model)]
            for obj in rows:
                obj.updated_at = now
            if rows:
                rows_update(model, rows, [*names, "name_key", "team", "version", "updated_at"])
        touched = [st for st in self.staged.values() if st.new or st.dirty]
        # contact points: a changed record's are replaced, as _replace_points does
        for kind in ("company", "person"):
            ids = [st.obj.pk for st in touched if _kind(st.obj) == kind and not st.new]
            ids = [i for i in ids if self._by_pk[(kind, i)].points_changed]
            for part in _chunks(ids):
                ContactPoint.objects.filter(**{f"{kind}_id__in": part}).delete()
        points: list[ContactPoint] = []
        for st in touched:
            if st.points_changed:
                for p in st.points:
                    p.pk = None
                    p.company = st.obj if isinstance(st.obj, Company) else None
                    p.person = st.obj if isinstance(st.obj, Person) else None
                    points.append(p)
        objects_insert(ContactPoint, points)
        self._write_jobs([st for st in touched if isinstance(st.obj, Person)], now)
        self._write_keys([st for st in touched if st.keys_changed])
        self._write_tags([st for st in touched if st.tags is not None])
        docs: list[SearchDocument] = []
        new_docs: list[SearchDocument] = []
        for st in touched:
            if isinstance(st.obj, Company):
                doc = _company_search_doc(st.obj, st.points)
            else:
                doc = _person_search_doc(st.obj, st.points, [c.short_name for c, _p, _r in st.jobs])
            (new_docs if st.new else docs).append(
                SearchDocument(
                    object_type=doc["object_type"],
                    object_id=doc["object_id"],
                    title=doc["title"][:300],
                    subtitle=doc["subtitle"][:300],
                    body=doc["body"],
                    team_id=doc["team_id"],
                    responsible_id=doc["responsible_id"],
                    deleted=doc["deleted"],
                )
            )
        objects_insert(SearchDocument, new_docs)  # a new record has none yet
        SearchDocument.objects.bulk_create(
            docs,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["object_type", "object_id"],
            update_fields=["title", "subtitle", "body", "team_id", "responsible_id", "deleted"],
        )
        actor = self.actor if self.actor and self.actor.pk else None
        audits, events = [], []
        for st, action, changes, label, event in self.log:
            kind = _kind(st.obj)
            rendered = bulk_render(changes)
            audits.append(
                AuditEntry(
                    actor=actor,
                    object_type=kind,
                    object_id=st.obj.pk,
                    object_repr=label,
                    action=action,
                    changes=rendered,
                )
            )
            events.append(
                OutboxEvent(
                    name=event,
                    object_type=kind,
                    object_id=st.obj.pk,
                    actor=actor,
                    payload={} if action == "create" else changes_payload(rendered),
                    available_at=now,
                )
            )
        objects_insert(AuditEntry, audits)
        objects_insert(OutboxEvent, events)
        if events:
            from rapport.core.nudge import outbox_nudge_on_commit

            outbox_nudge_on_commit()
        self.log, self.order, self._journal = [], [], []
        for st in touched:
            st.new = st.dirty = st.points_changed = st.keys_changed = False
            st.added_jobs, st.tags = [], None
            st.dropped_jobs, st.retitled_jobs = [], {}

    def _write_jobs(self, states: list[_Staged], now: Any) -> None:
        """Employments: removed, retitled (``update_or_create`` keeps the row), added."""
        dropped = [pk for st in states for pk in st.dropped_jobs]
        for part in _chunks(dropped):
            Employment.objects.filter(pk__in=part).delete()
        retitled = [
            Employment(pk=pk, position=pos, role=role, updated_at=now)
            for st in states
            for pk, (pos, role) in st.retitled_jobs.items()
        ]
        rows_update(Employment, retitled, ["position", "role", "updated_at"])
        added = [
            (st, Employment(person=st.obj, company=c, position=pos, role=role))
            for st in states
            if isinstance(st.obj, Person)
            for c, pos, role in st.added_jobs
        ]
        objects_insert(Employment, [e for _st, e in added], ids=True)
        for st, e in added:
            st.job_ids[e.company_id] = e.pk

    def _write_keys(self, states: list[_Staged]) -> None:
        tables: list[tuple[Any, str]] = [
            (CompanyNameKey, "company_id"),
            (PersonNameKey, "person_id"),
        ]
        for model, owner in tables:
            mine = [st for st in states if _kind(st.obj) + "_id" == owner]
            old = [st.obj.pk for st in mine if not st.new]
            for part in _chunks(old):
                model.objects.filter(**{f"{owner}__in": part}).delete()
            # ~15 keys a person: tuples, not model instances (the ORM's per-object work was
            # most of the time of writing them)
            rows_insert(
                model,
                [owner, "key"],
                [(st.obj.pk, k) for st in mine for k in name_block_keys(st.obj.name_key)],
            )

    def _write_tags(self, states: list[_Staged]) -> None:
        for st in states:
            st.obj.tags.set(_tags(list(st.tags or [])))


def _version_check(obj: Company | Person, version: int | None) -> None:
    if version is not None and int(version) != obj.version:
        raise StaleVersion(current_version=obj.version)


def _kind(obj: Company | Person) -> str:
    return "company" if isinstance(obj, Company) else "person"


def _chunks(ids: list[int], size: int = 2000) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]
