"""Scenarios: the same question asked through HTTP of a running server and as raw SQL.

Each scenario draws its inputs from the bench database, sends them to the server
(stdlib ``http.client``, one keep-alive connection, a bearer token or a session),
then runs the closest raw SQL through Django's ``connection.cursor()`` in this
process, and reports p50/p95/mean of both and the ratio p95 HTTP / p95 SQL.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode

from django.db import connection, transaction

from bench.generate import BENCH_PASSWORD, BENCH_USER, SOURCE, new_surname, phone

WARMUP = 5


# --------------------------------------------------------------------------- HTTP


class Client:
    """One connection to the server; reopened when the server closes it."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.cookies: dict[str, str] = {}
        self.conn = http.client.HTTPConnection(host, port, timeout=120)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Accept": "application/json", "Connection": "keep-alive", **(headers or {})}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    self.cookies[key] = morsel.value
        return resp.status, dict(resp.getheaders()), data

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kw)

    def post_json(self, path: str, payload: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request(
            "POST",
            path,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )

    def login(self, username: str = BENCH_USER) -> str | None:
        """Log in through the login page; None when it worked, else why not."""
        status, _h, html = self.get("/login/", auth=False, headers={"Accept": "text/html"})
        if status != 200:
            return f"GET /login/ answered {status}"
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        token = match.group(1).decode() if match else self.cookies.get("csrftoken", "")
        form = urlencode(
            {"username": username, "password": BENCH_PASSWORD, "csrfmiddlewaretoken": token}
        )
        origin = f"http://{self.host}:{self.port}"
        status, _h, _b = self.request(
            "POST",
            "/login/",
            body=form.encode(),
            auth=False,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": origin,
                "Referer": origin + "/login/",
                "X-CSRFToken": token,
            },
        )
        if "sessionid" not in self.cookies:
            return f"POST /login/ answered {status} without a session"
        return None


# --------------------------------------------------------------------------- stats


def summary(samples_ms: Sequence[float]) -> dict[str, Any]:
    if not samples_ms:
        return {"n": 0}
    ordered = sorted(samples_ms)

    def pct(p: float) -> float:
        k = (len(ordered) - 1) * p
        lo = int(k)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

    return {
        "n": len(ordered),
        "p50": round(pct(0.50), 2),
        "p95": round(pct(0.95), 2),
        "mean": round(statistics.fmean(ordered), 2),
        "max": round(ordered[-1], 2),
    }


# --------------------------------------------------------------------------- SQL helpers


def _sql(query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(query, list(params))
        return list(cur.fetchall())


def _in(ids: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(ids)) or "NULL"


def _fts_words(text: str) -> list[str]:
    return [w.lower() for w in re.findall(r"\w+", text)]


def search_sql(q: str, phone_terms: Sequence[str] | None = None) -> None:
    """The global search: the FTS5 MATCH (SQLite) or trigram ILIKE (PostgreSQL), 20 by title."""
    cols = "id, object_type, object_id, title, subtitle"
    if connection.vendor == "sqlite":
        if phone_terms:
            match = "body:(" + " OR ".join(f'"{t}"*' for t in phone_terms) + ")"
        else:
            match = (
                "body:("
                + " AND ".join('"' + " ".join(_fts_words(w)) + '"*' for w in q.split())
                + ")"
            )
        _sql(
            f"SELECT {cols} FROM core_searchdocument WHERE deleted = %s "
            "AND object_type IN ('company', 'person') AND id IN (SELECT rowid FROM "
            "core_searchdocument_fts WHERE core_searchdocument_fts MATCH %s LIMIT 2000) "
            "ORDER BY title, id LIMIT 20",
            [False, match],
        )
        return
    if phone_terms:
        cond = " OR ".join(["body LIKE %s"] * len(phone_terms))
        params: list[Any] = [f"%{t}%" for t in phone_terms]
    else:
        cond = " AND ".join(["body ILIKE %s"] * len(q.split()))
        params = [f"%{w.lower()}%" for w in q.split()]
    _sql(
        f"SELECT {cols} FROM core_searchdocument WHERE NOT deleted "
        f"AND object_type IN ('company', 'person') AND ({cond}) ORDER BY title, id LIMIT 20",
        params,
    )


def dup_check_sql(name_key_value: str, prefixes: Sequence[str], phones: Sequence[str]) -> list[int]:
    """The duplicate guard's queries: the phone's owners, the records sharing one of the name's
    probe keys in the blocking-key table (``parties.duplicates``), then the best rows.
    ``prefixes`` is kept for the callers' signature; the key table replaced prefix ranges."""
    from rapport.core.names import name_probe_keys

    ids: list[int] = []
    if phones:
        ids += [
            r[0]
            for r in _sql(
                "SELECT cp.person_id FROM parties_contactpoint cp JOIN parties_person p "
                "ON p.id = cp.person_id WHERE cp.channel = 'phone' "
                f"AND cp.value IN ({_in(phones)}) AND p.deleted_at IS NULL LIMIT 50",
                phones,
            )
        ]
    keys = list(name_probe_keys(name_key_value))
    if keys:
        ids += [
            r[0]
            for r in _sql(
                "SELECT id, name_key FROM parties_person WHERE deleted_at IS NULL AND id IN "
                f"(SELECT person_id FROM parties_personnamekey WHERE key IN ({_in(keys)})) "
                "LIMIT 1000",
                keys,
            )
        ]
    ids = list(dict.fromkeys(ids))[:10]
    if ids:
        _sql(f"SELECT id, name_key FROM parties_person WHERE id IN ({_in(ids)})", ids)
    return ids


# --------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    managers: list[int]
    company_ids: list[int]
    people: list[dict[str, Any]]  # id, first, last, middle, name_key, phone (E.164), raw
    ru_phones: list[str]
    emails: list[str]
    rng: random.Random = field(default_factory=lambda: random.Random(7))


def _sample_ids(table: str, n: int, where: str = "") -> list[int]:
    lo, hi = _sql(f"SELECT MIN(id), MAX(id) FROM {table}")[0]
    if lo is None:
        return []
    rng = random.Random(n)
    out: list[int] = []
    for _ in range(20):
        want = [rng.randint(lo, hi) for _ in range(n * 3)]
        rows = _sql(f"SELECT id FROM {table} WHERE id IN ({_in(want)}) {where}", want)
        out += [r[0] for r in rows]
        if len(out) >= n:
            break
    return out[:n]


def load_inputs(n: int, managers: list[int]) -> Inputs:
    people_ids = _sample_ids("parties_person", n * 2, f"AND source = '{SOURCE}'")
    rows = _sql(
        "SELECT p.id, p.first_name, p.last_name, p.middle_name, p.name_key, cp.value, cp.raw "
        "FROM parties_person p JOIN parties_contactpoint cp ON cp.person_id = p.id "
        f"AND cp.channel = 'phone' AND cp.is_primary WHERE p.id IN ({_in(people_ids)})",
        people_ids,
    )
    people = [
        dict(zip(("id", "first", "last", "middle", "name_key", "phone", "raw"), r, strict=True))
        for r in rows
    ]
    cp_ids = _sample_ids("parties_contactpoint", n * 12, "AND person_id IS NOT NULL")
    points = _sql(
        f"SELECT channel, value FROM parties_contactpoint WHERE id IN ({_in(cp_ids)})", cp_ids
    )
    ru = [v for ch, v in points if ch == "phone" and v.startswith("+79")]
    emails = [v for ch, v in points if ch == "email"]
    companies = _sample_ids("parties_company", n, f"AND source = '{SOURCE}'")
    return Inputs(
        managers=managers, company_ids=companies, people=people, ru_phones=ru, emails=emails
    )


def _cycle(items: Sequence[Any], n: int) -> list[Any]:
    if not items:
        return []
    return [items[i % len(items)] for i in range(n)]


def ru_national(e164: str) -> str:
    """ "+79123456789" typed the Russian way: "8 (912) 345-67-89"."""
    d = e164[2:]
    return f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}"


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    key: str
    title: str
    target_ms: float
    inputs: list[Any]
    http: Callable[[Client, Any], int]
    sql: Callable[[Any], Any]
    ok_status: tuple[int, ...] = (200,)
    note: str = ""
    warmup: list[Any] | None = None  # default: the first inputs, asked again when measured
    session: bool = False  # a page: the client logs in (as the administrator) first
    show_statuses: bool = False  # the table shows the HTTP status counts


def _list_sql(table: str, where: str, params: list[Any], people: bool) -> None:
    rows = _sql(
        f"SELECT t.*, u.username FROM {table} t "
        "LEFT JOIN accounts_user u ON u.id = t.responsible_id "
        f"WHERE t.deleted_at IS NULL {where} ORDER BY t.id DESC LIMIT 51",
        params,
    )
    ids = [r[0] for r in rows]
    owner = "person_id" if people else "company_id"
    _sql(
        f"SELECT * FROM parties_contactpoint WHERE {owner} IN ({_in(ids)}) ORDER BY position, id",
        ids,
    )
    tag_table = "parties_person_tags" if people else "parties_company_tags"
    _sql(
        f"SELECT g.*, x.{owner} FROM parties_tag g JOIN {tag_table} x ON x.tag_id = g.id "
        f"WHERE x.{owner} IN ({_in(ids)})",
        ids,
    )
    if people:
        _sql(
            "SELECT e.*, c.short_name, c.deleted_at FROM parties_employment e JOIN "
            f"parties_company c ON c.id = e.company_id WHERE e.person_id IN ({_in(ids)}) "
            "ORDER BY e.id",
            ids,
        )


def _card_sql(company_id: int) -> None:
    _sql(
        "SELECT c.*, u.username, t.name FROM parties_company c LEFT JOIN accounts_user u "
        "ON u.id = c.responsible_id LEFT JOIN accounts_team t ON t.id = c.team_id "
        "WHERE c.id = %s AND c.deleted_at IS NULL",
        [company_id],
    )
    _sql(
        "SELECT * FROM parties_contactpoint WHERE company_id = %s ORDER BY position, id",
        [company_id],
    )
    rows = _sql(
        "SELECT e.*, p.first_name, p.last_name FROM parties_employment e JOIN "
        "parties_person p ON p.id = e.person_id WHERE e.company_id = %s "
        "AND p.deleted_at IS NULL ORDER BY e.is_current DESC, p.last_name, e.id",
        [company_id],
    )
    ids = [r[0] for r in rows]
    if ids:
        _sql(f"SELECT * FROM parties_contactpoint WHERE person_id IN ({_in(ids)})", ids)
    _sql(
        "SELECT * FROM core_auditentry WHERE object_type = 'company' AND object_id = %s "
        "ORDER BY at DESC, id DESC LIMIT 20",
        [company_id],
    )


def _prefixes(name_key_value: str) -> list[str]:
    return sorted({t[:3] for t in name_key_value.split() if t})


def _create_sql(item: dict[str, Any]) -> None:
    """Duplicate queries, then the inserts a create makes, rolled back."""
    from rapport.core.names import name_key

    key = name_key(item["full"])
    dup_check_sql(key, _prefixes(key), [item["e164"]])

    class RollbackError(Exception):
        """Raised to undo the baseline's inserts."""

    now = "2026-01-01 00:00:00" + ("+00" if connection.vendor == "postgresql" else "")
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(
                "INSERT INTO parties_person (created_at, updated_at, version, custom_fields, "
                "source, notes, name_key, first_name, last_name, middle_name, time_zone, "
                "time_zone_manual, city, address) VALUES (%s, %s, 1, '{}', '', '', %s, %s, %s, "
                "'', '', %s, '', '')"
                + (" RETURNING id" if connection.vendor == "postgresql" else ""),
                [now, now, key, item["first"], item["last"], False],
            )
            pid = cur.fetchone()[0] if connection.vendor == "postgresql" else cur.lastrowid
            cur.execute(
                "INSERT INTO parties_contactpoint (created_at, updated_at, person_id, channel, "
                "kind, raw, value, extension, valid, is_primary, position) VALUES "
                "(%s, %s, %s, 'phone', 'mobile', %s, %s, '', %s, %s, 0)",
                [now, now, pid, item["raw"], item["e164"], True, True],
            )
            cur.execute(
                "INSERT INTO core_searchdocument (object_type, object_id, title, subtitle, "
                "body, deleted) VALUES ('person', %s, %s, '', %s, %s)",
                [pid, item["full"], f"{key} {item['e164'][1:]}", False],
            )
            raise RollbackError
    except RollbackError:
        pass


def build(inputs: Inputs, n: int) -> list[Scenario]:
    rng = inputs.rng
    people = inputs.people
    scenarios: list[Scenario] = []

    scenarios.append(
        Scenario(
            "companies_list",
            "Companies list, first page (50)",
            50,
            list(range(n)),
            lambda c, _x: c.get("/api/v1/companies?size=50")[0],
            lambda _x: _list_sql("parties_company", "", [], people=False),
        )
    )
    mgr = [rng.choice(inputs.managers) for _ in range(n)]
    scenarios.append(
        Scenario(
            "people_by_manager",
            "People list filtered by manager (50)",
            50,
            mgr,
            lambda c, m: c.get(f"/api/v1/people?responsible_id={m}&size=50")[0],
            lambda m: _list_sql("parties_person", "AND t.responsible_id = %s", [m], people=True),
        )
    )
    prefixes = [p["last"][:4] for p in _cycle(people, n)]
    scenarios.append(
        Scenario(
            "search_name_prefix",
            "Search: first 4 letters of a last name",
            50,
            prefixes,
            lambda c, q: c.get(f"/api/v1/search?q={quote(q)}")[0],
            lambda q: search_sql(q),
        )
    )
    phones = [ru_national(v) for v in _cycle(inputs.ru_phones, n)]
    scenarios.append(
        Scenario(
            "search_phone",
            "Search: phone digits typed as 8 (XXX) XXX-XX-XX",
            50,
            phones,
            lambda c, q: c.get(f"/api/v1/search?q={quote(q)}")[0],
            lambda q: search_sql(
                q, phone_terms=["7" + re.sub(r"\D", "", q)[1:], re.sub(r"\D", "", q)]
            ),
        )
    )
    emails = _cycle(inputs.emails, n)
    scenarios.append(
        Scenario(
            "search_email",
            "Search: an email",
            50,
            emails,
            lambda c, q: c.get(f"/api/v1/search?q={quote(q)}")[0],
            lambda q: search_sql(q),
        )
    )
    scenarios.append(
        Scenario(
            "card_page",
            "Company card page (HTML)",
            80,
            _cycle(inputs.company_ids, n),
            lambda c, cid: c.get(f"/companies/{cid}/", auth=False, headers={"Accept": "text/html"})[
                0
            ],
            _card_sql,
            session=True,
        )
    )
    creates = []
    # A fresh seed: with --reuse, the people a previous run created are still there,
    # and the same names and phones would all answer 409 (a cheaper path).
    new_rng = random.Random()  # noqa: S311 - bench inputs, not secrets
    for _ in range(n + WARMUP):
        first = new_rng.choice(("Иван", "Anna", "Marco", "Leyla", "John", "Ольга"))
        last = new_surname(new_rng)
        e164, raw = phone(new_rng, "RU")
        creates.append(
            {"first": first, "last": last, "full": f"{last} {first}", "e164": e164, "raw": raw}
        )
    scenarios.append(
        Scenario(
            "create_person",
            "Create a person with the duplicate check",
            50,
            creates[WARMUP:],
            lambda c, it: c.post_json(
                "/api/v1/people",
                {
                    "first_name": it["first"],
                    "last_name": it["last"],
                    "phones": [{"raw": it["raw"]}],
                    "source": "bench-create",
                },
            )[0],
            _create_sql,
            ok_status=(201, 409),
            note="new name + new phone; SQL baseline: guard queries + inserts, rolled back",
            warmup=creates[:WARMUP],
            show_statuses=True,
        )
    )
    dups = _cycle(people, n)
    scenarios.append(
        Scenario(
            "duplicate_check",
            "Duplicate check of an existing person",
            20,
            dups,
            lambda c, p: c.post_json(
                "/api/v1/duplicates/check",
                {
                    "object_type": "person",
                    "name": " ".join(x for x in (p["last"], p["first"], p["middle"]) if x),
                    "phones": [p["raw"]],
                },
            )[0],
            lambda p: dup_check_sql(p["name_key"], _prefixes(p["name_key"]), [p["phone"]]),
        )
    )
    return scenarios


def run(
    client: Client, scenarios: list[Scenario], out: Callable[[str], None]
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    session_error: str | None = None
    logged_in = False
    for sc in scenarios:
        res: dict[str, Any] = {
            "key": sc.key,
            "title": sc.title,
            "target_p95_ms": sc.target_ms,
            "note": sc.note,
            "show_statuses": sc.show_statuses,
        }
        if not sc.inputs:
            res["status"] = "skipped: no inputs in the database"
            results.append(res)
            out(f"  {sc.key}: {res['status']}")
            continue
        if sc.session:
            if not logged_in and session_error is None:
                session_error = client.login()
                logged_in = session_error is None
            if session_error is not None:
                res["status"] = f"skipped: page missing ({session_error})"
                results.append(res)
                out(f"  {sc.key}: {res['status']}")
                continue
        if sc.key == "card_page":
            probe = sc.http(client, sc.inputs[0])
            if probe == 404:
                res["status"] = "skipped: page missing (GET /companies/<id>/ answered 404)"
                results.append(res)
                out(f"  {sc.key}: {res['status']}")
                continue
        statuses: Counter[int] = Counter()
        for item in sc.warmup if sc.warmup is not None else sc.inputs[:WARMUP]:
            sc.http(client, item)
            sc.sql(item)
        http_ms: list[float] = []
        for item in sc.inputs:
            t0 = time.perf_counter()
            status = sc.http(client, item)
            http_ms.append((time.perf_counter() - t0) * 1000)
            statuses[status] += 1
        sql_ms: list[float] = []
        for item in sc.inputs:
            t0 = time.perf_counter()
            sc.sql(item)
            sql_ms.append((time.perf_counter() - t0) * 1000)
        res["http"] = summary(http_ms)
        res["sql"] = summary(sql_ms)
        res["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
        res["ratio"] = (
            round(res["http"]["p95"] / res["sql"]["p95"], 1) if res["sql"]["p95"] else None
        )
        bad = sum(v for k, v in statuses.items() if k not in sc.ok_status)
        if bad:
            res["status"] = f"errors: {bad} unexpected answers {dict(statuses)}"
        elif res["http"]["p95"] > sc.target_ms:
            res["status"] = "over target"
        else:
            res["status"] = "ok"
        results.append(res)
        out(
            f"  {sc.key}: http p50 {res['http']['p50']} ms p95 {res['http']['p95']} ms | "
            f"sql p50 {res['sql']['p50']} ms p95 {res['sql']['p95']} ms | x{res['ratio']} | "
            f"{res['status']}"
        )
    return results
