"""The import wizard in a real browser: a sales manager uploads a Russian spreadsheet, checks
the detected header and columns, previews, starts the import, watches it finish, opens a
person it created; finds that person also entered by hand earlier (a typo in the surname),
merges the two field by field, sees the merged card, undoes the merge; and undoes the
import, leaving the base as it was before.

The hand-entered near-duplicate is made by a fixture before the import: the importer does
not merge it (a similar name without a second signal is not enough), the duplicate finder
proposes it. The worker is not running here: the test runs the worker's jobs itself (the
import, the scan of the base), in the test thread, while the page polls the live server
(the ORM may run beside Playwright's event loop: see DJANGO_ALLOW_ASYNC_UNSAFE in
conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

from playwright.sync_api import expect  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "data" / "import-corpus"
RU_FILE = CORPUS / "ru_contacts.xlsx"
HEADERS = ["ФИО", "Компания", "Должность", "Телефон", "E-mail", "ИНН", "Город", "Комментарий"]
# Sheet row 9: "Анисим Блохин", АО «Панфилова Следовательно», +7-912-418-56-19; the first
# time this person and this company appear in the file (tests/data/import-corpus/truth.csv).
PERSON_ROW = 9
PERSON_NAME = "Блохин"
PERSON_E164 = "+79124185619"
PERSON_COMPANY = "Панфилова Следовательно"
PERSON_EMAIL = "anisim.blokhin@rambler.ru"
# The same man, typed in by hand before the import: surname misspelt, the office number.
TWIN = {"last_name": "Блохен", "first_name": "Анисим", "city": "Тула"}
TWIN_E164 = "+74951234567"
# The preview checks all 497 rows in the request (about 40 s of server time on a loaded
# two-core machine); undo removes 434 people. Wait for those, not for a fixed time.
SLOW = 240_000
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def import_media(settings: Any, tmp_path: Path) -> Path:
    """Uploaded files are stored under MEDIA_ROOT/imports: keep them out of var/media."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def shoot_window(page: Any, name: str) -> Path:
    """Like conftest's ``screenshot``, but only the window (1280x800), not the whole page."""
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False, animations="disabled")
    return path


@pytest.fixture
def twin(manager: Any) -> Any:
    """Maria's client Anisim Blokhin, entered by hand with a typo, before any import."""
    from rapport.parties.services import person_create

    return person_create(
        actor=manager, data={**TWIN, "phones": [{"raw": "+7 (495) 123-45-67"}]}, force=True
    )


def _base() -> list[tuple[Any, ...]]:
    """Every person and company with the values a user sees, to compare before and after."""
    from rapport.parties.models import Company, ContactPoint, Person

    people = Person.objects.order_by("pk").values_list(
        "pk", "last_name", "first_name", "middle_name", "city", "deleted_at"
    )
    companies = Company.objects.order_by("pk").values_list("pk", "short_name", "deleted_at")
    points = ContactPoint.objects.order_by("pk").values_list("person_id", "company_id", "value")
    return [*people, *companies, *points]


def _people_count() -> int:
    from rapport.parties.models import Person

    return Person.objects.count()


def _records_count() -> int:
    from rapport.parties.models import Company

    return _people_count() + Company.objects.count()


def _run_id(url: str) -> int:
    match = re.search(r"/imports/(\d+)/", url)
    assert match, f"expected an /imports/<id>/ URL, got {url}"
    return int(match.group(1))


def _column(page: Any, header: str) -> Any:
    return page.get_by_label(f"Field for column {header}", exact=True)


def _report_row(page: Any, row: int) -> Any:
    return page.locator("table#report tbody tr").filter(
        has=page.locator("td.num", has_text=re.compile(rf"^{row}$"))
    )


def test_manager_imports_a_russian_spreadsheet_merges_a_duplicate_and_undoes_it_all(
    page, login, manager, twin, screenshot, import_media
):
    page.set_default_timeout(30_000)  # the machine that runs this may be busy
    before = _base()
    login(page, manager)

    # 1. The import page, from the main menu (a manager, not an admin: a top-level link).
    page.locator(".mainnav").get_by_role("link", name="Import", exact=True).click()
    page.wait_for_url(re.compile(r"/imports/$"))
    expect(page.locator("h1")).to_have_text("Import")
    page.set_input_files("#imp_file", RU_FILE)
    page.select_option("#imp_target", "people")
    page.fill("#imp_region", "RU")
    page.get_by_role("button", name="Upload and map columns").click()
    page.wait_for_url(re.compile(r"/imports/\d+/$"), timeout=SLOW)
    run_id = _run_id(page.url)

    # 2. The title row and the empty row are skipped: the header is row 3, columns mapped.
    expect(page.locator("h1")).to_contain_text("ru_contacts.xlsx")
    expect(page.locator("#imp_header")).to_have_value("3")
    expect(page.locator("p.muted", has_text="header on row")).to_contain_text("header on row 3")
    mapping = page.locator("table#mapping tbody tr")
    expect(mapping).to_have_count(len(HEADERS))
    for i, header in enumerate(HEADERS):
        expect(mapping.nth(i).locator("td").first).to_have_text(header)
    expected = {
        "ФИО": "full name",
        "Компания": "company",
        "Должность": "position",
        "Телефон": "phones",
        "E-mail": "emails",
        "ИНН": "company tax id",
        "Город": "city",
    }
    for header, label in expected.items():
        expect(_column(page, header).locator("option:checked")).to_have_text(label)
    expect(mapping.nth(0)).to_contain_text("Колобов Мокей Демидович")  # first values shown
    # The user drops the comments column, and saves the mapping.
    _column(page, "Комментарий").select_option(label="— ignore —")
    with page.expect_navigation(timeout=SLOW):
        page.get_by_role("button", name="Save", exact=True).click()
    page.goto(f"/imports/{run_id}/")  # opened again, the import shows the saved mapping
    expect(_column(page, "Комментарий")).to_have_value("")
    expect(_column(page, "ФИО")).to_have_value("full_name")
    screenshot(page, "import-mapping")

    # 3. The preview counts what would happen, and writes nothing.
    page.get_by_role("button", name="Preview", exact=True).click(timeout=SLOW)
    preview = page.locator("#preview")
    expect(preview).to_be_visible(timeout=SLOW)
    expect(preview).to_contain_text("Nothing has been written yet.")
    created = preview.locator(".badge[data-outcome=created]")
    merged = preview.locator(".badge[data-outcome=merged]")
    expect(created).to_have_text(re.compile(r"^created: [1-9]\d*$"))
    expect(merged).to_have_text(re.compile(r"^merged with an earlier row: [1-9]\d*$"))
    predicted_created, predicted_merged = created.inner_text(), merged.inner_text()
    total_rows = int(re.sub(r"\D", "", preview.locator("p").first.inner_text().split(":")[0]))
    assert _base() == before, "the preview wrote to the base"
    page.locator(".mainnav").get_by_role("link", name="People", exact=True).click()
    expect(page.locator("#records tbody tr")).to_have_count(1)
    expect(page.locator("#records")).to_contain_text(TWIN["last_name"])
    page.goto(f"/imports/{run_id}/")  # the import waits where the user left it

    # 4. Start: the run is queued and the page shows a progress bar that polls.
    page.get_by_role("button", name="Start import", exact=True).click(timeout=SLOW)
    progress = page.locator("#import-progress")
    expect(progress).to_be_visible(timeout=SLOW)
    expect(progress.locator(".status")).to_have_text("queued")
    expect(progress.locator("[role=progressbar]")).to_be_visible()

    # The worker's job, run here; the page notices the end and reloads into the report.
    from rapport.imports import jobs

    assert jobs.run_import(run_id) == "done"
    report = page.locator("table#report")
    expect(report).to_be_visible(timeout=SLOW)
    expect(page.locator("#import-progress .status")).to_have_text("done")
    rows = report.locator("tbody tr")
    expect(rows).to_have_count(total_rows)  # one report line per data row
    expect(rows.filter(has_text="merged with an earlier row").first).to_be_visible()
    # What the preview said is what happened.
    expect(page.locator(".toolbar .badge[data-outcome=created]")).to_have_text(predicted_created)
    expect(page.locator(".toolbar .badge[data-outcome=merged]")).to_have_text(predicted_merged)
    expect(page.get_by_role("link", name="Report (XLSX)")).to_be_visible()
    expect(page.get_by_role("link", name="Report (JSON)")).to_be_visible()
    assert _people_count() > 1

    # The outcome filter: only the rows folded into an earlier row of the same file.
    page.select_option("#imp_outcome", "merged")
    page.wait_for_url(re.compile(rf"/imports/{run_id}/\?outcome=merged$"))
    expect(rows.first).to_contain_text(re.compile(r"merged with an earlier row \(row \d+\)"))
    expect(rows.filter(has_not_text="merged with an earlier row")).to_have_count(0)
    # The whole report is hundreds of rows tall: the window is what the user sees first.
    shoot_window(page, "import-report")
    page.select_option("#imp_outcome", value="")
    page.wait_for_url(re.compile(rf"/imports/{run_id}/\?outcome=$"))

    # 5. A person the import created: the phone in E.164, and the company.
    row = _report_row(page, PERSON_ROW)
    expect(row).to_contain_text("created")
    expect(row).to_contain_text(PERSON_E164)
    # The report names the records it wrote, linked to their cards.
    expect(row.get_by_role("link", name=re.compile(PERSON_COMPANY))).to_be_visible()
    row.get_by_role("link", name=re.compile(PERSON_NAME)).click()
    page.wait_for_url(re.compile(r"/people/\d+/$"))
    expect(page.locator("h1")).to_contain_text(PERSON_NAME)
    body = page.locator("#tab-body")
    expect(body.locator(f'a[href="tel:{PERSON_E164}"]')).to_be_visible()
    expect(body).to_contain_text(PERSON_E164)
    expect(body.get_by_role("link", name=re.compile(PERSON_COMPANY))).to_be_visible()
    page.go_back()
    page.wait_for_url(re.compile(rf"/imports/{run_id}/\?outcome=$"))

    # 6. The duplicates page: the worker's scan of the base proposes the hand-typed twin.
    from rapport.dedupe import jobs as dedupe_jobs
    from rapport.parties.models import Person

    imported_twin = Person.objects.get(last_name="Блохин", first_name="Анисим")
    dedupe_jobs.scan("person")
    page.locator(".mainnav").get_by_role("link", name="Duplicates", exact=True).click()
    page.wait_for_url(re.compile(r"/duplicates/$"))
    cluster = page.locator("tr.cluster", has_text=TWIN["last_name"])
    expect(cluster).to_have_count(1)
    expect(cluster).to_contain_text(PERSON_NAME)
    expect(cluster.locator(".badge").first).to_contain_text("similar name")
    cluster.get_by_role("link", name=re.compile(rf"#{twin.pk} \+ #{imported_twin.pk}")).click()
    page.wait_for_url(re.compile(rf"/duplicates/person/{twin.pk}/{imported_twin.pk}/$"))

    # 7. Compare and merge: keep the hand-typed record, take the file's spelling of the
    # surname and keep the city typed by hand; phones and emails of both are kept.
    expect(page.locator("h1")).to_have_text("Compare and merge")
    form = page.locator("#merge-form")
    expect(form.locator(f'input[name=survivor][value="{twin.pk}"]')).to_be_checked()
    expect(form.locator("tr[data-field=phones]")).to_contain_text(TWIN_E164)
    expect(form.locator("tr[data-field=phones]")).to_contain_text(PERSON_E164)
    form.locator("tr[data-field=last_name] input[value=b]").check()
    form.locator("tr[data-field=city] input[value=a]").check()
    expect(form.locator("tr[data-field=last_name] input[value=b]")).to_be_checked()
    screenshot(page, "duplicate-merge")
    form.get_by_role("button", name="Merge", exact=True).click()

    # The survivor's card: the file's surname, the hand-typed city, both numbers, the email
    # and the company link the imported record brought.
    page.wait_for_url(re.compile(rf"/people/{twin.pk}/\?merged=\d+$"))
    expect(page.locator(".messages .msg-success")).to_contain_text("Merged.")
    expect(page.locator("h1")).to_contain_text(f"{PERSON_NAME} {TWIN['first_name']}")
    body = page.locator("#tab-body")
    expect(body.locator(f'a[href="tel:{TWIN_E164}"]')).to_be_visible()
    expect(body.locator(f'a[href="tel:{PERSON_E164}"]')).to_be_visible()
    expect(body.locator(f'a[href="mailto:{PERSON_EMAIL}"]')).to_be_visible()
    expect(body).to_contain_text(TWIN["city"])
    expect(body.get_by_role("link", name=re.compile(PERSON_COMPANY))).to_be_visible()
    assert Person.objects.get(pk=imported_twin.pk).deleted_at is not None

    # 8. Undo the merge from the duplicates page: both records are back as they were.
    page.locator(".mainnav").get_by_role("link", name="Duplicates", exact=True).click()
    page.get_by_role("button", name="Undo merge").click()
    expect(page.locator(".messages .msg-success")).to_contain_text(
        "Merge undone: both records are back."
    )
    expect(page.locator("tr.cluster", has_text=TWIN["last_name"])).to_have_count(1)
    page.goto(f"/people/{twin.pk}/")
    expect(page.locator("h1")).to_contain_text(TWIN["last_name"])
    expect(page.locator("#tab-body")).not_to_contain_text(PERSON_E164)
    assert Person.objects.get(pk=imported_twin.pk).deleted_at is None

    # 9. Undo the import, confirming the browser's dialog: the base is as it was before.
    page.goto(f"/imports/{run_id}/")
    imported = _records_count() - 1  # the people and companies it wrote, not the twin
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Undo import").click(timeout=SLOW)
    messages = page.locator(".messages")
    expect(messages.locator(".msg-success")).to_contain_text(
        f"Import undone: {imported} records removed, 0 restored.", timeout=SLOW
    )
    assert dialogs, "no confirm() dialog before the undo"
    assert dialogs[0].startswith("Undo this import?"), dialogs
    expect(page.locator("#import-progress .status")).to_have_text("undone")
    expect(page.get_by_role("button", name="Undo import")).to_have_count(0)
    kept = messages.locator(".msg-warning")
    problems = kept.all_inner_texts()[:3]
    said = messages.locator(".msg-success").inner_text()
    assert kept.count() == 0, f"undo kept records: {said} {problems}"

    page.locator(".mainnav").get_by_role("link", name="People", exact=True).click()
    page.wait_for_url(re.compile(r"/people/$"))
    expect(page.locator("#records tbody tr")).to_have_count(1)
    expect(page.locator("#records")).to_contain_text(TWIN["last_name"])
    assert _base() == before
