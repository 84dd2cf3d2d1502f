"""Scenarios of the sales process and of activities, through the pages and API the product
uses, each with the closest raw SQL of the same reads (see ``bench/scenarios.py``).

Sales (the administrator's session or token): the board of the big pipeline, one column's
"more", a move through the board's JSON endpoint (with the version), the deal list filtered
by manager and stage, the funnel of the big pipeline for a year.
Activities: a busy company's timeline (administrator), then as a manager (each logs in with
its own session): the week calendar, the work desk, "my overdue tasks".
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db import connection, transaction
from django.utils import timezone

from bench.generate import BENCH_PASSWORD
from bench.generate_sales import BIG_PIPELINE
from bench.scenarios import WARMUP, Client, Scenario, _cycle, _in, _sql

HTML = {"Accept": "text/html"}


# --------------------------------------------------------------------------- inputs


@dataclass
class SalesInputs:
    pipeline_id: int
    stages: list[int]
    cursors: list[tuple[int, str, int]]  # stage, cursor, id of the cursor's last card
    moves: list[tuple[int, int, int, int]]  # deal, version, from stage, to stage
    by_manager: list[tuple[int, int]]  # manager, stage
    year: tuple[dt.date, dt.date]


@dataclass
class ActivityInputs:
    busy: list[int]
    managers: list[tuple[int, str]]  # id, username
    week: tuple[dt.date, dt.date]
    clients: dict[str, Client] = field(default_factory=dict)


def _cursor(last_id: int) -> str:
    """A keyset cursor as ``rapport.core.pagination`` writes it for ``-id``."""
    return base64.urlsafe_b64encode(json.dumps([last_id, last_id]).encode()).decode()


def has_deals() -> bool:
    return bool(_sql("SELECT 1 FROM sales_pipeline WHERE name = %s", [BIG_PIPELINE]))


def has_activities() -> bool:
    return bool(_sql("SELECT id FROM activities_task LIMIT 1"))


def load_sales(n: int, managers: list[int]) -> SalesInputs:
    rng = random.Random(11)
    pid = _sql("SELECT id FROM sales_pipeline WHERE name = %s", [BIG_PIPELINE])[0][0]
    stages = [
        r[0]
        for r in _sql(
            'SELECT id FROM sales_stage WHERE pipeline_id = %s AND is_active ORDER BY "order", id',
            [pid],
        )
    ]
    # "more": the page after a random card of a column (not always the second page, so the
    # column is read at different depths)
    cursors: list[tuple[int, str, int]] = []
    for i in range(n):
        stage = stages[i % len(stages)]
        ids = _sql(
            "SELECT id FROM sales_deal WHERE pipeline_id = %s AND status = 'open' "
            "AND stage_id = %s AND deleted_at IS NULL ORDER BY id DESC LIMIT 1 OFFSET %s",
            [pid, stage, rng.randrange(29, 2000)],
        )
        if ids:
            cursors.append((stage, _cursor(ids[0][0]), ids[0][0]))
    # moves: distinct open deals of the big pipeline, one stage forward (strict: the next one)
    candidates = _sql(
        f"SELECT id, version, stage_id FROM sales_deal WHERE pipeline_id = %s "
        f"AND status = 'open' AND deleted_at IS NULL AND stage_id IN ({_in(stages[:-1])}) "
        "AND id >= %s ORDER BY id LIMIT %s",
        [pid, *stages[:-1], rng.randrange(1, 10**6), (n + WARMUP) * 3],
    )
    if len(candidates) < n + WARMUP:
        candidates = _sql(
            f"SELECT id, version, stage_id FROM sales_deal WHERE pipeline_id = %s "
            f"AND status = 'open' AND deleted_at IS NULL AND stage_id IN ({_in(stages[:-1])}) "
            "ORDER BY id DESC LIMIT %s",
            [pid, *stages[:-1], (n + WARMUP) * 3],
        )
    rng.shuffle(candidates)
    moves = [(d, v, s, stages[stages.index(s) + 1]) for d, v, s in candidates[: n + WARMUP]]
    by_manager = [(rng.choice(managers), rng.choice(stages)) for _ in range(n)]
    today = timezone.localdate()
    return SalesInputs(
        pid, stages, cursors, moves, by_manager, (today - dt.timedelta(days=364), today)
    )


def load_activities(n: int) -> ActivityInputs:
    from django.contrib.auth.hashers import make_password

    # the managers log in to see their own calendar, desk and tasks
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "UPDATE accounts_user SET password = %s WHERE username LIKE 'manager%%'",
            [make_password(BENCH_PASSWORD)],
        )
    busy = [
        r[0]
        for r in _sql(
            "SELECT company_id FROM activities_interaction WHERE company_id IS NOT NULL "
            "GROUP BY company_id ORDER BY COUNT(*) DESC LIMIT 20"
        )
    ]
    managers = [
        (int(r[0]), str(r[1]))
        for r in _sql("SELECT id, username FROM accounts_user WHERE username LIKE 'manager%%'")
    ]
    today = timezone.localdate()
    monday = today - dt.timedelta(days=today.weekday())
    return ActivityInputs(busy, managers[:10], (monday, monday + dt.timedelta(days=7)))


# --------------------------------------------------------------------------- HTTP helpers


def _csrf(client: Client) -> dict[str, str]:
    origin = f"http://{client.host}:{client.port}"
    return {
        "X-CSRFToken": client.cookies.get("csrftoken", ""),
        "Origin": origin,
        "Referer": origin + "/",
    }


def _move(client: Client, item: tuple[int, int, int, int]) -> int:
    deal, version, _from, to = item
    status, _h, _b = client.request(
        "POST",
        f"/deals/{deal}/move/",
        body=urlencode({"stage_id": to, "version": version}).encode(),
        auth=False,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "X-Requested-With": "XMLHttpRequest",
            **_csrf(client),
        },
    )
    return status


def _as_manager(acts: ActivityInputs, manager: tuple[int, str], path: str) -> int:
    """``path`` as ``manager``, in the manager's own session (opened on first use: the
    scenarios warm up on every manager, so no timed request pays for a login's hashing)."""
    client = acts.clients.get(manager[1])
    if client is None:
        admin = next(iter(acts.clients.values()))
        client = Client(admin.host, admin.port, admin.token)
        error = client.login(manager[1])
        if error:
            return 0
        acts.clients[manager[1]] = client
    return client.get(path, auth=False, headers=HTML)[0]


# --------------------------------------------------------------------------- raw SQL

DEAL_JOINS = (
    "FROM sales_deal d LEFT JOIN parties_company c ON c.id = d.company_id "
    "LEFT JOIN parties_person p ON p.id = d.person_id "
    "LEFT JOIN accounts_user u ON u.id = d.responsible_id "
    "LEFT JOIN sales_stage s ON s.id = d.stage_id "
    "JOIN sales_pipeline pl ON pl.id = d.pipeline_id "
)
DEAL_COLS = "d.*, c.short_name, p.first_name, p.last_name, u.username, s.name, pl.name"


def _deal_extras(ids: list[int]) -> None:
    if ids:
        _sql(
            f"SELECT deal_id, user_id FROM sales_deal_coworkers WHERE deal_id IN ({_in(ids)})", ids
        )


def board_sql(inp: SalesInputs) -> None:
    _sql("SELECT * FROM sales_pipeline WHERE id = %s", [inp.pipeline_id])
    _sql(
        "SELECT stage_id, COUNT(*), SUM(amount) FROM sales_deal WHERE deleted_at IS NULL "
        "AND pipeline_id = %s AND status = 'open' GROUP BY stage_id",
        [inp.pipeline_id],
    )
    for stage in inp.stages:
        _sql(
            f"SELECT {DEAL_COLS} {DEAL_JOINS} WHERE d.deleted_at IS NULL AND d.pipeline_id = %s "
            "AND d.status = 'open' AND d.stage_id = %s ORDER BY d.id DESC LIMIT 31",
            [inp.pipeline_id, stage],
        )


def column_sql(inp: SalesInputs, item: tuple[int, str, int]) -> None:
    stage, _cur, last_id = item
    _sql(
        f"SELECT {DEAL_COLS} {DEAL_JOINS} WHERE d.deleted_at IS NULL AND d.pipeline_id = %s "
        "AND d.status = 'open' AND d.stage_id = %s AND d.id < %s ORDER BY d.id DESC LIMIT 31",
        [inp.pipeline_id, stage, last_id],
    )


def move_sql(inp: SalesInputs, item: tuple[int, int, int, int]) -> None:
    """The move's reads and writes (without the audit entry and outbox event), rolled back."""
    deal, _version, frm, to = item

    class RollbackError(Exception):
        """Undoes the baseline's writes."""

    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    try:
        with transaction.atomic():
            row = _sql(
                f"SELECT id, version, stage_entered_at FROM sales_deal WHERE id = %s{lock}", [deal]
            )
            _sql("SELECT * FROM sales_stage WHERE id = %s", [to])
            _sql(
                'SELECT name FROM sales_stage WHERE pipeline_id = %s AND is_active AND "order" > '
                '(SELECT "order" FROM sales_stage WHERE id = %s) AND "order" < '
                '(SELECT "order" FROM sales_stage WHERE id = %s)',
                [inp.pipeline_id, frm, to],
            )
            now = dt.datetime.now(dt.UTC)
            with connection.cursor() as cur:
                cur.execute(
                    "UPDATE sales_deal SET stage_id = %s, stage_entered_at = %s, "
                    "version = version + 1, updated_at = %s WHERE id = %s",
                    [to, now, now, deal],
                )
                cur.execute(
                    "INSERT INTO sales_stagechange (deal_id, pipeline_id, from_stage_id, "
                    "to_stage_id, from_status, to_status, at, seconds_in_previous, "
                    "limit_exceeded, amount) VALUES (%s, %s, %s, %s, 'open', 'open', %s, 1, %s, "
                    "NULL)",
                    [deal, inp.pipeline_id, frm, to, now, False],
                )
            _sql(f"SELECT {DEAL_COLS} {DEAL_JOINS} WHERE d.id = %s", [deal])
            for stage in (frm, to):
                _sql(
                    "SELECT COUNT(*), SUM(amount) FROM sales_deal WHERE deleted_at IS NULL "
                    "AND pipeline_id = %s AND status = 'open' AND stage_id = %s",
                    [inp.pipeline_id, stage],
                )
            assert row  # noqa: S101
            raise RollbackError
    except RollbackError:
        pass


def deal_list_sql(item: tuple[int, int]) -> None:
    manager, stage = item
    rows = _sql(
        f"SELECT {DEAL_COLS} {DEAL_JOINS} WHERE d.deleted_at IS NULL AND d.responsible_id = %s "
        "AND d.stage_id = %s ORDER BY d.id DESC LIMIT 51",
        [manager, stage],
    )
    _deal_extras([r[0] for r in rows])


def funnel_sql(inp: SalesInputs) -> None:
    """The funnel's reads: the day counters of the period by stage and loss reason (entries,
    time in stage, closings, creations: ``sales/stage_days.py``), then the results by
    manager / team / source of the deals open or closed in the period, grouped at once."""
    start = dt.datetime.combine(inp.year[0], dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(inp.year[1] + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    _sql(
        "SELECT stage, loss_reason, SUM(created), SUM(entered), SUM(entered_amount), "
        "SUM(timed), SUM(timed_seconds), SUM(over), SUM(won), SUM(won_amount), SUM(lost), "
        "SUM(lost_amount) FROM sales_stageday WHERE pipeline_id = %s AND day >= %s "
        "AND day <= %s GROUP BY stage, loss_reason",
        [inp.pipeline_id, inp.year[0], inp.year[1]],
    )
    _sql(
        "SELECT responsible_id, team_id, source, COUNT(CASE WHEN status = 'open' THEN id END), "
        "COUNT(CASE WHEN status = 'won' THEN id END), "
        "COUNT(CASE WHEN status = 'lost' THEN id END), "
        "SUM(CASE WHEN status = 'won' THEN won_amount END) FROM sales_deal "
        "WHERE pipeline_id = %s AND deleted_at IS NULL AND (status = 'open' OR "
        "(closed_at >= %s AND closed_at < %s)) GROUP BY responsible_id, team_id, source",
        [inp.pipeline_id, start, end],
    )


def timeline_sql(company: int) -> None:
    _sql("SELECT * FROM parties_company WHERE id = %s AND deleted_at IS NULL", [company])
    rows = _sql(
        "SELECT i.*, u.username, c.short_name, p.last_name, d.title FROM activities_interaction i "
        "LEFT JOIN accounts_user u ON u.id = i.responsible_id "
        "LEFT JOIN parties_company c ON c.id = i.company_id "
        "LEFT JOIN parties_person p ON p.id = i.person_id "
        "LEFT JOIN sales_deal d ON d.id = i.deal_id "
        "WHERE i.deleted_at IS NULL AND i.company_id = %s "
        "AND i.kind IN ('call', 'email', 'meeting', 'planned', 'note', 'message') "
        "ORDER BY i.at DESC, i.id DESC LIMIT 50",
        [company],
    )
    ids = [r[0] for r in rows]
    if ids:
        _sql(f"SELECT * FROM activities_participant WHERE interaction_id IN ({_in(ids)})", ids)
    _sql(
        "SELECT t.*, u.username FROM activities_task t LEFT JOIN accounts_user u "
        "ON u.id = t.responsible_id WHERE t.deleted_at IS NULL AND t.company_id = %s "
        "ORDER BY t.id DESC LIMIT 50",
        [company],
    )
    _sql(
        "SELECT * FROM core_auditentry WHERE object_type = 'company' AND object_id = %s "
        "ORDER BY at DESC LIMIT 50",
        [company],
    )


def _calendar_sql(user: int, start: dt.datetime, end: dt.datetime) -> None:
    _sql(
        "SELECT i.* FROM activities_interaction i WHERE i.deleted_at IS NULL "
        "AND i.responsible_id = %s AND i.at < %s AND i.at >= %s "
        "AND (i.kind IN ('meeting', 'planned') OR i.status = 'planned') "
        "AND i.status != 'cancelled' ORDER BY i.at DESC, i.id DESC LIMIT 1000",
        [user, end, start - dt.timedelta(days=1)],
    )
    _sql(
        "SELECT t.* FROM activities_task t WHERE t.deleted_at IS NULL AND t.due_at >= %s "
        "AND t.due_at < %s AND t.status IN ('open', 'in_progress', 'done') AND t.id IN "
        "(SELECT id FROM activities_task WHERE responsible_id = %s AND due_at >= %s "
        "AND due_at < %s AND status IN ('open', 'in_progress', 'done') UNION "
        "SELECT task_id FROM activities_task_coexecutors WHERE user_id = %s) "
        "ORDER BY t.due_at, t.id LIMIT 1000",
        [start, end, user, start, end, user],
    )


def _overdue_sql(user: int, limit: int) -> None:
    now = dt.datetime.now(dt.UTC)
    rows = _sql(
        "SELECT t.* FROM activities_task t WHERE t.deleted_at IS NULL "
        "AND t.status IN ('open', 'in_progress') AND t.due_at < %s AND t.parent_id IS NULL "
        "AND t.id IN (SELECT id FROM activities_task WHERE responsible_id = %s "
        "AND status IN ('open', 'in_progress') AND due_at < %s UNION "
        "SELECT task_id FROM activities_task_coexecutors WHERE user_id = %s) "
        "ORDER BY t.due_at, t.id LIMIT %s",
        [now, user, now, user, limit],
    )
    ids = [r[0] for r in rows]
    if ids:
        _sql(
            "SELECT parent_id, COUNT(*), COUNT(CASE WHEN status = 'done' THEN 1 END) "
            f"FROM activities_task WHERE deleted_at IS NULL AND parent_id IN ({_in(ids)}) "
            "GROUP BY parent_id",
            ids,
        )


def _aware(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def desk_sql(user: int) -> None:
    today = timezone.localdate()
    _calendar_sql(user, _aware(today), _aware(today + dt.timedelta(days=1)))
    _overdue_sql(user, 20)
    now = dt.datetime.now(dt.UTC)
    _sql(  # how many are overdue in all (the desk's figure)
        "SELECT COUNT(*) FROM activities_task t WHERE t.deleted_at IS NULL "
        "AND t.status IN ('open', 'in_progress') AND t.due_at < %s "
        "AND t.id IN (SELECT id FROM activities_task WHERE responsible_id = %s "
        "AND status IN ('open', 'in_progress') AND due_at < %s UNION "
        "SELECT task_id FROM activities_task_coexecutors WHERE user_id = %s)",
        [now, user, now, user],
    )
    _sql("SELECT COUNT(*) FROM parties_company WHERE deleted_at IS NULL")
    _sql("SELECT COUNT(*) FROM parties_person WHERE deleted_at IS NULL")


# --------------------------------------------------------------------------- scenarios


def build_sales(inp: SalesInputs, n: int) -> list[Scenario]:
    year_from, year_to = inp.year
    return [
        Scenario(
            "deal_board",
            "Board of the big pipeline (HTML, 7 columns × 30 cards)",
            100,
            list(range(n)),
            lambda c, _x: c.get(f"/board/{inp.pipeline_id}/", auth=False, headers=HTML)[0],
            lambda _x: board_sql(inp),
            session=True,
        ),
        Scenario(
            "deal_column_more",
            "Board column: the next 30 cards ('more')",
            100,
            _cycle(inp.cursors, n),
            lambda c, it: c.get(f"/board/column/{it[0]}/?cursor={it[1]}", auth=False, headers=HTML)[
                0
            ],
            lambda it: column_sql(inp, it),
            session=True,
        ),
        Scenario(
            "deal_move",
            "Move a deal one stage forward (board JSON, version checked)",
            100,
            inp.moves[WARMUP:],
            _move,
            lambda it: move_sql(inp, it),
            ok_status=(200, 409, 422),
            note="POST /deals/<id>/move/ (Accept: application/json); SQL baseline: the reads "
            "and the deal update + history insert, rolled back",
            warmup=inp.moves[:WARMUP],
            session=True,
            show_statuses=True,
        ),
        Scenario(
            "deal_list_manager_stage",
            "Deal list filtered by manager and stage (50)",
            100,
            inp.by_manager,
            lambda c, it: c.get(f"/api/v1/deals?responsible_id={it[0]}&stage_id={it[1]}&size=50")[
                0
            ],
            deal_list_sql,
        ),
        Scenario(
            "funnel_year",
            "Funnel of the big pipeline for a year (HTML)",
            500 if connection.vendor == "postgresql" else 1000,
            list(range(n)),
            lambda c, _x: c.get(
                f"/reports/funnel/?pipeline={inp.pipeline_id}&date_from={year_from}"
                f"&date_to={year_to}",
                auth=False,
                headers=HTML,
            )[0],
            lambda _x: funnel_sql(inp),
            session=True,
        ),
    ]


def build_activities(acts: ActivityInputs, n: int, admin: Client) -> list[Scenario]:
    acts.clients.setdefault("bench", admin)
    week_start, week_end = acts.week
    managers = _cycle(acts.managers, n)
    return [
        Scenario(
            "timeline_busy_company",
            "Timeline of a busy company, first page (HTML)",
            100,
            _cycle(acts.busy, n),
            lambda c, cid: c.get(f"/timeline/company/{cid}/", auth=False, headers=HTML)[0],
            timeline_sql,
            session=True,
        ),
        Scenario(
            "calendar_week",
            "A manager's week calendar (HTML)",
            100,
            managers,
            lambda _c, m: _as_manager(acts, m, f"/calendar/?view=week&date={week_start}"),
            lambda m: _calendar_sql(m[0], _aware(week_start), _aware(week_end)),
            warmup=list(acts.managers),
            session=True,
        ),
        Scenario(
            "work_desk",
            "Work desk of a manager (HTML, /)",
            100,
            managers,
            lambda _c, m: _as_manager(acts, m, "/"),
            lambda m: desk_sql(m[0]),
            session=True,
        ),
        Scenario(
            "my_overdue_tasks",
            "My overdue tasks (HTML, first page of 50)",
            100,
            managers,
            lambda _c, m: _as_manager(acts, m, "/tasks/?view=overdue"),
            lambda m: _overdue_sql(m[0], 51),
            session=True,
        ),
    ]


__all__ = [
    "build_activities",
    "build_sales",
    "has_activities",
    "has_deals",
    "load_activities",
    "load_sales",
]
