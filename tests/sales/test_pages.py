"""Sales pages as a user meets them: lists, forms, the card, the board's moves, the funnel."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.fixture
def deal_world(alice, pipelines, make_deal, make_company, make_lead):
    company = make_company(alice, "Nordwind LLC")
    strict = pipelines["strict_stages"]
    deal = make_deal(alice, "Nordwind rollout", pipeline=pipelines["strict"], amount="1200")
    other = make_deal(alice, "Repeat order", company_id=company.pk, amount="300")
    lead = make_lead(alice, "Maria Rossi", phone="+39 347 123 4567", company_name="Rossi S.r.l.")
    return {"company": company, "deal": deal, "other": other, "lead": lead, "strict": strict}


def _move(client, deal, stage, **extra):
    return client.post(
        reverse("deal-move", args=[deal.pk]),
        {"stage_id": stage.pk, "version": deal.version, **extra},
        HTTP_ACCEPT="application/json",
    )


def test_every_sales_page_opens_for_a_manager(alice, admin_user, pipelines, deal_world, client_for):
    client = client_for(alice)
    d, lead = deal_world["deal"], deal_world["lead"]
    for url in (
        reverse("deal-list"),
        reverse("deal-create"),
        reverse("deal-detail", args=[d.pk]),
        reverse("deal-detail", args=[d.pk]) + "?tab=stages",
        reverse("deal-detail", args=[d.pk]) + "?tab=history",
        reverse("deal-edit", args=[d.pk]),
        reverse("pipeline-board", args=[pipelines["strict"].pk]),
        reverse("pipeline-board", args=[pipelines["stageless"].pk]),
        reverse("funnel") + f"?pipeline={pipelines['strict'].pk}",
        reverse("lead-list"),
        reverse("lead-create"),
        reverse("lead-detail", args=[lead.pk]),
        reverse("lead-edit", args=[lead.pk]),
        reverse("company-detail", args=[deal_world["company"].pk]) + "?tab=deals",
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    assert client.get(reverse("board")).status_code == 302
    admin = client_for(admin_user)
    assert admin.get(reverse("pipelines")).status_code == 200
    assert admin.get(reverse("pipeline-edit", args=[pipelines["strict"].pk])).status_code == 200


def test_board_shows_counts_and_sums_per_stage(alice, pipelines, deal_world, client_for):
    page = client_for(alice).get(reverse("pipeline-board", args=[pipelines["strict"].pk]))
    html = page.content.decode()
    assert "Nordwind rollout" in html
    first = page.context["columns"][0]
    assert (first.stage.name, first.count, int(first.total)) == ("Lead", 1, 1200)


def test_a_skip_in_a_strict_pipeline_is_refused_with_the_reason(alice, deal_world, client_for):
    d, s = deal_world["deal"], deal_world["strict"]
    r = _move(client_for(alice), d, s[2])
    assert r.status_code == 422
    assert "Qualified" in r.json()["message"]
    d.refresh_from_db()
    assert d.stage_id == s[0].pk


def test_missing_entry_fields_open_a_dialog_and_the_move_completes_with_them(
    alice, deal_world, client_for
):
    client = client_for(alice)
    d, s = deal_world["deal"], deal_world["strict"]
    assert _move(client, d, s[1]).json()["ok"] is True
    d.refresh_from_db()
    answer = _move(client, d, s[2])
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "stage_requirements"
    assert 'name="req_company"' in body["dialog"]
    done = _move(client, d, s[2], req_company=deal_world["company"].pk)
    assert done.status_code == 200, done.content
    payload = done.json()
    assert payload["ok"] is True
    assert payload["columns"][str(s[2].pk)]["count"] == 1
    assert payload["columns"][str(s[1].pk)]["count"] == 0
    d.refresh_from_db()
    assert (d.stage_id, d.company_id) == (s[2].pk, deal_world["company"].pk)


def test_a_stale_drag_is_refused_and_tells_the_user(alice, deal_world, client_for):
    client = client_for(alice)
    d, s = deal_world["deal"], deal_world["strict"]
    stale_version = d.version
    assert _move(client, d, s[1]).json()["ok"]
    d.version = stale_version
    r = _move(client, d, s[0])
    assert r.status_code == 409
    assert r.json()["code"] == "stale"


def test_losing_from_the_board_needs_a_reason(alice, deal_world, pipelines, client_for):
    client = client_for(alice)
    d = deal_world["other"]
    url = reverse("deal-lose", args=[d.pk])
    refused = client.post(url, {"version": d.version}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 422
    ok = client.post(
        url,
        {"version": d.version, "loss_reason_id": pipelines["price"].pk, "comment": "too dear"},
        HTTP_ACCEPT="application/json",
    )
    assert ok.json()["ok"] is True
    d.refresh_from_db()
    assert (d.status, d.loss_reason_id, d.loss_comment) == (
        "lost",
        pipelines["price"].pk,
        "too dear",
    )


def test_creating_a_deal_from_the_form_reports_bad_amount_and_currency(
    alice, pipelines, client_for
):
    client = client_for(alice)
    r = client.post(
        reverse("deal-create"),
        {
            "title": "Bad",
            "pipeline_id": pipelines["free"].pk,
            "amount": "-5",
            "currency": "RUB",
            "responsible_id": alice.pk,
        },
    )
    assert r.status_code == 422
    assert "negative" in r.content.decode()
    ok = client.post(
        reverse("deal-create"),
        {
            "title": "Good",
            "pipeline_id": pipelines["free"].pk,
            "amount": "10 000,50",
            "currency": "EUR",
            "responsible_id": alice.pk,
        },
    )
    assert ok.status_code == 302
    from rapport.sales.models import Deal

    deal = Deal.objects.get(title="Good")
    assert (str(deal.amount), deal.currency, deal.stage.name) == ("10000.50", "EUR", "New")


def test_converting_a_lead_from_its_page_opens_the_new_deal(alice, deal_world, client_for):
    client = client_for(alice)
    lead = deal_world["lead"]
    r = client.post(
        reverse("lead-convert", args=[lead.pk]),
        {"version": lead.version, "create_company": "1", "create_person": "1", "title": "Pasta"},
    )
    assert r.status_code == 302
    lead.refresh_from_db()
    assert lead.status == "converted"
    deal = lead.deals.get()
    assert r["Location"] == reverse("deal-detail", args=[deal.pk])
    assert deal.title == "Pasta"
    assert deal.company.short_name.startswith("Rossi")


def test_funnel_exports_csv_and_xlsx(alice, pipelines, deal_world, client_for):
    client = client_for(alice)
    q = f"?pipeline={pipelines['strict'].pk}"
    csv_body = client.get(reverse("funnel-export") + q + "&format=csv").content.decode("utf-8-sig")
    assert csv_body.splitlines()[1].startswith("Lead,1,")
    xlsx = client.get(reverse("funnel-export") + q)
    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    assert xlsx.content[:2] == b"PK"


def test_deal_export_respects_the_scope(alice, carol, deal_world, client_for):
    body = client_for(carol).get(reverse("deal-export") + "?format=csv").content.decode("utf-8-sig")
    assert "Nordwind" not in body
    mine = client_for(alice).get(reverse("deal-export") + "?format=csv").content.decode("utf-8-sig")
    assert "Nordwind rollout" in mine


def test_another_teams_deals_and_leads_are_404_on_pages(carol, deal_world, pipelines, client_for):
    client = client_for(carol)
    d, lead = deal_world["deal"], deal_world["lead"]
    for method, url in (
        ("get", reverse("deal-detail", args=[d.pk])),
        ("get", reverse("deal-edit", args=[d.pk])),
        ("post", reverse("deal-move", args=[d.pk])),
        ("post", reverse("deal-win", args=[d.pk])),
        ("post", reverse("deal-lose", args=[d.pk])),
        ("post", reverse("deal-reopen", args=[d.pk])),
        ("post", reverse("deal-delete", args=[d.pk])),
        ("post", reverse("deal-restore", args=[d.pk])),
        ("get", reverse("lead-detail", args=[lead.pk])),
        ("get", reverse("lead-edit", args=[lead.pk])),
        ("post", reverse("lead-convert", args=[lead.pk])),
        ("post", reverse("lead-reject", args=[lead.pk])),
    ):
        assert getattr(client, method)(url).status_code == 404, url
    board = client.get(reverse("pipeline-board", args=[pipelines["strict"].pk])).content.decode()
    assert "Nordwind" not in board
    assert "Rossi" not in client.get(reverse("lead-list")).content.decode()
    assert "Nordwind" not in client.get(reverse("deal-list")).content.decode()


def test_sales_pages_speak_russian_and_arabic(alice, pipelines, deal_world, client_for):
    from rapport.accounts.services import user_update

    for lang, word, direction in (("ru", "Сделки", "ltr"), ("ar", "الصفقات", "rtl")):
        user_update(actor=alice, user=alice, language=lang)
        html = client_for(alice).get(reverse("deal-list")).content.decode()
        assert f'dir="{direction}"' in html
        assert word in html, lang


def test_the_board_page_reads_each_column_once_however_many_cards(
    alice, pipelines, make_company, make_person, client_for, django_assert_max_num_queries
):
    from rapport.sales.services import deal_create

    company = make_company(alice, "Many cards Ltd")
    person = make_person(alice, "Olga", "Cardholder")
    for i in range(12):
        deal_create(
            actor=alice,
            data={
                "title": f"Card {i}",
                "pipeline_id": pipelines["free"].pk,
                "amount": "10",
                "company_id": company.pk if i % 2 else None,
                "person_id": None if i % 2 else person.pk,
            },
        )
    client = client_for(alice)
    client.get(reverse("pipeline-board", args=[pipelines["free"].pk]))
    with django_assert_max_num_queries(20):
        page = client.get(reverse("pipeline-board", args=[pipelines["free"].pk]))
    html = page.content.decode()
    assert html.count('<article class="kcard') == 12
    assert "Many cards Ltd" in html
    assert "Cardholder Olga" in html
    assert "Alice" in html
