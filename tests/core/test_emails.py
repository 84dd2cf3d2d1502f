"""Email normalisation: what people paste into the email column comes out clean."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.core.emails import ParsedEmail, normalize_email, split_email_field

CORPUS = Path(__file__).resolve().parents[1] / "data" / "import-corpus"
COLUMN = 4


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _read_rows(name: str, spec: dict[str, object]) -> list[list[str]]:
    path = CORPUS / name
    header_row = int(str(spec["header_row"]))
    if name.endswith(".xlsx"):
        calamine = pytest.importorskip("python_calamine")
        sheet = calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0)
        data = [[_cell(c) for c in row] for row in sheet.to_python(skip_empty_area=False)]
    else:
        with path.open(encoding=str(spec["encoding"]), newline="") as handle:
            data = list(csv.reader(handle, delimiter=str(spec["delimiter"])))
    return data[header_row:]


def load_corpus() -> list[tuple[dict[str, str], list[str]]]:
    """(truth line, data row) pairs for every data row of the import corpus."""
    if not (CORPUS / "truth.csv").is_file():
        pytest.fail(f"import corpus not found at {CORPUS}")
    meta = json.loads((CORPUS / "corpus.json").read_text(encoding="utf-8"))
    rows = {name: _read_rows(name, spec) for name, spec in meta["files"].items()}
    with (CORPUS / "truth.csv").open(encoding="utf-8", newline="") as handle:
        truth = list(csv.DictReader(handle))
    return [(line, rows[line["file"]][int(line["row"]) - 1]) for line in truth]


def _split_truth(value: str) -> list[str]:
    return [part for part in value.split("|") if part]


# ------------------------------------------------------------------ the corpus


def test_every_corpus_email_normalises_to_the_truth() -> None:
    corpus = load_corpus()
    failures: list[str] = []
    for truth, row in corpus:
        cell = row[COLUMN]
        if not cell.strip():
            assert truth["email"] == ""
            continue
        parsed = normalize_email(cell)
        if parsed.normalized != truth["email"] or not parsed.valid:
            failures.append(f"{truth['file']}:{truth['row']} {cell!r} -> {parsed}")
    assert not failures, f"{len(failures)} of {len(corpus)} rows differ:\n" + "\n".join(
        failures[:20]
    )


# ------------------------------------------------------------ what people type


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (" ivan.petrov@MAIL.RU ", "ivan.petrov@mail.ru"),
        ("Ivan.Petrov@Gmail.Com", "ivan.petrov@gmail.com"),
        ("mailto:info@example.com", "info@example.com"),
        ("MAILTO:Info@Example.com?subject=Hi", "info@example.com"),
        ("<sales@example.it>", "sales@example.it"),
        ("Ivan Petrov <Ivan@Example.com>", "ivan@example.com"),
        ("user+tag@sub.example.co.uk", "user+tag@sub.example.co.uk"),
        ("почта@пример.рф", "почта@пример.рф"),
        ("info@bücher.de", "info@bücher.de"),
        ("info@xn--e1afmkfd.xn--p1ai", "info@xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_valid_addresses_are_trimmed_and_lowercased(raw: str, normalized: str) -> None:
    parsed = normalize_email(raw)
    assert parsed == ParsedEmail(raw=raw.strip(), normalized=normalized, valid=True)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "нет",
        "n/a",
        "ivan.petrov",
        "ivan@",
        "@mail.ru",
        "ivan@mail",
        "ivan@@mail.ru",
        "ivan petrov@mail.ru",
        "ivan..petrov@mail.ru",
        ".ivan@mail.ru",
        "ivan@-mail.ru",
        "ivan@mail..ru",
        "ivan@mail.r",
        "a@b.c1",
    ],
)
def test_invalid_addresses_are_flagged(raw: str) -> None:
    parsed = normalize_email(raw)
    assert not parsed.valid
    assert parsed.raw == raw.strip()


@pytest.mark.parametrize(
    ("cell", "parts"),
    [
        ("a@x.ru, b@y.com", ["a@x.ru", "b@y.com"]),
        ("a@x.ru; b@y.com\nc@z.it", ["a@x.ru", "b@y.com", "c@z.it"]),
        ("a@x.ru b@y.com", ["a@x.ru", "b@y.com"]),
        ("Ivan Petrov <ivan@x.ru>", ["Ivan Petrov <ivan@x.ru>"]),
        ("нет", ["нет"]),
        ("  ", []),
        ("", []),
    ],
)
def test_a_cell_with_several_addresses_is_split(cell: str, parts: list[str]) -> None:
    assert split_email_field(cell) == parts


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_normalize_email_never_raises(text: str) -> None:
    parsed = normalize_email(text)
    assert parsed.normalized == parsed.normalized.lower() or not parsed.valid
    for part in split_email_field(text):
        normalize_email(part)
