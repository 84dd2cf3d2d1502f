"""R4: a worker killed with SIGKILL mid-import leaves a resumable run, never a "done" one
with rows missing; resuming ends with exactly the file's rows and no duplicates; undo then
restores the base exactly. Real processes and a real SQLite file, no mocks."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROWS = 1_500  # two chunks of 1,000: the kill lands between the two commits


def _query(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_killed_import_resumes_to_exactly_the_files_rows_and_undo_restores_the_base(
    rapport_cli, sqlite_cli_env, tmp_path
):
    env, db = sqlite_cli_env(IMPORT_STALE_SECONDS="0")
    assert rapport_cli(env, "migrate", "-v0").returncode == 0
    assert rapport_cli(env, "createadmin").returncode == 0
    source = tmp_path / "clients.csv"
    lines = ["ФИО;Телефон;E-mail"] + [
        f"Клиентов{i} Клиент;+7 912 {i:03d}-{i % 100:02d}-{(i * 7) % 100:02d};c{i}@example.com"
        for i in range(ROWS)
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "rapport.cli", "import", str(source), "--default-region", "RU"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        rows = _query(db, "SELECT rows_done FROM imports_importrun") if db.exists() else []
        done = int(rows[0][0]) if rows and rows[0][0] else 0  # type: ignore[call-overload]
        if done > 0:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    ((run_id, status, committed),) = _query(
        db, "SELECT id, status, rows_done FROM imports_importrun"
    )
    assert status == "running"
    assert 0 < int(committed) < ROWS  # type: ignore[call-overload]
    people = _query(db, "SELECT COUNT(*) FROM parties_person")[0][0]
    report = _query(db, "SELECT COUNT(*) FROM imports_importrow WHERE run_id = ?", run_id)[0][0]
    assert people == report == committed  # what is committed is whole: records and report

    resumed = rapport_cli(env, "import", "--resume", str(run_id))
    assert resumed.returncode == 0, resumed.stderr
    assert _query(db, "SELECT status, rows_done FROM imports_importrun") == [("done", ROWS)]
    assert _query(
        db, "SELECT COUNT(*), COUNT(DISTINCT first_name || ' ' || last_name) FROM parties_person"
    ) == [(ROWS, ROWS)]
    assert _query(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT row_number) FROM imports_importrow WHERE run_id = ?",
        run_id,
    ) == [(ROWS, ROWS)]
    emails = _query(
        db, "SELECT COUNT(DISTINCT value) FROM parties_contactpoint WHERE channel='email'"
    )
    assert emails == [(ROWS,)]

    undone = rapport_cli(env, "import", "--undo", str(run_id))
    assert undone.returncode == 0, undone.stderr
    assert _query(db, "SELECT COUNT(*) FROM parties_person") == [(0,)]
    assert _query(db, "SELECT COUNT(*) FROM parties_contactpoint") == [(0,)]
    assert _query(db, "SELECT COUNT(*) FROM core_searchdocument") == [(0,)]
