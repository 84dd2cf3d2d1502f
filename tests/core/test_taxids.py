"""Tax ids: INN, partita IVA and VÖEN come out as digits, checked where a checksum exists."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.core.taxids import TaxIdResult, guess_tax_country, normalize_tax_id

CORPUS = Path(__file__).resolve().parents[1] / "data" / "import-corpus"
COLUMN = 5


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


def test_every_corpus_tax_id_normalises_to_the_true_digits() -> None:
    corpus = load_corpus()
    failures: list[str] = []
    checked = 0
    for truth, row in corpus:
        cell = row[COLUMN]
        if not truth["tax_id"]:
            assert normalize_tax_id(cell, country=None).error_code == "empty"
            continue
        checked += 1
        for country in (None, truth["default_region"]):
            result = normalize_tax_id(cell, country=country)
            if result.normalized != truth["tax_id"]:
                failures.append(f"{truth['file']}:{truth['row']} {cell!r} {country} -> {result}")
        # The generator writes "ИНН ..." only before Russian ids and "IT..." only before
        # Italian ones; those must pass the official checksums.  Bare 10-digit ids belong
        # to companies of every country, so their checksum is not asserted.
        if cell.strip().upper().startswith("ИНН"):
            assert normalize_tax_id(cell, country="RU").valid, cell
        if cell.strip().upper().startswith("IT") or len(truth["tax_id"]) == 11:
            assert normalize_tax_id(cell, country="IT").valid, cell
            assert guess_tax_country(cell) == "IT"
    assert checked > 0
    assert not failures, "\n".join(failures[:20])


# --------------------------------------------------------------------- Russia


@pytest.mark.parametrize(
    "raw",
    ["7707083893", "7736207543", "ИНН 7707083893", "7707 083893", "RU7707083893",
     "500100732259", "ИНН: 500100732259"],
)  # fmt: skip
def test_real_inns_pass(raw: str) -> None:
    result = normalize_tax_id(raw, country="RU")
    assert result.valid
    assert result.error_code is None
    assert result.normalized.isdigit()
    assert guess_tax_country(raw) == "RU"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("7707083894", "checksum"),
        ("500100732258", "checksum"),
        ("770708389", "length"),
        ("77070838931", "length"),
        ("77070A3893", "not_digits"),
        ("", "empty"),
        ("  ", "empty"),
    ],
)
def test_wrong_inns_are_rejected_with_a_reason(raw: str, error: str) -> None:
    result = normalize_tax_id(raw, country="RU")
    assert not result.valid
    assert result.error_code == error


# ---------------------------------------------------------------------- Italy


@pytest.mark.parametrize(
    "raw", ["00743110157", "IT00743110157", "IT 00743110157", "P.IVA 00743110157", "0074311015 7"]
)
def test_real_partita_iva_passes(raw: str) -> None:
    assert normalize_tax_id(raw, country="IT") == TaxIdResult("00743110157", True, None)
    assert guess_tax_country(raw) == "IT"


def test_partita_iva_with_a_wrong_check_digit_is_rejected() -> None:
    assert normalize_tax_id("00743110158", country="IT").error_code == "checksum"
    assert normalize_tax_id("0074311015", country="IT").error_code == "length"


# ------------------------------------------------------- Azerbaijan and others


def test_voen_is_ten_digits() -> None:
    assert normalize_tax_id("VÖEN 1400057421", country="AZ") == TaxIdResult(
        "1400057421", True, None
    )
    assert normalize_tax_id("140005742", country="AZ").error_code == "length"


def test_other_countries_accept_any_reasonable_digits() -> None:
    assert normalize_tax_id("12-3456789", country="US") == TaxIdResult("123456789", True, None)
    assert normalize_tax_id("1234", country="US").error_code == "length"
    assert normalize_tax_id("3327 395021", country=None) == TaxIdResult("3327395021", True, None)
    assert normalize_tax_id("٣٣٢٧٣٩٥٠٢١", country="SA").normalized == "3327395021"


def test_guess_tax_country() -> None:
    assert guess_tax_country("7707083893") == "RU"
    assert guess_tax_country("00743110157") == "IT"
    assert guess_tax_country("7707083894") is None
    assert guess_tax_country("") is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(), country=st.sampled_from([None, "RU", "IT", "AZ", "US", "", "xx"]))
def test_normalize_tax_id_never_raises(text: str, country: str | None) -> None:
    result = normalize_tax_id(text, country=country)
    assert result.valid == (result.error_code is None)
    assert result.error_code in {None, "empty", "not_digits", "length", "checksum"}
    guess_tax_country(text)
