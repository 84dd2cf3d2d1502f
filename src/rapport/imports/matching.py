"""Is this row a record we already have? The guard finds candidates; this decides.

The duplicate guard (``rapport.parties.duplicates.find_duplicates``) is the one
matcher: it proposes candidates by tax id, phone, email and fuzzy name. A person at a
page decides whether a candidate is the same; an import has nobody to ask, so the
decision takes evidence from both sides:

- the same email, or the same tax id for a company, is the same record (unless the
  names have nothing in common);
- two different emails, two different tax ids, or two different companies for a
  person with no shared phone or email, are different records;
- a similar name (>= 85) is the same person only with a second signal: a shared phone
  or the same company; an identical name alone only when nothing contradicts it.
  A shared phone alone never is: colleagues share a switchboard.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rapport.core.names import name_key, name_similarity
from rapport.imports.normalize import RowData
from rapport.parties.duplicates import find_duplicates
from rapport.parties.models import Company, ContactPoint, Employment, Person

SIMILAR = 85
NAME_ONLY = 100
CANDIDATES = 10


@dataclass
class Known:
    id: int
    key: str
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    companies: set[int] = field(default_factory=set)
    tax_id: str = ""


def known_records(model: type[Company] | type[Person], ids: list[int]) -> list[Known]:
    if not ids:
        return []
    owner = "company" if model is Company else "person"
    rows = model.objects.filter(id__in=ids, deleted_at__isnull=True).values_list(
        "id", "name_key", *(["tax_id"] if model is Company else [])
    )
    out = {r[0]: Known(id=r[0], key=r[1], tax_id=r[2] if model is Company else "") for r in rows}
    points = ContactPoint.objects.filter(**{f"{owner}_id__in": list(out)}).values_list(
        f"{owner}_id", "channel", "value"
    )
    for oid, channel, value in points:
        if not value:
            continue
        if channel == "phone":
            out[oid].phones.add(value)
        elif channel == "email":
            out[oid].emails.add(value)
    if model is Person:
        for pid, cid in Employment.objects.filter(person_id__in=list(out)).values_list(
            "person_id", "company_id"
        ):
            out[pid].companies.add(cid)
    return [out[i] for i in ids if i in out]


def _similarity(key: str, other: str) -> int:
    if not key or not other:
        return 0
    return 100 if key == other else name_similarity(key, other)


GENERIC_FORMS = frozenset({"Co.", "Company", "شركة", "مؤسسة"})


def _form_conflict(a: str, b: str) -> bool:
    """Two specific legal forms that differ ("АО" / "ООО") make two companies."""
    return bool(a and b and a != b and a not in GENERIC_FORMS and b not in GENERIC_FORMS)


def company_candidates(rd: RowData) -> list[Known]:
    """Existing companies this row's company may be, best evidence first (not decided)."""
    name = str(rd.company.get("short_name") or "")
    tax_id = str(rd.company.get("tax_id") or "")
    if not name and not tax_id:
        return []
    cands = find_duplicates(
        object_type="company",
        name=name,
        tax_id=tax_id,
        phones=rd.phones if not rd.has_person else [],
        emails=rd.emails if not rd.has_person else [],
        limit=CANDIDATES,
    )
    known = known_records(Company, [c.object_id for c in cands])
    forms = dict(
        Company.objects.filter(id__in=[k.id for k in known]).values_list("id", "legal_form")
    )
    key = name_key(name)
    form = str(rd.company.get("legal_form") or "")
    out: list[Known] = []
    for k in known:
        sim = _similarity(key, k.key)
        if tax_id and k.tax_id:
            if tax_id == k.tax_id and sim >= 50:
                return [k]  # the same tax id settles it
            continue  # two different tax ids: two companies
        if _form_conflict(form, forms.get(k.id) or ""):
            continue
        shared = not rd.has_person and bool(set(rd.emails) & k.emails or set(rd.phones) & k.phones)
        if sim + (10 if shared else 0) >= 95:
            out.append(k)
    return out


def choose_company(
    rd: RowData, cands: list[Known], *, employers: set[int] | None = None
) -> int | None:
    """One of the candidates, or None (a new company) when the evidence cannot tell.

    A company with the same tax id wins; then the one the person already works at; then
    the one whose people share this row's phone (a switchboard); then a single candidate.
    Several same-named companies and nothing to tell them apart: a new record, since
    merging two companies is worse than a duplicate the finder will show.
    """
    if not cands:
        return None
    tax_id = str(rd.company.get("tax_id") or "")
    if tax_id and len(cands) == 1 and cands[0].tax_id == tax_id:
        return cands[0].id
    ids = [k.id for k in cands]
    if employers:
        mine = [i for i in ids if i in employers]
        if len(mine) == 1:
            return mine[0]
    if rd.phones and len(ids) > 1:
        via_staff = set(
            ContactPoint.objects.filter(
                channel="phone",
                value__in=rd.phones,
                person__employments__company_id__in=ids,
            ).values_list("person__employments__company_id", flat=True)
        )
        via_staff &= set(ids)
        if len(via_staff) == 1:
            return via_staff.pop()
    if len(ids) == 1:
        return ids[0]
    return None


def match_company(rd: RowData) -> int | None:
    """The id of the existing company this row names, or None (companies import)."""
    return choose_company(rd, company_candidates(rd))


def _full_name(rd: RowData) -> str:
    p = rd.person
    return " ".join(
        str(p.get(k) or "") for k in ("last_name", "first_name", "middle_name") if p.get(k)
    )


def match_person(rd: RowData, *, company_ids: set[int] | None = None) -> int | None:
    """The id of the existing person this row is, or None.

    ``company_ids``: the companies the row's company may be (its candidates, or the one
    it was resolved to); working at one of them backs up a similar name."""
    company_ids = company_ids or set()
    name = _full_name(rd)
    cands = find_duplicates(
        object_type="person", name=name, phones=rd.phones, emails=rd.emails, limit=CANDIDATES
    )
    key = name_key(name)
    emails, phones = set(rd.emails), set(rd.phones)
    best: tuple[int, int] | None = None
    for k in known_records(Person, [c.object_id for c in cands]):
        sim = _similarity(key, k.key)
        same_email = bool(emails & k.emails)
        same_phone = bool(phones & k.phones)
        same_company = bool(company_ids & k.companies)
        if same_email:
            if sim >= 50:
                return k.id
            continue
        if emails and k.emails:
            continue  # both have emails and none is shared
        if rd.has_company and k.companies and not same_company and not same_phone:
            continue  # different employers and nothing shared
        if sim >= SIMILAR and (same_phone or same_company):
            score = sim + 5
        elif sim >= NAME_ONLY:
            score = sim
        else:
            continue
        if best is None or score > best[0]:
            best = (score, k.id)
    return best[1] if best else None
