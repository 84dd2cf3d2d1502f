"""``rapport bench``: fill a separate database at scale, time the scenarios through HTTP.

The command prepares the bench database (a separate SQLite file, or a PostgreSQL
database it creates), migrates it, then runs itself again with ``DATABASE_URL``
pointing there: that second process generates the data, starts gunicorn, runs the
scenarios of ``bench/scenarios.py`` and writes ``bench/results/*.json``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse, urlunparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

CHILD_ENV = "RAPPORT_BENCH_CHILD"
REUSE_ENV = "RAPPORT_BENCH_REUSED"
WORKERS = 2
EXTRAS = ("deals", "interactions", "tasks")
EXTRA_DEFAULTS = {"deals": 5_000, "interactions": 20_000, "tasks": 5_000}


def _vendor(url: str) -> str:
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        return "sqlite"
    if scheme in {"postgres", "postgresql", "pgsql"}:
        return "postgresql"
    raise CommandError(f"--database-url must be sqlite:// or postgres://, got {url!r}")


def _sqlite_path(url: str) -> Path:
    """As dj-database-url reads it: sqlite:////abs/file or sqlite:///relative/file."""
    return Path(urlparse(url).path[1:])


def _pg_parts(url: str) -> tuple[str, str]:
    """(url of the 'postgres' maintenance database, name of the bench database)."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name:
        raise CommandError("--database-url needs a database name")
    return urlunparse(parsed._replace(path="/postgres", scheme="postgresql")), name


def _bench_module(name: str) -> ModuleType:
    root = str(settings.PROJECT_DIR)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(f"bench.{name}")
    except ImportError as exc:
        raise CommandError(
            f"bench/{name}.py not found under {root}: run from a source checkout"
        ) from exc


class Command(BaseCommand):
    help = "Generate people and companies at scale and time the main pages and API calls."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--people", type=int, default=20_000)
        parser.add_argument("--companies", type=int, default=6_000)
        parser.add_argument(
            "--deals",
            type=int,
            default=None,
            help=f"deals, about 6 history rows each (default {EXTRA_DEFAULTS['deals']:,}; "
            "with --reuse: as many as the database holds)",
        )
        parser.add_argument(
            "--interactions",
            type=int,
            default=None,
            help=f"default {EXTRA_DEFAULTS['interactions']:,}",
        )
        parser.add_argument(
            "--tasks", type=int, default=None, help=f"default {EXTRA_DEFAULTS['tasks']:,}"
        )
        parser.add_argument(
            "--only",
            default="",
            help="comma-separated scenario groups to run: people, sales, activities (default: "
            "all of these), imports (only when named); automations runs "
            "bench/scenarios_automations.py on its own database",
        )
        parser.add_argument("--requests", type=int, default=50, help="per scenario (>= 50)")
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="keep the bench database when it holds as many records",
        )
        parser.add_argument(
            "--database-url",
            default="",
            help="default: a SQLite file bench.sqlite3 in RAPPORT_DATA_DIR",
        )
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--write-readme", action="store_true", help="put the results table in bench/README.md"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["only"].strip() == "automations":
            # Rules over outbox events and the worker's latency: a database of its own.
            command = [sys.executable, "-m", "bench.scenarios_automations", "--latency-with-rules"]
            if opts["database_url"]:
                command += ["--database-url", opts["database_url"]]
            subprocess.run(command, cwd=settings.PROJECT_DIR, check=True)  # noqa: S603
            return
        url: str = opts["database_url"] or f"sqlite:///{settings.DATA_DIR / 'bench.sqlite3'}"
        if opts["requests"] < 50:
            raise CommandError("--requests must be at least 50")
        if os.environ.get(CHILD_ENV) == "1":
            self._run(url, opts)
        else:
            self._prepare(url, opts)

    # ----------------------------------------------------------------------- parent

    def _counts(self, url: str) -> dict[str, int] | None:
        query = (
            "SELECT (SELECT COUNT(*) FROM parties_person WHERE source = 'bench'), "
            "(SELECT COUNT(*) FROM parties_company WHERE source = 'bench'), "
            "(SELECT COUNT(*) FROM sales_deal), (SELECT COUNT(*) FROM activities_interaction), "
            "(SELECT COUNT(*) FROM activities_task WHERE origin_key IS NULL)"
        )
        try:
            if _vendor(url) == "sqlite":
                path = _sqlite_path(url)
                if not path.exists():
                    return None
                with sqlite3.connect(path) as db:
                    row = db.execute(query).fetchone()
            else:
                import psycopg

                with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as pg:
                    row = pg.execute(query).fetchone()
        except Exception:  # noqa: BLE001 - missing database or tables: not reusable
            return None
        if not row:
            return None
        keys = ("people", "companies", "deals", "interactions", "tasks")
        return {k: int(v) for k, v in zip(keys, row, strict=True)}

    def _wipe(self, url: str) -> None:
        if _vendor(url) == "sqlite":
            path = _sqlite_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        import psycopg
        from psycopg import sql

        admin_url, name = _pg_parts(url)
        with psycopg.connect(admin_url, autocommit=True) as pg:
            pg.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            pg.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def _prepare(self, url: str, opts: dict[str, Any]) -> None:
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "rapport.settings"}
        counts = self._counts(url) if opts["reuse"] else None
        same_parties = counts is not None and (counts["people"], counts["companies"]) == (
            opts["people"],
            opts["companies"],
        )
        # --reuse without sizes of deals and activities takes those the database holds
        # (a people-only database stays people-only); sizes given must match.
        reused = same_parties and all(
            opts[k] is None or opts[k] == counts[k]  # type: ignore[index]
            for k in EXTRAS
        )
        # The same people and companies without any deals, interactions or tasks yet:
        # keep them and generate only the rest.
        parties_only = (
            same_parties and not reused and all(counts[k] == 0 for k in EXTRAS)  # type: ignore[index]
        )
        for k in EXTRAS:
            if reused:
                opts[k] = counts[k]  # type: ignore[index]
            elif opts[k] is None:
                opts[k] = EXTRA_DEFAULTS[k]
        if reused:
            self.stdout.write(f"Reusing the bench database {url} ({counts})")
        elif parties_only:
            self.stdout.write(
                f"Reusing the people and companies of {url}; generating deals and activities"
            )
        else:
            if opts["reuse"]:
                self.stdout.write(f"Cannot reuse ({counts}): generating anew")
            self.stdout.write(f"Creating the bench database {url}")
            self._wipe(url)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "rapport.cli", "migrate", "--no-input", "-v", "0"],  # noqa: S603
            env=env,
            check=True,
        )
        self.stdout.write(f"Migrated in {time.perf_counter() - started:.1f} s")
        argv = [
            sys.executable,
            "-m",
            "rapport.cli",
            "bench",
            "--people",
            str(opts["people"]),
            "--companies",
            str(opts["companies"]),
            "--deals",
            str(opts["deals"]),
            "--interactions",
            str(opts["interactions"]),
            "--tasks",
            str(opts["tasks"]),
            "--only",
            opts["only"],
            "--requests",
            str(opts["requests"]),
            "--database-url",
            url,
            "--port",
            str(opts["port"]),
        ]
        if opts["write_readme"]:
            argv.append("--write-readme")
        env[CHILD_ENV] = "1"
        env[REUSE_ENV] = "1" if reused else "parties" if parties_only else "0"
        result = subprocess.run(argv, env=env, check=False)  # noqa: S603
        if result.returncode:
            raise CommandError(f"the bench run failed (exit {result.returncode})")

    # ----------------------------------------------------------------------- child

    def _out(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _start_server(self, url: str, port: int, token: str) -> subprocess.Popen[bytes]:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        log = settings.DATA_DIR / "bench-gunicorn.log"
        env = {**os.environ, "DATABASE_URL": url}
        env.pop(CHILD_ENV, None)
        argv = [
            str(gunicorn),
            "rapport.wsgi:application",
            "--workers",
            str(WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        with log.open("ab") as fh:
            proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT)  # noqa: S603
        import http.client

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CommandError(f"gunicorn exited with {proc.returncode}; see {log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request(
                    "GET", "/api/v1/search?q=a", headers={"Authorization": f"Bearer {token}"}
                )
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return proc
            except OSError:
                pass
            time.sleep(0.3)
        self._stop_server(proc)
        raise CommandError(f"the server did not answer on port {port} within 60 s; see {log}")

    def _stop_server(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _machine(self) -> dict[str, Any]:
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                cur.execute("SHOW server_version")
                version = str(cur.fetchone()[0]).split()[0]
            else:
                version = sqlite3.sqlite_version
        return {
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "python": platform.python_version(),
            "db_version": version,
        }

    def _sizes(self) -> dict[str, int]:
        tables = {
            "people": "parties_person",
            "companies": "parties_company",
            "contact_points": "parties_contactpoint",
            "employments": "parties_employment",
            "search_documents": "core_searchdocument",
            "deals_total": "sales_deal",
            "stage_changes": "sales_stagechange",
            "leads": "sales_lead",
            "interactions_total": "activities_interaction",
            "participants": "activities_participant",
            "tasks_total": "activities_task",
        }
        out: dict[str, int] = {}
        with connection.cursor() as cur:
            for key, table in tables.items():
                cur.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - fixed table names
                out[key] = int(cur.fetchone()[0])
        return out

    def _generate_more(self, org: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        """Deals with their history, then interactions and tasks; ANALYZE the new tables."""
        stats: dict[str, Any] = {}
        started = time.perf_counter()
        if opts["deals"]:
            self._out(f"Generating {opts['deals']:,} deals with their stage history")
            stats["sales"] = _bench_module("generate_sales").generate_sales(
                deals=opts["deals"], org=org, out=self._out
            )
        if opts["interactions"] or opts["tasks"]:
            self._out(
                f"Generating {opts['interactions']:,} interactions and {opts['tasks']:,} tasks"
            )
            stats["activities"] = _bench_module("generate_activities").generate_activities(
                interactions=opts["interactions"], tasks=opts["tasks"], org=org, out=self._out
            )
        t0 = time.perf_counter()
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                # VACUUM as well: index-only scans need the visibility map of the new rows
                for table in (
                    "sales_deal",
                    "sales_stagechange",
                    "sales_lead",
                    "activities_interaction",
                    "activities_participant",
                    "activities_task",
                    "activities_task_coexecutors",
                ):
                    cur.execute(f"VACUUM ANALYZE {table}")
            else:
                cur.execute("ANALYZE")
                cur.execute("PRAGMA synchronous=NORMAL")
        stats["more_analyze_seconds"] = round(time.perf_counter() - t0, 1)
        seconds = time.perf_counter() - started
        rows = sum(int(v.get("rows", 0)) for v in stats.values() if isinstance(v, dict))
        stats["more_seconds"] = round(seconds, 1)
        stats["more_rows"] = rows
        stats["more_rows_per_second"] = round(rows / seconds) if seconds else None
        return stats

    def _run(self, url: str, opts: dict[str, Any]) -> None:
        generate = _bench_module("generate")
        scenarios = _bench_module("scenarios")
        report = _bench_module("report")
        org: dict[str, Any] = generate.setup_org(self._out)
        gen_stats: dict[str, Any] | None = None
        reuse = os.environ.get(REUSE_ENV, "0")
        if reuse == "0":
            self._out(f"Generating {opts['people']:,} people and {opts['companies']:,} companies")
            gen_stats = generate.generate(
                people=opts["people"], companies=opts["companies"], org=org, out=self._out
            )
        if reuse != "1" and (opts["deals"] or opts["interactions"] or opts["tasks"]):
            gen_stats = {**(gen_stats or {}), **self._generate_more(org, opts)}
        sizes = self._sizes()
        started_at = dt.datetime.now(dt.UTC)
        load = [round(x, 2) for x in os.getloadavg()]
        n = opts["requests"]
        groups = {g.strip() for g in opts["only"].split(",") if g.strip()} or {
            "people",
            "sales",
            "activities",
        }
        managers = [m for m, _team in org["managers"]]
        more = _bench_module("scenarios_sales")
        client = scenarios.Client("127.0.0.1", opts["port"], org["token"])
        todo = []
        if "people" in groups:
            todo += scenarios.build(scenarios.load_inputs(n, managers), n)
        if "sales" in groups and more.has_deals():
            todo += more.build_sales(more.load_sales(n, managers), n)
        if "activities" in groups and more.has_activities():
            todo += more.build_activities(more.load_activities(n), n, client)
        imports = None
        if "imports" in groups:  # only when asked for: ~10 minutes at 1M people
            self._out("Import, preview, finder and export scenarios (bench/scenarios_imports.py)")
            imports = _bench_module("scenarios_imports").run_all(
                url, 50_000, settings.DATA_DIR / "bench-import-files"
            )
        self._out(f"Starting gunicorn ({WORKERS} workers) on 127.0.0.1:{opts['port']}")
        server = self._start_server(url, opts["port"], org["token"])
        try:
            results = scenarios.run(client, todo, self._out)
        finally:
            self._stop_server(server)
        result = {
            "db": connection.vendor,
            "date": started_at.strftime("%Y-%m-%d"),
            "started_at": started_at.isoformat(timespec="seconds"),
            "machine": {**self._machine(), "load_average_at_start": load},
            "sizes": {
                **sizes,
                "people": opts["people"],
                "companies": opts["companies"],
                "people_total": sizes["people"],
                "companies_total": sizes["companies"],
                "deals": opts["deals"],
                "interactions": opts["interactions"],
                "tasks": opts["tasks"],
            },
            "groups": sorted(groups),
            "requests": n,
            "workers": WORKERS,
            "generate": gen_stats,
            "scenarios": results,
            "imports": imports,
        }
        path = report.write_json(result)
        self._out("")
        self._out(report.table(result))
        self._out(f"\nResults: {path}")
        if opts["write_readme"]:
            report.update_readme(result)
            self._out(f"Table written to {report.README}")
