"""One search over companies, people (later deals and leads).

``search_index`` keeps a SearchDocument per record; ``search_query`` finds them by
name words in any order (prefix), phone digits typed in any format, email or tax
id. SQLite answers from an FTS5 index, PostgreSQL from a trigram index; callers
see one interface. Results are filtered by the user's view scope per type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from rapport.core.emails import normalize_email
from rapport.core.models import SearchDocument
from rapport.core.names import name_tokens
from rapport.core.phones import (
    national_digits,
    parse_phone,
    phone_digits,
    search_phone_variants,
)
from rapport.core.scopes import scope_q

_WORD = re.compile(r"\w+", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def search_body(
    *,
    names: Iterable[str],
    phones: Iterable[str] = (),
    emails: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> str:
    """The indexed text: words as typed, transliterated name tokens, emails, phone digits."""
    tokens: list[str] = []
    for name in names:
        if name:
            tokens.extend(_words(name))
            tokens.extend(name_tokens(name))
    for email in emails:
        if email:
            tokens.append(email.lower())
    for phone in phones:
        digits = phone_digits(phone)
        if digits:
            tokens.append(digits)
        if phone.startswith("+"):
            national = national_digits(phone)
            if national:
                tokens.append(national)
    for item in extra:
        if item:
            tokens.extend(_words(item))
    seen: dict[str, None] = dict.fromkeys(tokens)
    return " ".join(seen)


def search_index(
    *,
    object_type: str,
    object_id: int,
    title: str,
    subtitle: str = "",
    body: str,
    team_id: int | None,
    responsible_id: int | None,
    deleted: bool = False,
) -> None:
    SearchDocument.objects.update_or_create(
        object_type=object_type,
        object_id=object_id,
        defaults={
            "title": title[:300],
            "subtitle": subtitle[:300],
            "body": body,
            "team_id": team_id,
            "responsible_id": responsible_id,
            "deleted": deleted,
        },
    )


def _fts_phrase(word: str) -> str:
    parts = _words(word)
    if not parts:
        return ""
    return '"' + " ".join(parts) + '"*'


def _is_phone_query(q: str) -> bool:
    digits = phone_digits(q)
    return len(digits) >= 5 and not re.search(r"[^\d\s()+\-./٠-٩۰-۹]", q)


def _email_query(q: str) -> str:
    """The normalised address when ``q`` is one whole, valid email; else ""."""
    if "@" not in q or any(c.isspace() for c in q):
        return ""
    parsed = normalize_email(q)
    return parsed.normalized if parsed.valid else ""


def _contact_owners(channel: str, value: str, types: list[str], cap: int) -> Q | None:
    """Records holding ``value`` as a contact point (index ``contact_value_idx``).

    None when no record has it: the caller then searches the text as before, so the
    start of a longer address or number still finds it. A whole email or phone is
    found this way because FTS5 answers an address as a phrase query that reads the
    whole doclist of every token ("gmail", "com": in a third of the documents), and
    the trigram index is weak on digits: 30-120 ms at 1M people.
    """
    from rapport.parties.models import ContactPoint

    rows = list(
        ContactPoint.objects.filter(channel=channel, value=value).values_list(
            "person_id", "company_id"
        )[:cap]
    )
    people = [p for p, _c in rows if p is not None]
    companies = [c for _p, c in rows if c is not None]
    cond = Q(pk__in=[])
    if people and "person" in types:
        cond |= Q(object_type="person", object_id__in=people)
    if companies and "company" in types:
        cond |= Q(object_type="company", object_id__in=companies)
    return cond if rows else None


def search_candidates(
    *, q: str, object_types: Iterable[str], cap: int = 2000
) -> QuerySet[SearchDocument]:
    """Unscoped matches of ``q``; callers add the scope (``search_query`` does)."""
    types = list(object_types)
    base = SearchDocument.objects.filter(object_type__in=types, deleted=False)
    q = q.strip()
    if not q:
        return base.none()
    if _is_phone_query(q):
        parsed = parse_phone(q, default_region=settings.DEFAULT_PHONE_REGION)
        owners = _contact_owners("phone", parsed.e164, types, cap) if parsed.e164 else None
        if owners is not None:
            return base.filter(owners)
        variants = search_phone_variants(q, default_region=settings.DEFAULT_PHONE_REGION)
        terms_any = [v for v in variants if len(v) >= 5] or [phone_digits(q)]
        if connection.vendor == "sqlite":
            match = " OR ".join(f'"{v}"*' for v in terms_any)
            return base.filter(
                id__in=RawSQL(
                    "SELECT rowid FROM core_searchdocument_fts WHERE core_searchdocument_fts "
                    "MATCH %s LIMIT %s",
                    (f"body:({match})", cap),
                )
            )
        cond = Q()
        for v in terms_any:
            cond |= Q(body__contains=v)
        return base.filter(cond)
    email = _email_query(q)
    if email:
        owners = _contact_owners("email", email, types, cap)
        if owners is not None:
            return base.filter(owners)
    words = [w for w in q.split() if _words(w)]
    if not words:
        return base.none()
    if connection.vendor == "sqlite":
        match = " AND ".join(_fts_phrase(w) for w in words)
        return base.filter(
            id__in=RawSQL(
                "SELECT rowid FROM core_searchdocument_fts WHERE core_searchdocument_fts "
                "MATCH %s LIMIT %s",
                (f"body:({match})", cap),
            )
        )
    # The body is lower case (``search_body``): a plain LIKE, which the trigram index
    # on ``body`` serves; ``icontains`` would be UPPER(body) LIKE, a sequential scan.
    # As on SQLite, at most ``cap`` matches are sorted: a common prefix ("петр") matches
    # 20k documents, and fetching them all from the heap takes a second when cold.
    cond = Q()
    for w in words:
        term = w.lower().strip(".,;:()\"'«»")
        if term:
            cond &= Q(body__contains=term)
    return base.filter(id__in=base.filter(cond).order_by().values("id")[:cap])


def search_query(
    *, user: Any, q: str, object_types: Iterable[str] = ("company", "person"), limit: int = 20
) -> list[SearchDocument]:
    """What ``user`` may see of the matches of ``q``, best first."""
    types = list(object_types)
    scope = Q(pk__in=[])
    for t in types:
        scope |= Q(object_type=t) & scope_q(user, t, "view")
    qs = search_candidates(q=q, object_types=types).filter(scope)
    return list(qs.order_by("title", "id")[:limit])
