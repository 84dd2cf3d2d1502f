"""Who gets a new lead: the routing table, round-robin, least busy, returning clients,
absent and inactive managers, and nobody present."""

from __future__ import annotations

from rapport.activities.models import Notification
from rapport.core.events import outbox_dispatch
from rapport.core.models import AuditEntry
from rapport.routing.services import (
    assignee_pick,
    lead_route,
    present,
    rule_sentence,
    user_is_absent,
)
from rapport.sales.models import Lead
from rapport.sales.services import lead_create


def _routed(lead: Lead) -> Lead:
    outbox_dispatch()
    lead.refresh_from_db()
    return lead


def test_a_lead_with_a_phone_from_a_country_goes_to_that_countrys_manager(sales, rule, new_lead):
    rule(name="Azerbaijan", countries=["AZ"], target_user_id=sales["vera"].pk)
    rule(name="Everyone else", target_user_id=sales["anna"].pk)
    baku = new_lead(phone="+994 12 404 1234")
    rome = new_lead(phone="+39 06 1234 5678")
    assert _routed(baku).responsible == sales["vera"]
    assert _routed(rome).responsible == sales["anna"]


def test_a_phone_prefix_picks_a_region_inside_a_country(sales, rule, new_lead):
    rule(name="Moscow", phone_prefixes=["+7 495", "+7499"], target_user_id=sales["boris"].pk)
    rule(name="Russia", countries=["RU"], target_user_id=sales["anna"].pk)
    moscow = new_lead(phone="+7 495 123-45-67")
    kazan = new_lead(phone="+7 843 123-45-67")
    assert _routed(moscow).responsible == sales["boris"]
    assert _routed(kazan).responsible == sales["anna"]


def test_the_city_a_lead_gave_routes_it_when_the_phone_says_only_the_country(sales, rule, new_lead):
    rule(name="Tatarstan", places=["Kazan", "Татарстан"], target_user_id=sales["boris"].pk)
    rule(name="Italy", countries=["IT"], target_user_id=sales["vera"].pk)
    rule(name="Rest", target_user_id=sales["anna"].pk)
    kazan = new_lead(phone="+7 912 341-96-15", address="KAZAN, ul. Baumana 1")
    chelny = new_lead(address="Республика Татарстан, Набережные Челны")
    nowhere = new_lead(phone="+7 912 341-96-17", address="Samara")
    assert _routed(kazan).responsible == sales["boris"]
    assert _routed(chelny).responsible == sales["boris"]
    assert _routed(nowhere).responsible == sales["anna"]
    assert Lead.objects.get(pk=kazan.pk).address == "KAZAN, ul. Baumana 1"


def test_a_known_clients_address_and_country_route_it_when_its_manager_is_away(
    sales, rule, new_lead, alice, make_company, away
):
    rule(name="Italy", countries=["IT"], target_user_id=sales["vera"].pk)
    rule(name="Rest", target_user_id=sales["anna"].pk)
    make_company(alice, "Pasta Srl", country="IT", legal_address="Via Roma 1, Milano")
    away(alice)
    lead = new_lead(company_name="Pasta Srl", phone="+7 912 341-96-16")
    assert lead.company_id is not None  # matched to the known company
    assert _routed(lead).responsible == sales["vera"]  # its country, not the phone's


def test_a_place_condition_reads_as_part_of_the_region_in_the_table(sales, rule):
    row = rule(
        name="Kazan", phone_prefixes=["+7843"], places=["Kazan"], target_user_id=sales["boris"].pk
    )
    assert "+7843" in rule_sentence(row)
    assert "the client's address mentions Kazan" in rule_sentence(row)


def test_channel_and_source_conditions_match_ignoring_case(sales, rule, new_lead):
    rule(name="Calls", channels=["phone"], target_user_id=sales["boris"].pk)
    rule(name="Google ads", sources=["Google"], target_user_id=sales["vera"].pk)
    rule(name="Rest", target_user_id=sales["anna"].pk)
    call = new_lead(channel="phone")
    ads = new_lead(utm_source="google")
    referral = new_lead(source="GOOGLE")
    other = new_lead(source="yandex")
    assert _routed(call).responsible == sales["boris"]
    assert _routed(ads).responsible == sales["vera"]
    assert _routed(referral).responsible == sales["vera"]
    assert _routed(other).responsible == sales["anna"]


def test_amount_range_includes_its_bounds_and_a_lead_without_amount_does_not_match(
    sales, rule, new_lead
):
    rule(name="Big", amount_min="100000", amount_max="1000000", target_user_id=sales["vera"].pk)
    rule(name="Rest", target_user_id=sales["anna"].pk)
    assert _routed(new_lead(amount="100000")).responsible == sales["vera"]
    assert _routed(new_lead(amount="1000000")).responsible == sales["vera"]
    assert _routed(new_lead(amount="99999.99")).responsible == sales["anna"]
    assert _routed(new_lead(amount="1000000.01")).responsible == sales["anna"]
    assert _routed(new_lead()).responsible == sales["anna"]


def test_product_words_are_found_in_the_leads_product_or_service(sales, rule, new_lead):
    rule(name="CRM", products=["crm", "Implementation"], target_user_id=sales["boris"].pk)
    rule(name="Rest", target_user_id=sales["anna"].pk)
    assert _routed(new_lead(interest="CRM licences for 20 seats")).responsible == sales["boris"]
    assert _routed(new_lead(interest="ERP implementation")).responsible == sales["boris"]
    assert _routed(new_lead(interest="Hosting")).responsible == sales["anna"]


def test_the_first_matching_rule_in_order_wins_and_inactive_rules_are_skipped(
    sales, rule, new_lead
):
    from rapport.routing.services import routing_rule_save, routing_rules_reorder

    broad = rule(name="Russia", countries=["RU"], target_user_id=sales["anna"].pk)
    narrow = rule(name="Moscow", phone_prefixes=["+7495"], target_user_id=sales["boris"].pk)
    assert _routed(new_lead(phone="+74951234567")).responsible == sales["anna"]
    routing_rules_reorder(actor=None, rule_ids=[narrow.pk, broad.pk])
    assert _routed(new_lead(phone="+74951234568")).responsible == sales["boris"]
    routing_rule_save(actor=None, rule=narrow, data={"is_active": False})
    assert _routed(new_lead(phone="+74951234569")).responsible == sales["anna"]


def test_round_robin_gives_thirty_leads_to_three_managers_ten_each(sales, rule, new_lead):
    rule(name="Sales", target_team_id=sales["team"].pk, method="round_robin")
    leads = [new_lead(f"Visitor {i}") for i in range(30)]
    outbox_dispatch()
    counts = {u.username: Lead.objects.filter(responsible=u).count() for u in sales["all"]}
    assert counts == {"anna": 10, "boris": 10, "vera": 10}
    order = [Lead.objects.get(pk=lead.pk).responsible.username for lead in leads[:6]]
    assert order == ["anna", "boris", "vera", "anna", "boris", "vera"]


def test_round_robin_skips_a_manager_on_absence_and_resumes_after(sales, rule, new_lead, away):
    rule(name="Sales", target_team_id=sales["team"].pk)
    absence = away(sales["boris"])
    leads = [new_lead(f"Visitor {i}") for i in range(4)]
    outbox_dispatch()
    got = [Lead.objects.get(pk=lead.pk).responsible.username for lead in leads]
    assert got == ["anna", "vera", "anna", "vera"]
    from rapport.routing.services import absence_cancel

    absence_cancel(actor=None, absence=absence)  # back early: in the turn again
    later = [_routed(new_lead(f"Later {i}")).responsible.username for i in range(3)]
    assert later == ["anna", "boris", "vera"]


def test_an_inactive_manager_is_skipped(sales, rule, new_lead, admin_user):
    from rapport.accounts.services import user_update

    user_update(actor=admin_user, user=sales["anna"], is_active=False)
    rule(name="Sales", target_team_id=sales["team"].pk)
    got = [_routed(new_lead(f"V{i}")).responsible.username for i in range(3)]
    assert got == ["boris", "vera", "boris"]


def test_least_busy_counts_open_leads_deals_and_tasks_of_present_members(
    sales, rule, new_lead, make_deal, away
):
    from rapport.activities.services import task_create

    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    for i in range(2):
        task_create(actor=anna, data={"title": f"Call back {i}"})
    make_deal(boris, "Boris's deal")
    done = task_create(actor=boris, data={"title": "Finished"})
    from rapport.activities.services import task_complete

    task_complete(actor=boris, task=done)  # closed work does not count
    for i in range(3):
        task_create(actor=vera, data={"title": f"Vera {i}"})
    rule(name="Sales", target_team_id=sales["team"].pk, method="least_busy")
    # anna 2, boris 1, vera 3
    assert _routed(new_lead("First")).responsible == boris  # boris 2 now
    assert _routed(new_lead("Second")).responsible == anna  # tie 2-2: lower id first
    # boris (2, the least busy) goes away keeping his work: only anna (3) and vera (3) count
    away(boris, hand_over_tasks=False, hand_over_leads=False, hand_over_deals=False)
    assert _routed(new_lead("Third")).responsible == anna
    assert _routed(new_lead("Fourth")).responsible == vera
    assert lead_route(lead=new_lead("Fifth"), dry_run=True) == anna


def test_a_returning_client_goes_to_the_manager_who_dealt_with_them_last(
    sales, rule, new_lead, make_person, make_deal
):
    from rapport.activities.services import interaction_log

    anna, boris = sales["anna"], sales["boris"]
    client = make_person(anna, "Olga", "Smirnova", phones=[{"raw": "+7 912 000 11 22"}])
    make_deal(anna, "First order", person_id=client.pk)
    interaction_log(
        actor=None,
        data={
            "kind": "call",
            "subject": "Follow-up",
            "person_id": client.pk,
            "responsible_id": boris.pk,
        },
    )
    rule(name="Everyone", target_user_id=sales["vera"].pk)
    lead = new_lead("Olga again", phone="+79120001122")
    assert lead.person_id == client.pk
    assert _routed(lead).responsible == boris


def test_a_returning_client_whose_manager_is_away_goes_by_the_table(
    sales, rule, new_lead, make_person, away
):
    anna = sales["anna"]
    make_person(anna, "Olga", "Smirnova", phones=[{"raw": "+7 912 000 11 22"}])
    rule(name="Everyone", target_user_id=sales["vera"].pk)
    away(anna)
    assert _routed(new_lead("Olga again", phone="+79120001122")).responsible == sales["vera"]


def test_an_absent_target_manager_passes_the_lead_to_the_next_matching_rule(
    sales, rule, new_lead, away
):
    rule(name="Vera's", target_user_id=sales["vera"].pk)
    rule(name="Fallback", target_user_id=sales["anna"].pk)
    away(sales["vera"])
    assert _routed(new_lead()).responsible == sales["anna"]


def test_nobody_present_leaves_the_lead_unassigned_and_notifies_the_head_once(
    sales, rule, new_lead, away, head, admin_user
):
    rule(name="Sales", target_team_id=sales["team"].pk)
    for user in sales["all"]:
        away(user)
    lead = _routed(new_lead("Nobody home"))
    assert lead.responsible is None
    notes = Notification.objects.filter(key__startswith=f"lead_unrouted:{lead.pk}:")
    assert sorted(n.user.username for n in notes) == ["helga", "root"]
    from rapport.routing.services import lead_assign_by_routing

    lead_assign_by_routing(lead=lead)  # routed again: still nobody, no second notification
    assert Notification.objects.filter(key__startswith=f"lead_unrouted:{lead.pk}:").count() == 2


def test_routing_assigns_through_lead_update_once_per_lead(sales, rule, new_lead, alice):
    rule(name="Sales", target_team_id=sales["team"].pk)
    lead = _routed(new_lead())
    assert lead.responsible == sales["anna"]
    assert lead.team == sales["team"]
    assert lead.version == 2
    audit = AuditEntry.objects.filter(object_type="lead", object_id=lead.pk, action="update")
    assert [a.changes["responsible"] for a in audit] == [[None, sales["anna"].pk]]
    outbox_dispatch()  # replays nothing
    lead.refresh_from_db()
    assert lead.responsible == sales["anna"]
    from rapport.core.models import HandlerRun

    assert HandlerRun.objects.filter(handler="routing.lead_created").count() == 1
    # A lead created by a user keeps its manager: routing leaves it alone.
    own = lead_create(actor=alice, data={"name": "Alice's own"})
    outbox_dispatch()
    own.refresh_from_db()
    assert own.responsible == alice


def test_assignee_pick_and_presence_helpers(sales, away):
    team = sales["team"]
    anna, boris, vera = sales["anna"], sales["boris"], sales["vera"]
    assert assignee_pick(team=team, method="round_robin") == anna
    assert assignee_pick(team=team, method="round_robin") == boris
    assert assignee_pick(team=team, method="round_robin", dry_run=True) == vera
    assert assignee_pick(team=team, method="round_robin", exclude=[vera]) == anna
    away(boris)
    assert user_is_absent(boris)
    assert not user_is_absent(anna)
    assert present(sales["all"]) == [anna, vera]
    assert assignee_pick(team=team, method="least_busy", exclude=[anna.pk]) == vera


def test_rules_read_as_sentences(sales, rule):
    r = rule(
        name="Moscow big CRM",
        countries=["AZ"],
        phone_prefixes=["+7495"],
        channels=["web_form"],
        sources=["google"],
        amount_min="100000",
        products=["CRM"],
        target_team_id=sales["team"].pk,
        method="least_busy",
    )
    text = rule_sentence(r)
    assert text.startswith(
        "If the phone or the client's country is AZ or the phone starts with +7495"
    )
    assert "website form" in text
    assert "the amount is at least 100,000" in text or "the amount is at least 100" in text
    assert "“CRM”" in text
    assert text.endswith("it goes to the least busy member of Sales.")
    assert rule_sentence(rule(name="All", target_user_id=sales["anna"].pk)) == (
        "Any new lead: it goes to Anna."
    )


def test_a_rule_refuses_bad_conditions_naming_the_field(sales):
    import pytest

    from rapport.core.errors import FieldErrors
    from rapport.routing.services import routing_rule_save

    with pytest.raises(FieldErrors) as exc:
        routing_rule_save(
            actor=None,
            data={
                "name": "",
                "countries": ["XX"],
                "phone_prefixes": ["495"],
                "channels": ["pigeon"],
                "amount_min": "10",
                "amount_max": "5",
            },
        )
    assert set(exc.value.errors) == {
        "name",
        "countries",
        "phone_prefixes",
        "channels",
        "amount_max",
        "target_user_id",
    }
    assert "XX" in exc.value.errors["countries"][0]
    with pytest.raises(FieldErrors) as both:
        routing_rule_save(
            actor=None,
            data={
                "name": "Both",
                "target_user_id": sales["anna"].pk,
                "target_team_id": sales["team"].pk,
            },
        )
    assert "target_team_id" in both.value.errors
