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
from rapidfuzz import fuzz

from rapport.core.models import SearchDocument
from rapport.core.names import name_key, name_similarity, name_tokens
from rapport.core.scopes import scope_allows
from rapport.parties.models import Company, ContactPoint, Person

FUZZY_THRESHOLD = 85
BLOCK_LIMIT = 300
RANGE_LIMIT = 100  # per name_key range on SQLite: the nearest keys in sorted order


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


def _fuzzy_block(model: type[Company] | type[Person], name: str) -> dict[int, str]:
    """{id: name_key} of live records whose name may be close to ``name``.

    Only cheap lookups (prefix queries on common 3-letter prefixes read every matching
    term's doclist on SQLite and a large part of the trigram index on PostgreSQL:
    15-45 ms at 1M people):

    - every token as a whole word in the search index: other word order, the other
      alphabet, extra words such as a patronymic;
    - with three tokens or more, the keys of all but one of them (a missing patronymic);
    - typos through the ``name_key`` B-tree (sorted tokens): keys starting with the
      first token and the first 3 letters of the second (a typo further on), and keys
      starting with the first 4 letters of the first token and ending with the other
      tokens (a typo in the first one after its 4th letter).
    """
    tokens = [t for t in name_tokens(name) if t]
    if not tokens:
        return {}
    object_type = "company" if model is Company else "person"
    docs = SearchDocument.objects.filter(object_type=object_type, deleted=False).order_by()
    if connection.vendor == "sqlite":
        match = " AND ".join(f'"{t}"' for t in tokens)
        docs = docs.filter(
            id__in=RawSQL(
                "SELECT rowid FROM core_searchdocument_fts"
                " WHERE core_searchdocument_fts MATCH %s LIMIT %s",
                (f"body:({match})", BLOCK_LIMIT * 4),
            )
        )
    else:
        # The body is lower case: LIKE (``contains``) is served by the trigram index;
        # ``icontains`` (UPPER(body) LIKE) would read the whole table.
        for t in tokens:
            docs = docs.filter(body__contains=t)
    live = model.objects.filter(deleted_at__isnull=True).order_by()
    pairs = list(
        live.filter(id__in=docs.values("object_id")[:BLOCK_LIMIT]).values_list("id", "name_key")
    )
    if len(tokens) >= 3:
        subsets = [" ".join(tokens[:i] + tokens[i + 1 :]) for i in range(len(tokens))]
        pairs += live.filter(name_key__in=subsets).values_list("id", "name_key")[:RANGE_LIMIT]
    head = f"{tokens[0]} {tokens[1][:3]}" if len(tokens) > 1 else tokens[0][:3]
    pairs += live.filter(name_key__gte=head, name_key__lt=head + "\uffff").values_list(
        "id", "name_key"
    )[:RANGE_LIMIT]
    if len(tokens) > 1:
        first, rest = tokens[0][:4], " " + " ".join(tokens[1:])
        pairs += live.filter(
            name_key__gte=first, name_key__lt=first + "\uffff", name_key__endswith=rest
        ).values_list("id", "name_key")[:RANGE_LIMIT]
    return dict(pairs)


def _may_reach(key: str, other: str, threshold: int) -> bool:
    """False when ``name_similarity(key, other)`` cannot reach ``threshold``.

    A cheap upper bound that skips most candidates before the full comparison: the
    similarity is a ratio of matching characters in some token order, and matches are
    at most the characters the keys share, which is the ratio of their sorted letters
    (the longest common subsequence of two sorted strings is their common multiset).
    The "every word of the shorter is in the longer" rule is checked as is.
    """
    ta, tb = key.split(), other.split()
    small, large = (set(ta), set(tb)) if len(ta) <= len(tb) else (set(tb), set(ta))
    if len(small) >= 2 and small <= large:
        return True
    # name_similarity rounds: 84.5 is shown as 85.
    return fuzz.ratio("".join(sorted(key)), "".join(sorted(other))) >= threshold - 0.5


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
        exact = model.objects.filter(name_key=key, deleted_at__isnull=True).values_list(
            "id", "name_key"
        )[:20]
        keys = {**dict(exact), **_fuzzy_block(model, name)}
        for oid, other_key in keys.items():
            if not other_key or (
                other_key != key and not _may_reach(key, other_key, FUZZY_THRESHOLD)
            ):
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
    # Only the best ``limit`` are shown: load those rows, not every match (a common
    # Russian name has ~100 at 1M people, "Иванов Иван" within "Иванов Иван Иванович").
    best = sorted(found.values(), key=lambda c: (-c.score, c.object_id))[:limit]
    rows = model.objects.filter(id__in=[c.object_id for c in best]).select_related("responsible")
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
