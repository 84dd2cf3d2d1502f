"""The wizard pages and the API drive the same import: upload, map, preview, run, report, undo."""

from __future__ import annotations

import json
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from rapport.imports import jobs
from rapport.imports.models import ImportRun, RunStatus
from rapport.parties.models import Person

CSV = (
    "ФИО;Компания;Телефон;E-mail\n"
    "Иванов Иван Иванович;ООО Ромашка;8 (912) 345-67-89;ivan@romashka.ru\n"
    "ИВАНОВ ИВАН;Ромашка ООО;+7 495 111-22-33;ivan@romashka.ru\n"
    "Петрова Анна;;нет;\n"
).encode()


def _upload(name: str = "clients.csv", content: bytes = CSV) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def test_the_wizard_maps_previews_runs_and_reports_an_import(alice, client_for):
    client = client_for(alice)
    response = client.post(
        reverse("import-list"), {"file": _upload(), "target": "people", "default_region": "RU"}
    )
    assert response.status_code == 302
    run = ImportRun.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert 'name="col_0"' in page
    assert '<option value="full_name" selected' in page
    assert "8 (912) 345-67-89" in page  # the first values of each column

    mapping = {f"col_{i}": f for i, f in enumerate(["full_name", "company", "phones", "emails"])}
    preview = client.post(
        reverse("import-detail", args=[run.pk]),
        {**mapping, "action": "preview", "header_row": "1", "on_duplicate": "update",
         "default_region": "RU", "responsible_id": str(alice.pk)},
    )  # fmt: skip
    body = preview.content.decode()
    assert preview.status_code == 200
    assert 'data-outcome="created"' in body
    assert 'data-outcome="merged"' in body
    assert Person.objects.count() == 0  # a preview writes nothing

    started = client.post(
        reverse("import-detail", args=[run.pk]),
        {**mapping, "action": "start", "header_row": "1", "on_duplicate": "update",
         "default_region": "RU", "responsible_id": str(alice.pk)},
    )  # fmt: skip
    assert started.status_code == 302
    assert ImportRun.objects.get().status == RunStatus.QUEUED
    assert (
        'hx-trigger="every 1s"'
        in client.get(reverse("import-progress", args=[run.pk])).content.decode()
    )

    jobs.run_import(run.pk)  # what the worker does with the queued task

    done = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    assert 'data-status="done"' in done
    assert Person.objects.count() == 2
    report = json.loads(client.get(reverse("import-report", args=[run.pk, "json"])).content)
    assert [line["outcome"] for line in report] == ["created", "merged", "created"]
    xlsx = client.get(reverse("import-report", args=[run.pk, "xlsx"]))
    assert xlsx.status_code == 200
    assert xlsx["Content-Disposition"].endswith('.xlsx"')
    csv_response = client.get(reverse("import-report", args=[run.pk, "csv"]))
    csv_text = b"".join(csv_response.streaming_content).decode("utf-8-sig")
    person = Person.objects.order_by("pk").first()
    assert str(person) in csv_text  # the report names the record, not only its id

    undone = client.post(reverse("import-undo", args=[run.pk]))
    assert undone.status_code == 302
    assert Person.objects.count() == 0
    assert ImportRun.objects.get().status == RunStatus.UNDONE


def test_a_file_that_is_not_what_it_says_is_refused_on_the_page_with_the_reason(alice, client_for):
    client = client_for(alice)
    response = client.post(
        reverse("import-list"),
        {"file": _upload("clients.xlsx", b"name;phone\nIvan;1\n"), "target": "people"},
    )
    assert response.status_code == 422
    assert "not a spreadsheet" in response.content.decode()
    assert ImportRun.objects.count() == 0


def test_rows_with_errors_are_listed_on_the_page_and_nothing_is_written(alice, client_for):
    client = client_for(alice)
    bad = "ФИО;E-mail\nИванов Иван;not-an-email\nПетров Пётр;petrov@example.com\n".encode()
    client.post(reverse("import-list"), {"file": _upload(content=bad), "target": "people"})
    run = ImportRun.objects.get()
    jobs.run_import(run.pk)
    page = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    assert "not-an-email" in page
    assert "Import valid rows only" in page
    assert Person.objects.count() == 0


def test_the_api_runs_the_same_import(alice, client_for):
    client = client_for(alice)
    created = client.post(
        "/api/v1/imports", {"file": _upload(), "target": "people", "default_region": "RU"}
    )
    assert created.status_code == 201, created.content
    run = created.json()
    assert run["mapping"] == ["full_name", "company", "phones", "emails"]
    assert run["status"] == "draft"

    patched = client.patch(
        f"/api/v1/imports/{run['id']}",
        data=json.dumps({"on_duplicate": "skip", "valid_rows_only": True}),
        content_type="application/json",
    )
    assert patched.json()["on_duplicate"] == "skip"
    bad = client.patch(
        f"/api/v1/imports/{run['id']}",
        data=json.dumps({"mapping": ["phones", "", "", ""]}),
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert "mapping" in bad.json()["error"]["fields"]

    preview = client.post(f"/api/v1/imports/{run['id']}/preview").json()
    assert preview["total"] == 3
    assert preview["counts"] == {"created": 2, "merged": 1}

    started = client.post(f"/api/v1/imports/{run['id']}/start")
    assert started.status_code == 202
    jobs.run_import(run["id"])
    state = client.get(f"/api/v1/imports/{run['id']}").json()
    assert (state["status"], state["rows_done"], state["total_rows"]) == ("done", 3, 3)
    report = client.get(f"/api/v1/imports/{run['id']}/report").json()
    assert [line["row"] for line in report] == [2, 3, 4]
    assert report[2]["messages"]  # the junk phone is flagged
    undo = client.post(f"/api/v1/imports/{run['id']}/undo").json()
    assert undo["removed"] == 3  # two people and the company
    assert Person.objects.count() == 0


def test_a_user_whose_role_may_not_create_people_cannot_start_an_import(dan, client_for, org):
    from rapport.accounts.services import role_save

    role = role_save(actor=None, name="Viewer", permissions={"person": {"view": "all"}})
    dan.role = role
    dan.save()
    response = client_for(dan).post("/api/v1/imports", {"file": _upload(), "target": "people"})
    assert response.status_code == 403


def _imported(client: Any, user: Any) -> ImportRun:
    client.post(
        reverse("import-list"), {"file": _upload(), "target": "people", "default_region": "RU"}
    )
    run = ImportRun.objects.get()
    from rapport.imports.services import run_start

    run_start(actor=user, run=run)
    jobs.run_import(run.pk)
    return run


def test_the_report_names_the_records_and_links_them_to_their_cards(alice, client_for):
    client = client_for(alice)
    run = _imported(client, alice)
    ivan = Person.objects.get(last_name="Иванов")
    page = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    card = reverse("person-detail", args=[ivan.pk])
    assert f'<a href="{card}"><bdi>{ivan}</bdi></a>' in page
    company = ivan.employments.get().company
    assert f'<a href="{reverse("company-detail", args=[company.pk])}"><bdi>{company}' in page
    assert f"person {ivan.pk}<" not in page  # no bare ids where a name can be shown


def test_a_record_the_viewer_may_no_longer_see_is_shown_unlinked_in_the_report(
    alice, carol, admin_user, client_for
):
    from rapport.parties.services import person_update

    client = client_for(alice)
    run = _imported(client, alice)
    anna = Person.objects.get(last_name="Петрова")
    person_update(actor=admin_user, person=anna, data={"responsible_id": carol.pk})  # team B
    page = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    assert reverse("person-detail", args=[anna.pk]) not in page
    assert "Петрова" not in page
    assert f"person #{anna.pk}" in page
    assert (
        "Петрова"
        in client_for(admin_user).get(reverse("import-detail", args=[run.pk])).content.decode()
    )  # an administrator sees it


def test_the_responsible_manager_list_offers_only_users_one_may_assign_to(
    alice, bob, carol, dan, client_for
):
    client_for(alice).post(
        reverse("import-list"), {"file": _upload(), "target": "people", "default_region": "RU"}
    )
    run = ImportRun.objects.get()

    def offered(page: str) -> set[str]:
        select = page.split('id="imp_resp"', 1)[1].split("</select>", 1)[0]
        return {u.username for u in (alice, bob, carol, dan) if f'value="{u.pk}"' in select}

    page = client_for(alice).get(reverse("import-detail", args=[run.pk])).content.decode()
    assert offered(page) == {"alice", "bob", "dan"}  # team A and its sub-team, not Carol's B
    client_for(bob).post(reverse("import-list"), {"file": _upload(), "target": "people"})
    bob_run = ImportRun.objects.get(created_by=bob)
    page = client_for(bob).get(reverse("import-detail", args=[bob_run.pk])).content.decode()
    assert offered(page) == {"bob"}  # a rep assigns only to himself
