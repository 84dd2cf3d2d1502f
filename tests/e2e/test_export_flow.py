"""Export in a real browser: a sales manager filters the people list by a tag, clicks
"Export XLSX" and gets a spreadsheet of exactly those people — names in any script, the
formula-looking one as plain text — and nothing of the other team's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import expect  # noqa: E402  (after the skip: no browser, no import)

pytestmark = pytest.mark.e2e


def seed_people(manager: Any, outsider: Any) -> None:
    from rapport.parties.services import person_create

    for first, last, tags in (
        ("Иван", "Петров", ["vip"]),
        ("فاطمة", "الزهراء", ["vip"]),
        ("Eve", '=HYPERLINK("http://evil.test","x")', ["vip"]),
        ("Anna", "Plain", ["b2b"]),
    ):
        person_create(
            actor=manager,
            data={"first_name": first, "last_name": last, "tags": tags},
            force=True,
        )
    person_create(
        actor=outsider,
        data={"first_name": "Oleg", "last_name": "Outsider", "tags": ["vip"]},
        force=True,
    )


def test_a_manager_filters_the_people_list_and_downloads_it_as_xlsx(
    page: Any, login: Any, manager: Any, outsider: Any
) -> None:
    from openpyxl import load_workbook

    seed_people(manager, outsider)
    login(page, manager)
    page.goto("/people/")
    page.fill("#f_tag", "vip")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url("**/people/?*tag=vip*")
    expect(page.locator("#records")).not_to_contain_text("Plain")

    with page.expect_download() as info:
        page.locator("#export-xlsx").click()
    download = info.value
    assert download.suggested_filename.startswith("people-")
    assert download.suggested_filename.endswith(".xlsx")
    data = Path(download.path()).read_bytes()

    ws = load_workbook(io.BytesIO(data)).worksheets[0]
    rows = list(ws.iter_rows())
    header = [c.value for c in rows[0]]
    last_names = {row[header.index("Last name")].value for row in rows[1:]}
    assert last_names == {"Петров", "الزهراء", '=HYPERLINK("http://evil.test","x")'}
    assert all(c.data_type != "f" for row in rows for c in row)
