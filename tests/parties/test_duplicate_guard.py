"""The duplicate guard finds likely duplicates and says why."""

from __future__ import annotations

import pytest

from rapport.parties.duplicates import find_duplicates


@pytest.fixture
def romashka(alice, make_company):
    return make_company(
        alice,
        "ООО «Ромашка»",
        tax_id="7707083893",
        tax_country="RU",
        phones=[{"raw": "+7 495 123-45-67"}],
        emails=[{"raw": "info@romashka.ru"}],
    )


@pytest.mark.parametrize(
    "name", ["Ромашка ООО", "ромашка", "Romashka LLC", "АО Ромашка", '"Ромашка"']
)
def test_company_names_match_whatever_the_legal_form_quotes_case_or_alphabet(alice, romashka, name):
    found = find_duplicates(object_type="company", name=name, user=alice)
    assert [c.object_id for c in found] == [romashka.pk]
    assert found[0].score >= 85


def test_same_tax_id_is_the_strongest_reason(alice, romashka):
    found = find_duplicates(
        object_type="company", name="Something else", tax_id="7707083893", user=alice
    )
    assert found[0].object_id == romashka.pk
    assert found[0].score == 100
    assert "same tax id" in found[0].reasons


def test_same_phone_and_email_are_reasons(alice, romashka):
    found = find_duplicates(
        object_type="company",
        name="Other",
        phones=["+74951234567"],
        emails=["INFO@romashka.ru"],
        user=alice,
    )
    assert found[0].object_id == romashka.pk
    assert any("phone" in r for r in found[0].reasons)
    assert any("email" in r for r in found[0].reasons)


def test_person_names_in_any_order_or_alphabet_match(alice, make_person):
    ivan = make_person(alice, "Иван", "Петров")
    for name in ("Petrov Ivan", "Ivan Petrov", "ПЕТРОВ ИВАН", "Петров Иван"):
        found = find_duplicates(object_type="person", name=name, user=alice)
        assert [c.object_id for c in found] == [ivan.pk], name


def test_a_one_letter_typo_still_matches_but_a_different_person_does_not(alice, make_person):
    maria = make_person(alice, "Maria", "Rossini")
    assert (
        find_duplicates(object_type="person", name="Maria Rosini", user=alice)[0].object_id
        == maria.pk
    )
    assert find_duplicates(object_type="person", name="Maria Petrova", user=alice) == []


def test_a_candidate_outside_the_users_scope_is_shown_without_its_name(carol, romashka):
    found = find_duplicates(object_type="company", name="Ромашка", user=carol)
    assert found
    assert found[0].visible is False
    shown = found[0].as_dict()
    assert shown["id"] is None
    assert "Ромашка" not in shown["title"]


def test_deleted_records_are_not_duplicates(alice, romashka):
    from rapport.parties.services import party_delete

    party_delete(actor=alice, obj=romashka)
    assert (
        find_duplicates(object_type="company", name="Ромашка", tax_id="7707083893", user=alice)
        == []
    )


@pytest.mark.parametrize(
    "name",
    [
        "Alexsandrov Sergei",  # a typo in the first token of the key, after its 4th letter
        "Alexandrov Sergej",  # a typo in the second
        "Sergei Alexandrov Ivanovich",  # an extra patronymic
    ],
)
def test_typos_and_an_extra_patronymic_still_match(alice, make_person, name):
    sergei = make_person(alice, "Sergei", "Alexandrov")
    found = find_duplicates(object_type="person", name=name, user=alice)
    assert [c.object_id for c in found] == [sergei.pk], name


def test_a_missing_patronymic_still_matches(alice, make_person):
    ivan = make_person(alice, "Иван", "Петров", middle_name="Сергеевич")
    found = find_duplicates(object_type="person", name="Petrov Ivan", user=alice)
    assert [c.object_id for c in found] == [ivan.pk]


def test_only_the_best_are_loaded_and_shown(alice, make_person):
    people = [make_person(alice, "Anna", "Ricci", middle_name=f"M{i}") for i in range(12)]
    found = find_duplicates(object_type="person", name="Anna Ricci", user=alice, limit=10)
    assert len(found) == 10
    assert [c.object_id for c in found] == sorted(p.pk for p in people)[:10]
