"""Results: a JSON file per run, a printed table, the table in bench/README.md."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
DB_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _extra(result: dict[str, Any]) -> str:
    """'-500k-deals-5m-interactions-1m-tasks' when the run generated more than people."""
    s = result["sizes"]
    parts = [f"-{_size(int(s[k]))}-{k}" for k in ("deals", "interactions", "tasks") if s.get(k)]
    return "".join(parts)


def _key(result: dict[str, Any]) -> str:
    """The README section: one per database, and one per database for the sales runs."""
    return result["db"] + ("-sales" if _extra(result) else "")


def write_json(result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = (
        f"{result['db']}-{result['date']}-{_size(result['sizes']['people'])}{_extra(result)}.json"
    )
    path = RESULTS_DIR / name
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return path


def _ms(block: dict[str, Any] | None, key: str) -> str:
    if not block or key not in block:
        return "–"
    return f"{block[key]:.1f}"


def table(result: dict[str, Any]) -> str:
    rows = [
        "| scenario | target p95 | HTTP p50 | HTTP p95 | HTTP mean | SQL p50 | SQL p95 "
        "| ratio p95 | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for sc in result["scenarios"]:
        http, sql = sc.get("http"), sc.get("sql")
        ratio = f"×{sc['ratio']}" if sc.get("ratio") is not None else "–"
        status = sc["status"]
        if sc.get("statuses") and (sc.get("show_statuses") or sc["key"] == "create_person"):
            status += " (" + ", ".join(f"{k}: {v}" for k, v in sc["statuses"].items()) + ")"
        rows.append(
            f"| {sc['title']} | {sc['target_p95_ms']:.0f} ms | {_ms(http, 'p50')} | "
            f"{_ms(http, 'p95')} | {_ms(http, 'mean')} | {_ms(sql, 'p50')} | {_ms(sql, 'p95')} | "
            f"{ratio} | {status} |"
        )
    return "\n".join(rows)


def section(result: dict[str, Any]) -> str:
    s, g, m = result["sizes"], result.get("generate") or {}, result["machine"]
    gen = (
        f"generated in {g['seconds']:,.0f} s ({g['rows_per_second']:,} rows/s)"
        if g.get("seconds")
        else "data reused"
    )
    key = _key(result)
    title = f"{DB_LABEL.get(result['db'], result['db'])} {m.get('db_version', '')}".rstrip()
    more = ""
    if key.endswith("-sales"):
        title += ": sales and activities"
        more = (
            f", {s.get('deals_total', 0):,} deals, {s.get('stage_changes', 0):,} stage changes, "
            f"{s.get('interactions_total', 0):,} interactions, {s.get('tasks_total', 0):,} tasks"
        )
        if g.get("more_seconds"):
            gen = (
                f"{'generated' if g.get('seconds') else 'people reused, the rest generated'} "
                f"(deals and activities: {g['more_seconds']:,.0f} s, "
                f"{g['more_rows_per_second']:,} rows/s)"
            )
    return "\n".join(
        [
            f"<!-- bench:{key}:start -->",
            f"### {title}",
            "",
            f"{result['date']}, {m['cpus']} cores, {m['platform']}, Python {m['python']}; "
            f"{s['people']:,} people, {s['companies']:,} companies, "
            f"{s.get('contact_points', 0):,} contact points{more}; {gen}; "
            f"load average at start {m.get('load_average_at_start')}; "
            f"{result['requests']} requests per scenario, "
            f"gunicorn with {result['workers']} workers.",
            "",
            table(result),
            f"<!-- bench:{key}:end -->",
        ]
    )


def update_readme(result: dict[str, Any], readme: Path = README) -> None:
    """Replace this database's section between the markers; keep the other's."""
    text = readme.read_text() if readme.exists() else f"# Benchmark\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n## Results\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    block, tail = rest.split(END, 1)
    found = re.findall(r"(<!-- bench:([\w-]+):start -->.*?<!-- bench:\2:end -->)", block, re.S)
    sections = {db: full for full, db in found}
    sections[_key(result)] = section(result)
    ordered = [sections[k] for k in ("sqlite", "postgresql") if k in sections]
    ordered += [v for k, v in sections.items() if k not in ("sqlite", "postgresql")]
    readme.write_text(head + START + "\n" + "\n\n".join(ordered) + "\n" + END + tail)
