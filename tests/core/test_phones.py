"""Phone normalisation: the numbers people type in spreadsheets come out as E.164."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.core.phones import (
    ParsedPhone,
    parse_phone,
    parse_phones,
    phone_digits,
    search_phone_variants,
    split_phone_field,
    timezone_for_phone,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "import-corpus"
PHONE_COLUMN = 3


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


def test_every_corpus_phone_cell_gives_the_true_numbers_and_flags_the_junk() -> None:
    corpus = load_corpus()
    rows_ok = phones_expected = phones_matched = junk_expected = junk_flagged = 0
    failures: list[str] = []
    for truth, row in corpus:
        cell = row[PHONE_COLUMN]
        parsed = parse_phones(cell, default_region=truth["default_region"])
        expected = _split_truth(truth["phones_e164"])
        junk = _split_truth(truth["invalid_phone_tokens"])
        valid = [p.e164 for p in parsed if p.valid]
        invalid = [p.raw for p in parsed if not p.valid]
        phones_expected += len(expected)
        phones_matched += sum(1 for e, g in zip(expected, valid, strict=False) if e == g)
        junk_expected += len(junk)
        junk_flagged += sum(1 for token in junk if token in invalid)
        if valid == expected and invalid == junk:
            rows_ok += 1
        else:
            failures.append(f"{truth['file']}:{truth['row']} {cell!r} -> {valid} {invalid}")
    summary = (
        f"rows {rows_ok}/{len(corpus)}, phones {phones_matched}/{phones_expected}, "
        f"junk flagged {junk_flagged}/{junk_expected}"
    )
    assert not failures, summary + "\n" + "\n".join(failures[:20])


# ------------------------------------------------------------ formats people type


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("8 (912) 341-96-15", "RU", "+79123419615"),
        ("89125446939", "RU", "+79125446939"),
        ("+7 (912) 9854235", "RU", "+79129854235"),
        ("79123456789", "RU", "+79123456789"),
        ("79123456789", "IT", "+79123456789"),
        ("9129823981", "RU", "+79129823981"),
        ("8 (050) 123-45-67", "AZ", "+994501234567"),
        ("8 050 123 45 67", "AZ", "+994501234567"),
        ("(012) 340 72 08", "AZ", "+994123407208"),
        ("994501234567", "AZ", "+994501234567"),
        ("00994401770643", "AZ", "+994401770643"),
        ("0073013424704", "AZ", "+73013424704"),
        ("00 39 312 378 1842", "RU", "+393123781842"),
        ("3121394669", "IT", "+393121394669"),
        ("02 1696 9225", "IT", "+390216969225"),
        ("(201) 688-6127", "US", "+12016886127"),
        ("+1-201-858-1724", "RU", "+12018581724"),
        ("0512580504", "SA", "+966512580504"),
        ("+٩٦٦ ٥١ ٢٩٥ ٦٠٣٦", "SA", "+966512956036"),
        ("٠٠٩٦٦٥١٢٨٥٤٩٠٠", "SA", "+966512854900"),
        ("۰۵۱۲۵۸۰۵۰۴", "SA", "+966512580504"),
        ("\u200f+966 11 228 8493\u200f", "SA", "+966112288493"),
    ],
)
def test_numbers_in_national_and_international_form_become_e164(
    raw: str, region: str, e164: str
) -> None:
    parsed = parse_phone(raw, default_region=region)
    assert parsed.valid, parsed
    assert parsed.e164 == e164
    assert parsed.raw == raw.strip()


@pytest.mark.parametrize(
    ("raw", "e164", "extension"),
    [
        ("+7 495 123-45-67 доб. 123", "+74951234567", "123"),
        ("+7 495 123-45-67, доб 45", "+74951234567", "45"),
        ("8 495 123-45-67 вн. 7", "+74951234567", "7"),
        ("+1 201-555-0123 ext. 42", "+12015550123", "42"),
        ("(201) 555-0123 ext 42", "+12015550123", "42"),
        ("+1 201-555-0123 x42", "+12015550123", "42"),
        ("+1 201-555-0123 #42", "+12015550123", "42"),
        ("+39 02 1234 5678 int. 21", "+390212345678", "21"),
        ("+39 02 1234 5678 interno 21", "+390212345678", "21"),
    ],
)
def test_extensions_are_kept_apart_from_the_number(raw: str, e164: str, extension: str) -> None:
    region = {"+7": "RU", "+1": "US", "+3": "IT"}[e164[:2]]
    parsed = parse_phone(raw, default_region=region)
    assert parsed.valid, parsed
    assert (parsed.e164, parsed.extension) == (e164, extension)


def test_an_extension_stays_with_its_number_when_splitting() -> None:
    assert split_phone_field("+7 495 123-45-67 доб. 123") == ["+7 495 123-45-67 доб. 123"]


@pytest.mark.parametrize(
    "junk",
    ["нет", "n/a", "N/A", "123", "-", "yok", "nessuno", "لا يوجد", "уточнить", "0000000", "+7 000"],
)
def test_junk_is_flagged_invalid_and_kept_as_typed(junk: str) -> None:
    for region in ("RU", "AZ", "IT", "SA", "US"):
        parsed = parse_phone(junk, default_region=region)
        assert parsed == ParsedPhone(raw=junk, e164=None, extension="", valid=False, region=None)


@pytest.mark.parametrize(
    ("cell", "tokens"),
    [
        ("+79123810747, 8(301)232-78-79", ["+79123810747", "8(301)232-78-79"]),
        ("0401890880; 0123917978", ["0401890880", "0123917978"]),
        ("3125027680 / +39 02 1698 8173 / 123", ["3125027680", "+39 02 1698 8173", "123"]),
        ("8 (912) 204-55-66\n+7 (301) 2192375", ["8 (912) 204-55-66", "+7 (301) 2192375"]),
        ("051 204 4261 / нет", ["051 204 4261", "нет"]),
        ("+1-201-858-1724, -", ["+1-201-858-1724", "-"]),
        ("n/a", ["n/a"]),
        (
            "+7 495 123-45-67, доб. 12; 8 912 000 00 00",
            ["+7 495 123-45-67 доб. 12", "8 912 000 00 00"],
        ),
        ("+7 912 123 45 67 or +7 912 765 43 21", ["+7 912 123 45 67", "+7 912 765 43 21"]),
        ("89121234567   89127654321", ["89121234567", "89127654321"]),
        ("8 (912)  341-96-15", ["8 (912) 341-96-15"]),
        ("", []),
        (" ;, ", []),
    ],
)
def test_a_cell_with_several_numbers_is_split_without_losing_anything(
    cell: str, tokens: list[str]
) -> None:
    assert split_phone_field(cell) == tokens


def test_parse_phones_keeps_the_order_of_the_cell() -> None:
    parsed = parse_phones("89125844689 / нет / 83014303765", default_region="RU")
    assert [(p.e164, p.valid) for p in parsed] == [
        ("+79125844689", True),
        (None, False),
        ("+73014303765", True),
    ]
    assert parsed[1].raw == "нет"
    assert parsed[0].region == "RU"


def test_region_is_that_of_the_number_not_the_default() -> None:
    assert parse_phone("+994401890880", default_region="RU").region == "AZ"


def test_phone_digits_reads_arabic_indic_and_eastern_arabic_digits() -> None:
    assert phone_digits("+٩٦٦ ٥١ ٢٩٥") == "96651295"
    assert phone_digits("۰۵۱-۲") == "0512"
    assert phone_digits("tel: (012) 34") == "01234"
    assert phone_digits("") == ""


def test_timezone_for_phone() -> None:
    assert timezone_for_phone("+74951234567") == "Europe/Moscow"
    assert timezone_for_phone("+994123407208") == "Asia/Baku"
    assert timezone_for_phone("garbage") is None
    assert timezone_for_phone("+80012345678") is None


def test_search_variants_match_a_stored_number_however_typed() -> None:
    assert search_phone_variants("8 (912) 341-96-15", default_region="RU") == [
        "79123419615",
        "89123419615",
        "9123419615",
    ]
    assert search_phone_variants("+7 912 341 96 15", default_region="RU") == ["79123419615"]
    assert search_phone_variants("341-96", default_region="RU") == ["34196"]
    assert search_phone_variants("нет", default_region="RU") == []


# ------------------------------------------------------------------- robustness


@settings(max_examples=300, deadline=None)
@given(text=st.text(), region=st.sampled_from(["RU", "AZ", "IT", "SA", "US", "ZZ", "", "xx"]))
def test_parse_phones_never_raises(text: str, region: str) -> None:
    for parsed in parse_phones(text, default_region=region):
        assert parsed.raw
        assert parsed.valid == (parsed.e164 is not None)
    search_phone_variants(text, default_region=region)
    phone_digits(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("0123456789٠١٢٣+-() ,;/\nxext.доб"), max_size=60))
def test_splitting_never_drops_a_non_empty_token(text: str) -> None:
    tokens = split_phone_field(text)
    assert all(t and t == t.strip() for t in tokens)
    assert phone_digits("".join(tokens)) == phone_digits(text)


@pytest.mark.parametrize(
    ("number", "zone"),
    [
        ("+74951234567", "Europe/Moscow"),  # a Moscow landline pins its zone
        ("+73432123456", "Asia/Yekaterinburg"),  # so does a Yekaterinburg one
        ("+79161234567", "Europe/Moscow"),  # a Russian mobile: the country's main zone
        ("+77011234567", "Asia/Almaty"),  # a Kazakh mobile shares +7 but not Moscow time
        ("+994501234567", "Asia/Baku"),
        ("+390612345678", "Europe/Rome"),
    ],
)
def test_a_contacts_time_zone_follows_the_number_not_the_alphabet(number, zone):
    assert timezone_for_phone(number) == zone


def test_an_unknown_number_gives_no_time_zone():
    assert timezone_for_phone("not a number") is None
