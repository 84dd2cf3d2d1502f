"""The card's related lists filter through the join and keep the scope rule exactly."""

from __future__ import annotations

import pytest
from django.http import Http404

from rapport.parties import selectors
from rapport.parties.models import ContactPoint, Employment, PersonRelation
from rapport.parties.services import (
    company_relation_create,
    party_delete,
    person_relation_create,
)


@pytest.fixture
def card(alice, bob, carol, make_company, make_person):
    acme = make_company(alice, "Acme", phones=[{"raw": "+7 495 123-45-67"}])
    mine = make_person(bob, "Boris", "Own", phones=[{"raw": "+7 912 000-00-01"}])
    teams = make_person(alice, "Anna", "Team")
    theirs = make_person(carol, "Carla", "Other", phones=[{"raw": "+7 912 000-00-02"}])
    gone = make_person(alice, "Gleb", "Gone")
    for p in (mine, teams, theirs, gone):
        Employment.objects.create(person=p, company=acme)
    party_delete(actor=alice, obj=gone)
    other = make_company(carol, "Carol's")
    company_relation_create(actor=None, from_company=acme, to_company=other, kind="partner")
    person_relation_create(actor=None, from_person=teams, to_person=theirs, kind="knows")
    return {"acme": acme, "mine": mine, "teams": teams, "theirs": theirs, "other": other}


def _people(user, card):
    return {e.person.last_name for e in selectors.company_people(user=user, company=card["acme"])}


def test_company_people_shows_what_each_role_may_see_and_never_the_deleted(alice, bob, carol, card):
    assert _people(alice, card) == {"Own", "Team"}  # team scope: team A, not team B, not deleted
    assert _people(bob, card) == {"Own"}  # own scope
    assert _people(carol, card) == {"Other"}


def test_relations_show_only_visible_other_ends(alice, carol, card):
    assert selectors.company_relations(user=alice, company=card["acme"]) == []
    assert [
        o.pk for _d, _r, o in selectors.company_relations(user=carol, company=card["acme"])
    ] == [card["other"].pk]
    assert selectors.person_relations(user=alice, person=card["teams"]) == []
    assert [o.pk for _d, _r, o in selectors.person_relations(user=carol, person=card["teams"])] == [
        card["theirs"].pk
    ]
    assert selectors.person_relations(user=carol, person=card["theirs"]) == []


def test_a_relation_is_found_only_when_both_ends_are_visible(alice, admin_user, card):
    pk = PersonRelation.objects.get().pk
    with pytest.raises(Http404):
        selectors.person_relation_get(user=alice, relation_id=pk)
    assert selectors.person_relation_get(user=admin_user, relation_id=pk).pk == pk


def test_contact_points_follow_their_owners_scope(bob, carol, card):
    def values(user):
        return set(selectors.contact_point_list(user=user).values_list("value", flat=True))

    assert values(bob) == {"+79120000001"}
    assert values(carol) == {"+79120000002"}
    assert not ContactPoint.objects.filter(company__isnull=True, person__isnull=True).exists()
