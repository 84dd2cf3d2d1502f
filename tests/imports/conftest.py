"""Fixtures of the import tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The header of the people files these tests write (Russian, as users' exports are).
HEADER = ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "ИНН", "Город", "Комментарий"]


@pytest.fixture
def import_csv() -> Callable[..., Any]:
    """``import_csv(actor, folder, rows, **config)``: write ``rows`` under the people header
    as a ";" CSV in ``folder``, create the run (default region RU), configure it with
    ``config`` if any, execute it; the finished run."""
    from rapport.imports import services

    def run_file(actor: Any, folder: Path, rows: list[list[str]], **config: Any) -> Any:
        path = folder / "people.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter=";").writerows([HEADER, *rows])
        run = services.run_create(
            actor=actor, source=path, file_name=path.name, target="people", default_region="RU"
        )
        if config:
            run = services.run_configure(actor=actor, run=run, **config)
        return services.run_execute(run.pk, actor=actor)

    return run_file
