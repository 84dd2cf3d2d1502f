"""The duplicate guard: one matcher for the create/edit guard, the importer and the finder.

Exact keys first (tax id, E.164 phone, email), then fuzzy names: candidates are the
records sharing a blocking key with the name (``rapport.core.names.name_probe_keys``:
pairs of tokens, one of them whole and the other possibly with a typo), found through
a B-tree on ``CompanyNameKey`` / ``PersonNameKey``, then scored with rapidfuzz on the
normalised keys (legal forms stripped, word order, case, quotes and Cyrillic/Latin
spelling ignored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _
from rapidfuzz import fuzz

from rapport.core.names import (
    key_similarity,
    name_block_keys,
    name_key,
    name_probe_keys,
)
from rapport.core.scopes import scope_allows
from rapport.parties.models import Company, CompanyNameKey, ContactPoint, Person, PersonNameKey

FUZZY_THRESHOLD = 85
BLOCK_LIMIT = 1000  # records compared by name at most (a common name at 1M people: ~300)


@dataclass
class Candidate:
    object_type: str
    object_id: int
    title: str
    score: int
    reasons: list[str] = field(default_factory=list)
    visible: bool = True
    responsible: str = ""
    # How alike the names are (0-100): a name alone scores 90 at most, so among candidates
    # of one score the same name goes before a similar one ("Компания21" before
    # "Компания2", "Компания20", … when more than ``limit`` are alike).
    name_score: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "object_type": self.object_type,
            "id": self.object_id if self.visible else None,
            "title": self.title if self.visible else _("A record outside your access"),
            "score": self.score,
            "reasons": self.reasons,
            "responsible": self.responsible,
        }


# ------------------------------------------------------------------------ blocking keys


def name_keys_save(obj: Company | Person) -> None:
    """Store the blocking keys of ``obj.name_key``: call after saving a new or renamed record.

    Only the keys that changed are written. Deleted records keep theirs (the guard skips
    them; a restore needs nothing); a purge deletes them with the record.
    """
    wanted = set(name_block_keys(obj.name_key))
    rows: Any
    if isinstance(obj, Company):
        rows = CompanyNameKey.objects.filter(company_id=obj.pk)
    else:
        rows = PersonNameKey.objects.filter(person_id=obj.pk)
    stored = set(rows.values_list("key", flat=True))
    if stored - wanted:
        rows.filter(key__in=stored - wanted).delete()
    if wanted - stored:
        if isinstance(obj, Company):
            CompanyNameKey.objects.bulk_create(
                [CompanyNameKey(company_id=obj.pk, key=k) for k in sorted(wanted - stored)]
            )
        else:
            PersonNameKey.objects.bulk_create(
                [PersonNameKey(person_id=obj.pk, key=k) for k in sorted(wanted - stored)]
            )


def name_keys_rebuild(
    *, object_type: str, batch: int = 5_000, progress: Callable[[int], None] | None = None
) -> int:
    """Compute every stored blocking key again (after a change of the key scheme, or
    for rows loaded around the services, as the bench does); the number of records."""
    model: type[Company] | type[Person] = Company if object_type == "company" else Person
    key_model: Any = CompanyNameKey if object_type == "company" else PersonNameKey
    owner = "company_id" if object_type == "company" else "person_id"
    key_model.objects.all().delete()
    last, done = 0, 0
    while True:
        rows = list(
            model.objects.filter(id__gt=last).order_by("id").values_list("id", "name_key")[:batch]
        )
        if not rows:
            return done
        key_model.objects.bulk_create(
            [
                key_model(**{owner: oid, "key": k})
                for oid, key in rows
                for k in name_block_keys(key)
            ],
            batch_size=batch,
        )
        last, done = rows[-1][0], done + len(rows)
        if progress is not None:
            progress(done)


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def _marks(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _fuzzy_block(model: type[Company] | type[Person], key: str) -> dict[int, str]:
    """{id: name_key} of live records sharing a blocking key with ``key``.

    Found: a typo anywhere (one letter changed, added, dropped, or two swapped), another
    word order or alphabet (the key is sorted and transliterated), a word more or less
    (a patronymic). One query: the key index, then the records by primary key — in plain
    SQL (names from the models, values as parameters): the guard runs on every save and
    every check as one types, and the ORM's compiling cost more than the query.
    """
    probes = list(name_probe_keys(key))
    if not probes:
        return {}
    qn = connection.ops.quote_name
    key_model: Any = CompanyNameKey if model is Company else PersonNameKey
    fk = qn(key_model._meta.get_field("company" if model is Company else "person").column)
    sql = (
        f"SELECT {qn('id')}, {qn('name_key')} FROM {qn(model._meta.db_table)} "  # noqa: S608
        f"WHERE {qn('id')} IN (SELECT {fk} FROM {qn(key_model._meta.db_table)} "
        f"WHERE {qn('key')} IN ({_marks(probes)})) AND {qn('deleted_at')} IS NULL "
        f"LIMIT {BLOCK_LIMIT}"
    )
    return dict(_rows(sql, probes))


def _by_contact(owner: str, phones: list[str], emails: list[str]) -> list[tuple[Any, ...]]:
    """(id, channel, value) of the live companies or people (``owner``) holding one of the
    phones or emails, 50 at most."""
    qn = connection.ops.quote_name
    model: Any = Company if owner == "company" else Person
    fk = qn(f"{owner}_id")  # ContactPoint's foreign key column
    either, params = [], []
    for channel, values in (("phone", phones), ("email", emails)):
        if values:
            either.append(f"(cp.{qn('channel')} = %s AND cp.{qn('value')} IN ({_marks(values)}))")
            params += [channel, *values]
    sql = (
        f"SELECT cp.{fk}, cp.{qn('channel')}, cp.{qn('value')} "  # noqa: S608 - names from the models
        f"FROM {qn(ContactPoint._meta.db_table)} cp "
        f"JOIN {qn(model._meta.db_table)} r ON r.{qn('id')} = cp.{fk} "
        f"WHERE ({' OR '.join(either)}) AND r.{qn('deleted_at')} IS NULL LIMIT 50"
    )
    return _rows(sql, params)


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


def _merge(
    found: dict[int, Candidate], oid: int, title: str, score: int, reason: str, name: int = 0
) -> None:
    cand = found.get(oid)
    if cand is None:
        found[oid] = Candidate(
            object_type="", object_id=oid, title=title, score=score, reasons=[reason],
            name_score=name,
        )  # fmt: skip
        return
    cand.reasons.append(reason)
    cand.name_score = max(cand.name_score, name)
    # Two independent signals make a match surer than either alone.
    cand.score = min(100, max(cand.score, score) + 5)


def candidate_order(c: Candidate) -> tuple[int, int, int]:
    """Best first: the score, then the likeness of the names, then the oldest record."""
    return (-c.score, -c.name_score, c.object_id)


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
        for oid, channel, value in _by_contact(owner, phones, emails):
            if channel == "phone":
                _merge(found, oid, "", 70, _("same phone %(phone)s") % {"phone": value})
            else:
                _merge(found, oid, "", 95, _("same email %(email)s") % {"email": value})
    key = name_key(name)
    if key:
        keys = _fuzzy_block(model, key)  # the same name too: its "F" key
        # Candidates repeat names (a common name is shared by hundreds): score each once.
        scored: dict[str, tuple[int, str]] = {}
        for oid, other_key in keys.items():
            hit = scored.get(other_key)
            if hit is None:
                score = (
                    100
                    if other_key == key
                    else key_similarity(key, other_key)
                    if other_key and _may_reach(key, other_key, FUZZY_THRESHOLD)
                    else 0
                )
                reason = (
                    _("same name")
                    if score == 100
                    else _("similar name %(score)s%%") % {"score": score}
                )
                hit = scored[other_key] = (score, reason)
            if hit[0] >= FUZZY_THRESHOLD:
                _merge(found, oid, "", min(hit[0], 90), hit[1], name=hit[0])
    found.pop(exclude_id or -1, None)
    if not found:
        return []
    # Only the best ``limit`` are shown: load those rows, not every match (a common
    # Russian name has ~100 at 1M people, "Иванов Иван" within "Иванов Иван Иванович").
    best = sorted(found.values(), key=candidate_order)[:limit]
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
    result.sort(key=candidate_order)
    return result[:limit]
