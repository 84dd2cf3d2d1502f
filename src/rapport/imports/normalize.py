"""One source row -> the data the directory services take, with its errors and warnings.

No database writes here, and no rule of its own: phones, emails, tax ids, names and
legal forms go through the same core functions the services use, so a row that passes
here is saved the same way a person typed it on the page would be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from rapport.core.customfields import custom_fields_clean
from rapport.core.emails import normalize_email, split_email_field
from rapport.core.errors import FieldErrors
from rapport.core.names import recase, split_full_name, strip_legal_form
from rapport.core.phones import ParsedPhone, parse_phones
from rapport.core.taxids import normalize_tax_id_for
from rapport.imports.mapping import CUSTOM_PREFIX, fields_for


class PhoneMemo:
    """``parse_phones`` remembered by (cell, region): a chunk parses each phone cell once,
    though the row's check, the new record's contact points and an update's merge of the
    numbers all read it (phonenumbers takes ~0.1 ms a number). Forgets everything past
    ``size`` cells, so memory stays flat however long the file."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.cells: dict[tuple[str, str], tuple[ParsedPhone, ...]] = {}
        self.parsed = 0  # cells handed to phonenumbers (the rest came from the memo)

    def __call__(self, text: str, *, default_region: str) -> list[ParsedPhone]:
        key = (text, default_region)
        hit = self.cells.get(key)
        if hit is None:
            if len(self.cells) >= self.size:
                self.cells.clear()
            hit = self.cells[key] = tuple(parse_phones(text, default_region=default_region))
            self.parsed += 1
        return list(hit)


@dataclass
class RowData:
    row_number: int
    person: dict[str, Any] = field(default_factory=dict)
    company: dict[str, Any] = field(default_factory=dict)
    position: str = ""
    phones: list[str] = field(default_factory=list)  # E.164 of the valid numbers
    invalid_phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    empty: bool = False

    @property
    def has_person(self) -> bool:
        return bool(self.person.get("first_name") or self.person.get("last_name"))

    @property
    def has_company(self) -> bool:
        return bool(self.company.get("short_name"))


def _label(target: str, name: str) -> str:
    if name.startswith(CUSTOM_PREFIX):
        return name[len(CUSTOM_PREFIX) :]
    for f in fields_for(target):
        if f.name == name:
            return str(f.label)
    return name


def normalize_row(
    *,
    row_number: int,
    cells: list[str],
    mapping: list[str],
    target: str,
    default_region: str,
    parse: Callable[..., list[ParsedPhone]] = parse_phones,
) -> RowData:
    """The row as service input; every problem named with its column's field."""
    out = RowData(row_number=row_number)
    values: dict[str, list[str]] = {}
    for i, cell in enumerate(cells):
        text = cell.strip() if isinstance(cell, str) else str(cell or "").strip()
        if not text:
            continue
        name = mapping[i] if i < len(mapping) else ""
        if not name:
            if i >= len(mapping):
                out.errors.append(
                    _("Column %(n)s holds a value but the file's header has only %(w)s columns.")
                    % {"n": i + 1, "w": len(mapping)}
                )
            continue
        values.setdefault(name, []).append(text)
    if not values and not out.errors:
        out.empty = True
        return out

    def one(name: str) -> str:
        return " ".join(values.get(name, []))

    # --- names
    person: dict[str, Any] = {}
    if target == "people":
        first, last, middle = one("first_name"), one("last_name"), one("middle_name")
        full = one("full_name")
        if full and not (first or last):
            first, last, middle2 = split_full_name(full, locale_hint=default_region)
            middle = middle or middle2
        person = {
            "first_name": recase(" ".join(first.split())),
            "last_name": recase(" ".join(last.split())),
            "middle_name": recase(" ".join(middle.split())),
        }
        for name in ("city", "address", "source"):
            if one(name):
                person[name] = one(name)
        if one("birthday"):
            person["birthday"] = one("birthday")
    company: dict[str, Any] = {}
    company_name = " ".join(one("company").split())
    if company_name:
        stripped, form = strip_legal_form(company_name)
        if not stripped:
            out.errors.append(
                _("%(field)s: “%(value)s” is only a legal form, not a company name.")
                % {"field": _label(target, "company"), "value": company_name}
            )
        else:
            company["short_name"] = company_name
            if form:
                company["legal_form"] = form
    tax_raw = one("company_tax_id")
    if tax_raw:
        res, tax_country = normalize_tax_id_for(
            tax_raw, region=default_region, legal_form=company.get("legal_form")
        )
        if not res.valid:
            msg = {
                "not_digits": _("A tax id holds digits only."),
                "length": _("Wrong number of digits for this country's tax id."),
                "checksum": _("The tax id's check digits do not match: check for a typo."),
            }.get(res.error_code or "", _("Invalid tax id."))
            out.errors.append(f"{_label(target, 'company_tax_id')}: {msg} ({tax_raw})")
        elif not company_name and target == "people":
            out.errors.append(
                _("%(field)s is given without a company name.")
                % {"field": _label(target, "company_tax_id")}
            )
        else:
            company["tax_id"] = res.normalized
            company["tax_country"] = tax_country
    if target == "companies":
        for src, dst in (
            ("full_legal_name", "full_name"),
            ("registration_number", "registration_number"),
            ("industry", "industry"),
            ("city", "city"),
            ("address", "legal_address"),
            ("postal_address", "postal_address"),
            ("source", "source"),
        ):
            if one(src):
                company[dst] = one(src)
    if one("website") and company:
        company["website"] = one("website")

    # --- contact details
    phones: list[dict[str, str]] = []
    for cell in values.get("phones", []):
        for parsed in parse(cell, default_region=default_region):
            if parsed.valid and parsed.e164:
                if parsed.e164 not in out.phones:
                    out.phones.append(parsed.e164)
            else:
                out.invalid_phones.append(parsed.raw)
                out.warnings.append(
                    _("%(field)s: “%(value)s” is not a phone number; kept as typed and flagged.")
                    % {"field": _label(target, "phones"), "value": parsed.raw}
                )
        phones.append({"raw": cell})
    emails: list[dict[str, str]] = []
    for cell in values.get("emails", []):
        for token in split_email_field(cell):
            parsed_email = normalize_email(token)
            if not parsed_email.valid:
                out.errors.append(
                    _("%(field)s: “%(value)s” is not a valid email address.")
                    % {"field": _label(target, "emails"), "value": token}
                )
                continue
            if parsed_email.normalized not in out.emails:
                out.emails.append(parsed_email.normalized)
                emails.append({"raw": token})
    notes = "\n".join(values.get("notes", []))
    tags = [t.strip() for t in one("tags").replace(";", ",").split(",") if t.strip()]

    # --- custom fields
    custom = {
        k[len(CUSTOM_PREFIX) :]: v[0] for k, v in values.items() if k.startswith(CUSTOM_PREFIX)
    }
    if custom:
        try:
            custom_fields_clean(
                object_type="person" if target == "people" else "company", values=custom
            )
        except FieldErrors as exc:
            for key, messages in exc.errors.items():
                name = key.split(".", 1)[-1]
                out.errors.extend(f"{name}: {m}" for m in messages)

    if target == "people":
        person.update({"phones": phones, "emails": emails, "default_region": default_region})
        if notes:
            person["notes"] = notes
        if tags:
            person["tags"] = tags
        if custom:
            person["custom_fields"] = custom
        out.position = one("position")[:150]
        if not (person["first_name"] or person["last_name"]) and not company:
            out.errors.append(_("The row has no name: neither a person's nor a company's."))
    else:
        company.update({"phones": phones, "emails": emails, "default_region": default_region})
        if notes:
            company["notes"] = notes
        if tags:
            company["tags"] = tags
        if custom:
            company["custom_fields"] = custom
        if not company.get("short_name"):
            out.errors.append(_("The row has no company name."))
    out.person, out.company = person, company
    return out
