"""The duplicate guard: one matcher for the create/edit guard, the importer and the finder.

Exact keys first (tax id, E.164 phone, email), then fuzzy names: candidates are
blocked through the search index on the first letters of each name token, then
scored with rapidfuzz on the normalised keys (legal forms stripped, word order,
case, quotes and Cyrillic/Latin spelling ignored).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from rapport.core.models import SearchDocument
from rapport.core.names import name_key, name_similarity, name_tokens
from rapport.core.scopes import scope_allows
from rapport.parties.models import Company, ContactPoint, Person

FUZZY_THRESHOLD = 85
BLOCK_LIMIT = 300


@dataclass
class Candidate:
    object_type: str
    object_id: int
    title: str
    score: int
    reasons: list[str] = field(default_factory=list)
    visible: bool = True
    responsible: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "object_type": self.object_type,
            "id": self.object_id if self.visible else None,
            "title": self.title if self.visible else _("A record outside your access"),
            "score": self.score,
            "reasons": self.reasons,
            "responsible": self.responsible,
        }


def _fuzzy_block(object_type: str, name: str) -> list[int]:
    """Ids of records whose indexed name shares the first letters of every token."""
    tokens = [t for t in name_tokens(name) if t]
    if not tokens:
        return []
    prefixes = sorted({t[:3] for t in tokens})
    base = SearchDocument.objects.filter(object_type=object_type, deleted=False)
    if connection.vendor == "sqlite":
        match = " AND ".join(f'"{p}"*' for p in prefixes)
        qs = base.filter(
            id__in=RawSQL(
                "SELECT rowid FROM core_searchdocument_fts"
                " WHERE core_searchdocument_fts MATCH %s LIMIT %s",
                (f"body:({match})", BLOCK_LIMIT * 4),
            )
        )
    else:
        cond = Q()
        for p in prefixes:
            cond &= Q(body__icontains=p)
        qs = base.filter(cond)
    return list(qs.values_list("object_id", flat=True)[:BLOCK_LIMIT])


def _merge(found: dict[int, Candidate], oid: int, title: str, score: int, reason: str) -> None:
    cand = found.get(oid)
    if cand is None:
        found[oid] = Candidate(
            object_type="", object_id=oid, title=title, score=score, reasons=[reason]
        )
        return
    cand.reasons.append(reason)
    # Two independent signals make a match surer than either alone.
    cand.score = min(100, max(cand.score, score) + 5)


def find_duplicates(
    *,
    object_type: str,
    name: str,
    tax_id: str = "",
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    exclude_id: int | None = None,
    user: Any = None,
    limit: int = 10,
) -> list[Candidate]:
    """Likely duplicates of a company or person about to be saved, best first."""
    model: type[Company] | type[Person] = Company if object_type == "company" else Person
    owner = "company" if object_type == "company" else "person"
    found: dict[int, Candidate] = {}
    phones = [p for p in phones if p]
    emails = [e.lower() for e in emails if e]
    if tax_id and object_type == "company":
        for cid, title in Company.objects.filter(
            tax_id=tax_id, deleted_at__isnull=True
        ).values_list("id", "short_name")[:limit]:
            _merge(found, cid, title, 100, _("same tax id"))
    if phones or emails:
        cp = ContactPoint.objects.filter(
            Q(channel="phone", value__in=phones) | Q(channel="email", value__in=emails)
        ).filter(**{f"{owner}__isnull": False, f"{owner}__deleted_at__isnull": True})
        for oid, channel, value in cp.values_list(f"{owner}_id", "channel", "value")[:50]:
            if channel == "phone":
                _merge(found, oid, "", 70, _("same phone %(phone)s") % {"phone": value})
            else:
                _merge(found, oid, "", 95, _("same email %(email)s") % {"email": value})
    key = name_key(name)
    if key:
        ids = _fuzzy_block(object_type, name)
        exact = model.objects.filter(name_key=key, deleted_at__isnull=True).values_list(
            "id", flat=True
        )[:20]
        ids = list(dict.fromkeys([*exact, *ids]))
        keys = dict(model.objects.filter(id__in=ids).values_list("id", "name_key"))
        for oid, other_key in keys.items():
            if not other_key:
                continue
            score = 100 if other_key == key else name_similarity(key, other_key)
            if score >= FUZZY_THRESHOLD:
                reason = (
                    _("same name")
                    if score == 100
                    else _("similar name %(score)s%%") % {"score": score}
                )
                _merge(found, oid, "", min(score, 90), reason)
    found.pop(exclude_id or -1, None)
    if not found:
        return []
    rows = model.objects.filter(id__in=list(found)).select_related("responsible")
    result: list[Candidate] = []
    for row in rows:
        cand = found[row.pk]
        cand.object_type = object_type
        cand.title = str(row)
        cand.responsible = str(row.responsible) if row.responsible else ""
        if user is not None:
            cand.visible = scope_allows(
                user, object_type, "view", owner_id=row.responsible_id, team_id=row.team_id
            )
        result.append(cand)
    result.sort(key=lambda c: (-c.score, c.object_id))
    return result[:limit]
