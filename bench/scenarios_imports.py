"""Import, preview, duplicate finder and export at scale, each with a raw baseline.

Run inside a process whose ``DATABASE_URL`` is a bench database that holds the generated
people (``rapport bench`` makes it). Every measurement runs in its own child process, so
its peak memory (``VmHWM`` of /proc/self/status) is its own:

    DATABASE_URL=sqlite:////work/main/var/bench-imports.sqlite3 \\
        .venv/bin/python -m bench.scenarios_imports --rows 50000 --out var/imports-bench.json

Imports write into the base: the runner works on a copy (SQLite: a copy of the file;
PostgreSQL: ``CREATE DATABASE rapport_bench_…_work TEMPLATE …``), dropped afterwards, so
the base stays reusable.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

HEADER = ["Last name", "First name", "Middle name", "Phone", "Email", "Company", "Tax ID",
          "Position", "City"]  # fmt: skip
POSITIONS = ("Director", "Manager", "Accountant", "Engineer", "Buyer", "Lawyer", "")


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapport.settings")
    import django

    django.setup()


def vm_hwm_mb() -> float:
    """Peak resident memory of this process (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


# --------------------------------------------------------------------------- the file


def people_rows(n: int, seed: int = 7) -> list[list[str]]:
    """``n`` rows: 85 % new people, 10 % people of the base (their email, a new phone:
    an update), 5 % repeating an earlier row with another phone (merged); half with a
    company, 40 % of those a company of the base (by name and tax id)."""
    from django.db import connection

    from bench.generate import (
        CITIES,
        COMPANY_WORDS,
        COUNTRY,
        LEGAL_FORM,
        LOCALE_WEIGHTS,
        LOCALES,
        new_surname,
        person_name,
        phone,
        tax_id,
    )

    rng = random.Random(seed)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT p.last_name, p.first_name, p.middle_name, c.value FROM parties_person p "
            "JOIN parties_contactpoint c ON c.person_id = p.id AND c.channel = 'email' "
            "WHERE p.id %% 97 = 3 ORDER BY p.id LIMIT %s",
            [n],
        )
        people = cur.fetchall()
        cur.execute(
            # Russian companies: the file's default region is RU, whose tax ids are checked
            "SELECT short_name, tax_id FROM parties_company WHERE legal_form = 'ООО' "
            "AND tax_id <> '' AND id %% 13 = 5 "
            "ORDER BY id LIMIT %s",
            [max(1, n // 10)],
        )
        companies = cur.fetchall()
    new_companies: list[tuple[str, str]] = []
    for i in range(max(1, n // 20)):
        locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
        words = COMPANY_WORDS[locale]
        name = f"{rng.choice(words)} {new_surname(rng)} {i} {LEGAL_FORM[locale]}"
        new_companies.append((name, tax_id(rng, "RU") if locale == "ru" else ""))
    rows: list[list[str]] = []
    for i in range(n):
        locale = rng.choices(LOCALES, LOCALE_WEIGHTS)[0]
        kind = rng.random()
        _e164, raw_phone = phone(rng, COUNTRY[locale])
        if kind < 0.05 and rows:
            row = list(rng.choice(rows))
            row[3] = raw_phone
            rows.append(row)
            continue
        if kind < 0.15 and people:
            last, first, middle, email = people[rng.randrange(len(people))]
        else:
            first, _l, middle = person_name(rng, locale)
            last = new_surname(rng)
            email = f"{first.lower()}.{last.lower()}.{i}@import{seed}.example"
        company, tax = "", ""
        if rng.random() < 0.5:
            company, tax = (
                companies[rng.randrange(len(companies))]
                if companies and rng.random() < 0.4
                else rng.choice(new_companies)
            )
        rows.append(
            [
                last,
                first,
                middle,
                raw_phone,
                email,
                company,
                tax,
                rng.choice(POSITIONS),
                rng.choice(CITIES[locale]),
            ]  # fmt: skip
        )
    return rows


def write_file(path: Path, rows: list[list[str]]) -> None:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(rows)
        return
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("People")
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    wb.save(path)


# --------------------------------------------------------------------------- measurements


def _admin() -> Any:
    from bench.generate import BENCH_USER
    from rapport.accounts.models import User

    return User.objects.get(username=BENCH_USER)


def measure(what: str, path: Path) -> dict[str, Any]:
    """One measurement in this process: rows, seconds, rows/s, peak memory."""
    _setup()
    from django.db import transaction

    from rapport.imports import services
    from rapport.imports.readers import iter_rows, sniff

    actor = _admin()
    started = time.perf_counter()
    out: dict[str, Any] = {"what": what, "file": path.name}
    if what == "read":  # the file alone
        info = sniff(path, path.name)
        n = sum(1 for _row in iter_rows(path, info, info.sheets[0] if info.sheets else ""))
        out["rows"] = n - 1
    elif what == "insert":  # read + a raw bulk insert of the same rows (rolled back per chunk)
        from rapport.parties.models import ContactPoint, Person

        info = sniff(path, path.name)
        chunk: list[list[str]] = []
        n = 0

        def write(rows: list[list[str]]) -> None:
            with transaction.atomic():
                people = Person.objects.bulk_create(
                    [Person(last_name=r[0], first_name=r[1], middle_name=r[2]) for r in rows]
                )
                ContactPoint.objects.bulk_create(
                    [
                        ContactPoint(person=p, channel=ch, raw=v, value=v)
                        for p, r in zip(people, rows, strict=True)
                        for ch, v in (("phone", r[3]), ("email", r[4]))
                    ]
                )
                transaction.set_rollback(True)

        for i, row in enumerate(iter_rows(path, info, info.sheets[0] if info.sheets else "")):
            if i == 0:
                continue
            chunk.append(row)
            n += 1
            if len(chunk) >= services.CHUNK_ROWS:
                write(chunk)
                chunk = []
        if chunk:
            write(chunk)
        out["rows"] = n
    elif what in ("import", "preview"):
        run = services.run_create(
            actor=actor, source=path, file_name=path.name, target="people", default_region="RU"
        )
        out["mapping"] = run.mapping
        t0 = time.perf_counter()
        if what == "preview":
            preview = services.run_preview(actor=actor, run=run)
            out["rows"] = preview.total
            out["tried"] = preview.tried
            out["counts"] = preview.counts
        else:
            # ~0.25 % of the generated rows carry a tax id the RU check refuses: imported
            # as "valid rows only" (those rows are reported as errors).
            services.run_configure(actor=actor, run=run, valid_rows_only=True)
            run = services.run_execute(run.pk, actor=actor)
            out["rows"] = run.total_rows
            out["status"] = run.status
            out["counts"] = run.counts
        out["seconds_after_create"] = round(time.perf_counter() - t0, 2)
        if what == "import":  # then undo it (R14: undo restores the base); timed on its own
            out["peak_mb_import"] = vm_hwm_mb()  # the import's own peak, before the undo's
            t1 = time.perf_counter()
            undone = services.run_undo(actor=actor, run=run)
            out["undo"] = {
                "seconds": round(time.perf_counter() - t1, 2),
                "removed": undone.removed,
                "restored": undone.restored,
                "kept": len(undone.kept),
            }
            started += time.perf_counter() - t1  # not part of the import's rate
    elif what == "finder":
        from rapport.dedupe import finder

        out["pairs"] = finder.scan("person")
        from rapport.parties.models import Person

        out["rows"] = Person.objects.count()
    elif what in ("export-csv", "export-xlsx"):
        from rapport.core.exports import csv_chunks, write_xlsx
        from rapport.parties import selectors
        from rapport.parties.views import person_export_table

        qs = selectors.person_list(
            user=actor, filters=selectors.ListFilters(), action="export"
        ).order_by("id")[:100_000]
        header, rows = person_export_table(qs)
        target = Path(tempfile.gettempdir()) / f"bench-export.{what[7:]}"
        if what == "export-csv":
            with target.open("wb") as fh:
                for block in csv_chunks(header, rows):
                    fh.write(block)
        else:
            with target.open("wb") as fh:
                write_xlsx(header, rows, fh, title="People")
        out["rows"] = 100_000
        out["bytes"] = target.stat().st_size
        target.unlink()
    seconds = time.perf_counter() - started
    out["seconds"] = round(seconds, 2)
    out["rows_per_second"] = round(out["rows"] / seconds) if seconds else None
    out["peak_mb"] = vm_hwm_mb()
    return out


# --------------------------------------------------------------------------- the runner


def _child(url: str, what: str, path: Path, timeout: int) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url, "OUTBOX_NUDGE": "0"}
    proc = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.scenarios_imports", "--measure", what, "--file", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode:
        return {"what": what, "file": path.name, "error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _copy_db(url: str) -> str:
    """A working copy of the bench database (imports and the finder write)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        src = Path(parsed.path[1:])
        dst = src.with_name(src.stem + "-work.sqlite3")
        for suffix in ("-wal", "-shm"):
            Path(f"{dst}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(src, dst)
        return f"sqlite:///{dst}"
    import psycopg
    from django.db import connections

    connections.close_all()  # a template database must have no other session
    name = parsed.path.lstrip("/")
    work = f"{name}_work"
    admin = urlunparse(parsed._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{work}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{work}" TEMPLATE "{name}"')
    return urlunparse(parsed._replace(path="/" + work))


def _drop_copy(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{parsed.path[1:]}{suffix}").unlink(missing_ok=True)  # the copy only
        return
    import psycopg

    admin = urlunparse(parsed._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def run_all(url: str, rows: int, workdir: Path, only: set[str] | None = None) -> dict[str, Any]:
    """Every scenario on ``url`` (the base is left as it was); returns the figures."""
    _setup()
    workdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    t0 = time.perf_counter()
    data = people_rows(rows)
    for ext in ("csv", "xlsx"):
        files[ext] = workdir / f"people-{rows}.{ext}"
        write_file(files[ext], data)
    result: dict[str, Any] = {
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "file_seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
        "figures": [],
    }
    todo = [
        ("read", "csv"), ("insert", "csv"), ("read", "xlsx"), ("insert", "xlsx"),
        ("preview", "xlsx"), ("import", "csv"), ("import", "xlsx"),
        ("export-csv", "csv"), ("export-xlsx", "csv"), ("finder", "csv"),
    ]  # fmt: skip
    for what, ext in todo:
        if only and what not in only:
            continue
        target = url
        if what in ("import", "finder"):
            target = _copy_db(url)
        try:
            fig = _child(target, what, files[ext], timeout=3600)
        finally:
            if target != url:
                _drop_copy(target)
        fig["load_average"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(fig), flush=True)  # noqa: T201 - the runner's progress
        result["figures"].append(fig)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--measure", default="")
    parser.add_argument("--file", default="")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--only", default="")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.file))))  # noqa: T201
        return
    url = os.environ["DATABASE_URL"]
    only = {w.strip() for w in args.only.split(",") if w.strip()} or None
    workdir = Path(tempfile.gettempdir()) / "rapport-imports"
    result = run_all(url, args.rows, workdir, only)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
