"""Exports of every list to CSV and XLSX: scoped, filtered, typed, and never a live formula.

A manager downloads a list and opens it in a spreadsheet program. Whatever users typed into the
CRM — a company called ``=HYPERLINK(...)``, a phone ``+7 ...``, an Arabic name — must arrive as
text, never as a formula, in both formats; and the download holds exactly the rows the export
permission's scope and the list's filters allow.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import re
import tempfile
import tracemalloc
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.core import exports
from rapport.core.exports import csv_chunks, neutralise, write_xlsx

DANGEROUS = [
    "=1+1",
    '=HYPERLINK("http://evil.test","click")',
    "+7 912 111 22 33",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTabbed",
    "\rCarriage",
    "\nNew line",
    "＝1+1",
    "＋1",
    "－1",
    "＠SUM(A1)",
    "  =1+1",
    "#N/A",
]
SAFE = ["Acme", "Ромашка", "شركة النور", "a=b", "1+1", "user@example.test"]


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_cells(data: bytes) -> list[list[Any]]:
    """The sheet as openpyxl reads it, after checking no cell is a formula or an error."""
    from openpyxl import load_workbook

    sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert not re.search(r"<f[ >]", sheet_xml), "a formula cell was written"
    wb = load_workbook(io.BytesIO(data))
    ws = wb.worksheets[0]
    rows = []
    for row in ws.iter_rows():
        assert all(c.data_type not in ("f", "e") for c in row), [c.value for c in row]
        rows.append([c.value for c in row])
    return rows


def calamine_cells(data: bytes) -> list[list[Any]]:
    from python_calamine import CalamineWorkbook

    return CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()


def xlsx_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.BytesIO()
    write_xlsx(header, rows, out, title="Test")
    return out.getvalue()


# --- the neutraliser --------------------------------------------------------------------------


@pytest.mark.parametrize("text", DANGEROUS)
def test_csv_cells_that_a_spreadsheet_would_run_get_a_leading_apostrophe(text):
    rows = csv_rows(b"".join(csv_chunks(["Name"], [[text]])))
    expected = text if text == "#N/A" else "'" + text
    assert rows[1] == [expected]


@pytest.mark.parametrize("text", SAFE)
def test_ordinary_text_is_exported_unchanged(text):
    assert neutralise(text) == text
    assert csv_rows(b"".join(csv_chunks(["Name"], [[text]])))[1] == [text]
    assert xlsx_cells(xlsx_bytes(["Name"], [[text]]))[1] == [text]


def test_xlsx_keeps_dangerous_text_as_typed_in_string_cells_never_formulas():
    data = xlsx_bytes(["Name"], [[t] for t in DANGEROUS])
    assert [r[0] for r in xlsx_cells(data)[1:]] == DANGEROUS
    # calamine reads a formula cell as its (missing) cached value: equal text proves strings
    assert [r[0] for r in calamine_cells(data)[1:]] == DANGEROUS


def test_xlsx_marks_dangerous_text_so_editing_the_cell_keeps_it_text():
    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(xlsx_bytes(["Name"], [["=1+1"], ["Acme"]]))).worksheets[0]
    assert ws["A2"].quotePrefix is True
    assert not ws["A3"].quotePrefix


def test_numbers_dates_and_amounts_stay_typed_in_xlsx_and_unquoted_in_csv():
    when = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    row = [-5, decimal.Decimal("-1234.50"), 2.5, dt.date(2026, 1, 31), when, True, None]
    header = ["n", "amount", "f", "date", "at", "flag", "none"]
    cells = xlsx_cells(xlsx_bytes(header, [row]))[1]
    assert cells[0] == -5
    assert cells[1] == pytest.approx(-1234.5)
    assert cells[2] == 2.5
    assert cells[3].date() == dt.date(2026, 1, 31)
    assert cells[4] == when.replace(tzinfo=None)  # UTC is the test time zone
    assert cells[5] is True
    assert cells[6] is None
    text = csv_rows(b"".join(csv_chunks(header, [row])))[1]
    assert text[:5] == ["-5", "-1234.50", "2.5", "2026-01-31", "2026-03-01 09:30"]


def test_characters_xlsx_cannot_hold_are_dropped_instead_of_failing_the_export():
    cells = xlsx_cells(xlsx_bytes(["Name"], [["bell\x07 and nul\x00 inside"]]))
    assert cells[1] == ["bell and nul inside"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=5))
def test_any_text_arrives_as_text_in_both_formats(values):
    """0 formula cells for any text: CSV cells read back as typed (apostrophe only before a
    formula-like start); XLSX cells are strings equal to the text (minus characters XML
    cannot carry)."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    header = [f"c{i}" for i in range(len(values))]
    back = csv_rows(b"".join(csv_chunks(header, [values])))[1]
    for typed, got in zip(values, back, strict=True):
        typed = typed.replace("\r\n", "\n")
        got = got.replace("\r\n", "\n")
        if exports.is_formula_like(typed):
            assert got == "'" + typed
        else:
            assert got == typed
            assert not got or got.lstrip(" \u00a0\u3000")[:1] not in exports.FORMULA_PREFIXES
    data = xlsx_bytes(header, [values])
    cells = xlsx_cells(data)[1]
    expected = [ILLEGAL_CHARACTERS_RE.sub("", v) or None for v in values]
    assert [c if c != "" else None for c in cells] == expected[: len(cells)]


# --- memory -----------------------------------------------------------------------------------


def _generated(n: int) -> Iterator[list[Any]]:
    for i in range(n):
        yield [i, "=HYPERLINK(0)" if i % 7 == 0 else f"Иванов محمد {i}"]


def _peak_bytes(run: Any) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_100k_row_csv_export_keeps_memory_flat():
    sizes: list[int] = []
    peak = _peak_bytes(
        lambda: sizes.extend(len(c) for c in csv_chunks(["Id", "Name"], _generated(100_000)))
    )
    assert sum(sizes) > 2_000_000
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB for a {sum(sizes) / 1e6:.1f} MB file"


def test_a_100k_row_xlsx_export_keeps_memory_flat():
    """One column: openpyxl's per-cell cost under tracemalloc would make more slow to test."""
    rows = ([row[1]] for row in _generated(100_000))
    with tempfile.TemporaryFile() as fh:
        peak = _peak_bytes(lambda: write_xlsx(["Name"], rows, fh, title="People"))
        fh.seek(0)
        data = fh.read()
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB"
    sheet = calamine_cells(data)
    assert len(sheet) == 100_001
    assert sheet[1] == ["=HYPERLINK(0)"]
    assert sheet[-1] == ["Иванов محمد 99999"]


# --- the pages and the API --------------------------------------------------------------------


@pytest.fixture
def directory(alice, bob, carol, make_company, make_person):
    acme = make_company(alice, '=HYPERLINK("http://evil.test")', tags=["vip"])
    rom = make_company(bob, "ООО Ромашка", phones=[{"raw": "+7 495 111-22-33"}])
    make_company(carol, "Carol Cargo")
    people = {
        "ivan": make_person(
            alice,
            "Иван",
            "Петров",
            phones=[{"raw": "+7 912 111 22 33"}, {"raw": "+7 495 222 33 44"}],
            emails=[{"raw": "ivan@example.test"}],
            employments=[{"company_id": rom.pk, "position": "Директор"}],
            tags=["vip", "b2b"],
        ),
        "fatima": make_person(
            bob, "فاطمة", "الزهراء", emails=[{"raw": "fatima@example.test"}], tags=["b2b"]
        ),
        "carol_client": make_person(carol, "Carl", "Other"),
    }
    return {"acme": acme, "rom": rom, **people}


def test_the_people_export_has_the_columns_a_spreadsheet_user_expects(alice, directory, client_for):
    r = client_for(alice).get(reverse("person-export"), {"format": "csv"})
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/csv")
    today = timezone.localdate().isoformat()
    assert r["Content-Disposition"] == f'attachment; filename="people-{today}.csv"'
    rows = csv_rows(body(r))
    header = rows[0]
    by_name = {
        row[header.index("Last name")]: dict(zip(header, row, strict=True)) for row in rows[1:]
    }
    ivan = by_name["Петров"]
    assert ivan["Id"] == str(directory["ivan"].pk)
    assert ivan["First name"] == "Иван"
    assert ivan["Phones"] == "'+79121112233, +74952223344"  # CSV: a leading + is neutralised
    assert ivan["Emails"] == "ivan@example.test"
    assert ivan["Company"] == "ООО Ромашка"
    assert ivan["Position"] == "Директор"
    assert ivan["Tags"] == "b2b, vip"
    assert ivan["Responsible manager"] == "Alice"
    assert ivan["Created"].startswith(today)
    assert "Other" not in by_name  # Carol's team


def test_arabic_and_cyrillic_round_trip_in_csv_and_xlsx(alice, directory, client_for):
    client = client_for(alice)
    text = body(client.get(reverse("person-export"), {"format": "csv"})).decode("utf-8-sig")
    for name in ("فاطمة", "الزهراء", "Петров"):
        assert name in text
    data = body(client.get(reverse("person-export")))
    for sheet in (xlsx_cells(data), calamine_cells(data)):
        names = {(row[1], row[2]) for row in sheet[1:]}
        assert {("Петров", "Иван"), ("الزهراء", "فاطمة")} <= names
    phones = [row[4] for row in xlsx_cells(data)[1:] if row[1] == "Петров"]
    assert phones == ["+79121112233, +74952223344"]  # XLSX: kept as typed, as text


def test_a_company_named_like_a_formula_exports_as_text(alice, directory, client_for):
    client = client_for(alice)
    rows = csv_rows(body(client.get(reverse("company-export"), {"format": "csv"})))
    assert [r[1] for r in rows if "HYPERLINK" in r[1]] == ['\'=HYPERLINK("http://evil.test")']
    cells = xlsx_cells(body(client.get(reverse("company-export"))))
    assert '=HYPERLINK("http://evil.test")' in [r[1] for r in cells]


def test_the_export_follows_the_lists_filters_and_sort(alice, directory, client_for):
    client = client_for(alice)
    rows = csv_rows(body(client.get(reverse("person-export"), {"format": "csv", "tag": "vip"})))
    assert [r[1] for r in rows[1:]] == ["Петров"]
    rows = csv_rows(
        body(client.get(reverse("person-export"), {"format": "csv", "sort": "id", "tag": "b2b"}))
    )
    assert [r[1] for r in rows[1:]] == ["Петров", "الزهراء"]
    rows = csv_rows(
        body(client.get(reverse("person-export"), {"format": "csv", "responsible": alice.pk}))
    )
    assert [r[1] for r in rows[1:]] == ["Петров"]


def test_the_list_page_links_to_its_export_with_the_current_filters(alice, directory, client_for):
    page = client_for(alice).get(reverse("person-list"), {"tag": "vip", "cursor": "x"})
    html = page.content.decode()
    assert f'href="{reverse("person-export")}?tag=vip"' in html
    assert f'href="{reverse("person-export")}?tag=vip&amp;format=csv"' in html


@pytest.fixture
def view_all_export_own(org, bob):
    """Bob may view every record but export only his own."""
    from rapport.accounts.models import default_permissions
    from rapport.accounts.services import role_save

    grid = default_permissions("all", "own")
    for actions in grid.values():
        if "export" in actions:
            actions["export"] = "own"
    role_save(actor=None, role=org["rep"], name="Rep", permissions=grid)
    return bob


def test_an_own_export_scope_exports_only_own_records_even_when_all_are_visible(
    view_all_export_own, directory, client_for
):
    client = client_for(view_all_export_own)
    listed = client.get(reverse("person-list")).content.decode()
    assert "Петров" in listed  # view scope: all
    assert "Other" in listed
    for url in (reverse("person-export"), "/api/v1/people/export"):
        rows = csv_rows(body(client.get(url, {"format": "csv"})))
        assert [r[1] for r in rows[1:]] == ["الزهراء"], url
    rows = csv_rows(body(client.get("/api/v1/companies/export", {"format": "csv"})))
    assert [r[1] for r in rows[1:]] == ["ООО Ромашка"]


@pytest.fixture
def no_export(org, alice):
    from rapport.accounts.models import default_permissions
    from rapport.accounts.services import role_save

    grid = default_permissions("team", "team")
    for actions in grid.values():
        actions.pop("export", None)
    role_save(actor=None, role=org["manager"], name="Manager", permissions=grid)
    return alice


@pytest.mark.parametrize(
    ("list_name", "export_name"),
    [
        ("company-list", "company-export"),
        ("person-list", "person-export"),
        ("lead-list", "lead-export"),
        ("deal-list", "deal-export"),
        ("task-list", "task-export"),
        ("interaction-list", "interaction-export"),
    ],
)
def test_without_the_export_permission_the_link_is_hidden_and_the_export_404(
    no_export, directory, client_for, list_name, export_name
):
    client = client_for(no_export)
    page = client.get(reverse(list_name))
    assert page.status_code == 200
    assert reverse(export_name) not in page.content.decode()
    assert client.get(reverse(export_name)).status_code == 404


def test_the_api_export_is_404_without_the_export_permission(no_export, directory, client_for):
    client = client_for(no_export)
    for path in ("companies", "people", "deals", "leads"):
        assert client.get(f"/api/v1/{path}/export").status_code == 404, path


def test_exactly_the_row_cap_is_exported_and_one_more_is_refused_with_the_count(
    alice, directory, client_for, settings
):
    client = client_for(alice)
    settings.EXPORT_MAX_ROWS = 2  # Alice's team has exactly two people
    r = client.get(reverse("person-export"), {"format": "csv"})
    assert r.status_code == 200
    assert len(csv_rows(body(r))) == 3
    settings.EXPORT_MAX_ROWS = 1
    r = client.get(reverse("person-export"), {"format": "csv", "tag": "b2b"}, follow=True)
    assert r.redirect_chain[-1][0] == f"{reverse('person-list')}?tag=b2b"
    assert "2 rows match the filters; an export takes at most 1." in r.content.decode()
    api = client.get("/api/v1/people/export", {"format": "csv"})
    assert api.status_code == 422
    assert "2 rows match" in str(api.json())


def test_the_refusal_names_the_count_as_the_users_language_writes_numbers(
    alice, directory, client_for, settings
):
    from django.utils import translation

    for language, count in (("en", "123,456"), ("ru", "123\xa0456"), ("it", "123.456")):
        with translation.override(language):
            assert count in str(exports.ExportTooLarge(123456, 100000)), language
    settings.EXPORT_MAX_ROWS = 1
    alice.language = "it"
    alice.save(update_fields=["language"])
    r = client_for(alice).get("/api/v1/people/export")
    assert r.status_code == 422
    with translation.override("it"):
        expected = str(exports.ExportTooLarge(2, 1))
    assert r.json()["error"]["fields"]["export"] == [expected]


def test_a_long_export_streams_and_holds_the_same_rows(alice, directory, client_for, monkeypatch):
    client = client_for(alice)
    small = client.get(reverse("person-export"))
    assert not small.streaming
    assert small["Content-Length"] == str(len(small.content))
    monkeypatch.setattr(exports, "BUFFER_ROWS", 0)
    for fmt in ("csv", "xlsx"):
        r = client.get(reverse("person-export"), {"format": fmt})
        assert r.streaming
        data = body(r)
        if fmt == "csv":
            assert len(csv_rows(data)) == 3
        else:
            assert len(xlsx_cells(data)) == 3


def test_exporting_many_people_does_not_query_per_row(
    alice, make_person, client_for, django_assert_max_num_queries
):
    for i in range(30):
        make_person(
            alice,
            f"P{i}",
            "Many",
            phones=[{"raw": f"+7 912 000 00 {i:02d}"}],
            tags=["t"],
        )
    client = client_for(alice)
    client.get(reverse("person-export"))  # warm the session and caches
    with django_assert_max_num_queries(15):
        r = client.get(reverse("person-export"), {"format": "csv"})
        assert len(csv_rows(body(r))) == 31


def test_custom_fields_are_extra_columns(alice, admin_user, make_company, client_for):
    from rapport.core.services import custom_field_create

    custom_field_create(
        actor=admin_user, object_type="company", name="employees", label="Employees", type="number"
    )
    custom_field_create(
        actor=admin_user, object_type="company", name="budget", label="Budget", type="money"
    )
    custom_field_create(
        actor=admin_user, object_type="company", name="note", label="Note", type="text"
    )
    make_company(
        alice,
        "Acme",
        custom_fields={
            "employees": 120,
            "budget": {"amount": "1500.50", "currency": "EUR"},
            "note": "@admin",
        },
    )
    client = client_for(alice)
    sheet = xlsx_cells(body(client.get(reverse("company-export"))))
    header, row = sheet[0], sheet[1]
    cols = dict(zip(header, row, strict=True))
    assert cols["Employees"] == 120
    assert cols["Budget"] == pytest.approx(1500.5)
    assert cols["Budget, currency"] == "EUR"
    assert cols["Note"] == "@admin"
    csv_cols = dict(
        zip(*csv_rows(body(client.get(reverse("company-export"), {"format": "csv"}))), strict=True)
    )
    assert csv_cols["Note"] == "'@admin"


# --- deals, leads, tasks, interactions --------------------------------------------------------


@pytest.fixture
def sales_world(alice, carol, pipelines, make_deal, make_lead, directory):
    from rapport.activities.services import interaction_log, task_create

    return {
        "deal": make_deal(
            alice, "=cmd|' /C calc'!A0", amount="900", company_id=directory["rom"].pk
        ),
        "other_deal": make_deal(alice, "Quiet deal", amount="10"),
        "carol_deal": make_deal(carol, "Carol's deal", amount="5"),
        "lead": make_lead(alice, "-Лид", phone="+7 912 555 66 77", company_name="@Group"),
        "carol_lead": make_lead(carol, "Carol's lead"),
        "task": task_create(
            actor=alice, data={"title": "+call back", "company_id": directory["rom"].pk}
        ),
        "carol_task": task_create(actor=carol, data={"title": "Carol's task"}),
        "call": interaction_log(actor=alice, data={"kind": "call", "subject": "=2+2 talk"}),
        "note": interaction_log(actor=alice, data={"kind": "note", "subject": "plain note"}),
        "carol_note": interaction_log(actor=carol, data={"kind": "note", "subject": "Carol's"}),
    }


def test_deal_export_keeps_amounts_typed_and_titles_as_text(alice, sales_world, client_for):
    client = client_for(alice)
    sheet = xlsx_cells(body(client.get(reverse("deal-export"), {"amount_min": "100"})))
    header = sheet[0]
    assert [r[header.index("Title")] for r in sheet[1:]] == ["=cmd|' /C calc'!A0"]
    assert sheet[1][header.index("Amount")] == pytest.approx(900)
    assert sheet[1][header.index("Company")] == "ООО Ромашка"
    api = csv_rows(body(client.get("/api/v1/deals/export", {"format": "csv", "amount_min": "100"})))
    assert [r[1] for r in api[1:]] == ["'=cmd|' /C calc'!A0"]


def test_lead_export_follows_the_list_filters(alice, sales_world, client_for):
    client = client_for(alice)
    rows = csv_rows(body(client.get(reverse("lead-export"), {"format": "csv", "q": "Лид"})))
    assert [r[1] for r in rows[1:]] == ["'-Лид"]
    assert rows[1][2].startswith("'+7")
    assert "Carol" not in body(client.get("/api/v1/leads/export", {"format": "csv"})).decode()


def test_task_and_interaction_exports_follow_the_lists(alice, sales_world, client_for):
    client = client_for(alice)
    tasks = csv_rows(body(client.get(reverse("task-export"), {"format": "csv", "view": "team"})))
    assert [r[1] for r in tasks[1:]] == ["'+call back"]
    assert tasks[1][tasks[0].index("Company")] == "ООО Ромашка"
    calls = csv_rows(
        body(client.get(reverse("interaction-export"), {"format": "csv", "kind": "call"}))
    )
    assert [r[5] for r in calls[1:]] == ["'=2+2 talk"]
    everything = body(client.get(reverse("interaction-export"))).decode("latin-1")
    assert everything.startswith("PK")


def test_the_funnel_export_still_downloads(alice, sales_world, pipelines, client_for):
    r = client_for(alice).get(reverse("funnel-export"), {"pipeline": pipelines["free"].pk})
    assert r.status_code == 200
    sheet = xlsx_cells(body(r))
    assert sheet[0][0] == "Stage"
    assert [row[0] for row in sheet[1:]] == ["New", "Talks", "Offer"]
    assert re.match(
        r'attachment; filename="funnel-\d{4}-\d{2}-\d{2}\.xlsx"', r["Content-Disposition"]
    )
