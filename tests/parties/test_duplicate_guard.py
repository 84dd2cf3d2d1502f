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


# ------------------------------------------------------------------ recall by name alone


@pytest.fixture
def kuznetsov(alice, make_person):
    return make_person(alice, "Ivan", "Kuznetsov")


@pytest.mark.parametrize(
    "name",
    [
        "Kuzentsov Ivan",  # two letters swapped inside the first four
        "Ivan Kyznetsov",  # a letter changed in the first three
        "Juznetsov Ivan",  # the first letter changed
        "Uznetsov Ivan",  # the first letter dropped
        "Kkuznetsov Ivan",  # a letter added in front
        "Kuznetsov Ivna",  # a typo in the first name
        "Kuznetsov Yvan",  # the first letter of the first name
        "Ivan Kuznetsov",  # the other word order
        "Кузнецов Иван",  # the other alphabet
        "Кузнецоф Иван",  # the other alphabet with a typo
        "Kuznecov Ivan",  # another transliteration
        "Kuznetsov Ivan Petrovich",  # an extra patronymic
    ],
)
def test_a_person_is_found_by_name_alone_despite_a_typo_order_alphabet_or_patronymic(
    alice, kuznetsov, name
):
    found = find_duplicates(object_type="person", name=name, user=alice)
    assert [c.object_id for c in found] == [kuznetsov.pk], name
    assert found[0].score >= 85


@pytest.mark.parametrize(
    "name",
    [
        "Kuznetsov Ivan",  # the patronymic left out
        "Кузнецов Иван Петрович",  # the other alphabet
        "Kuznetsov Ivan Petrovihc",  # a typo in the patronymic
        "Kyznetsov Ivan Petrovich",  # a typo at the start of the surname
        "Petrovich Ivan Kuznetsov",  # another order
    ],
)
def test_a_person_with_a_patronymic_is_found_without_it_or_with_a_typo(alice, make_person, name):
    ivan = make_person(alice, "Иван", "Кузнецов", middle_name="Петрович")
    found = find_duplicates(object_type="person", name=name, user=alice)
    assert [c.object_id for c in found] == [ivan.pk], name


@pytest.mark.parametrize(
    "name",
    [
        "Romashka Plus LLC",
        "Ромашка Плюс АО",
        '"Ромашка-Плюс"',
        "Плюс Ромашка",
        "Ромашко Плюс ООО",  # a typo
        "ООО «Ромашка Плюс Сервис»",  # a word more
        "Romashka Plus S.r.l.",
    ],
)
def test_a_company_is_found_by_name_whatever_the_legal_form_order_alphabet_or_typo(
    alice, make_company, name
):
    company = make_company(alice, "ООО «Ромашка Плюс»")
    found = find_duplicates(object_type="company", name=name, user=alice)
    assert [c.object_id for c in found] == [company.pk], name


def test_a_one_word_company_is_found_with_a_typo_at_its_start(alice, make_company):
    company = make_company(alice, "Ромашка ООО")
    found = find_duplicates(object_type="company", name="Pomashka LLC", user=alice)
    assert [c.object_id for c in found] == [company.pk]


def test_short_names_with_a_typo_are_found(alice, make_person):
    ali = make_person(alice, "Ali", "Abdurakhmanov")
    found = find_duplicates(object_type="person", name="Abdurakhmanov Aly", user=alice)
    assert [c.object_id for c in found] == [ali.pk]


def test_similar_but_different_people_are_not_duplicates(alice, kuznetsov, make_person):
    make_person(alice, "Maria", "Kuznetsova")
    make_person(alice, "Ivan", "Smirnov")
    assert find_duplicates(object_type="person", name="Petr Kuznetsov", user=alice) == []
    assert find_duplicates(object_type="person", name="Ivan Kuzmin", user=alice) == []


def test_a_renamed_person_is_found_under_the_new_name_only(alice, kuznetsov):
    from rapport.parties.services import person_update

    person_update(actor=alice, person=kuznetsov, data={"last_name": "Sokolov"})
    assert [
        c.object_id for c in find_duplicates(object_type="person", name="Ivan Sokolv", user=alice)
    ] == [kuznetsov.pk]
    assert find_duplicates(object_type="person", name="Ivan Kuzentsov", user=alice) == []


def test_a_renamed_company_is_found_under_the_new_name_only(alice, romashka):
    from rapport.parties.services import company_update

    company_update(actor=alice, company=romashka, data={"short_name": "Василёк ООО"})
    found = find_duplicates(object_type="company", name="Vasilek LLC", user=alice)
    assert [c.object_id for c in found] == [romashka.pk]
    assert find_duplicates(object_type="company", name="Romashka", user=alice) == []


def test_a_restored_person_is_found_again_by_a_misspelt_name(admin_user, alice, kuznetsov):
    from rapport.parties.services import party_delete, party_restore

    party_delete(actor=alice, obj=kuznetsov)
    assert find_duplicates(object_type="person", name="Kuzentsov Ivan", user=alice) == []
    party_restore(actor=admin_user, obj=kuznetsov)
    found = find_duplicates(object_type="person", name="Kuzentsov Ivan", user=alice)
    assert [c.object_id for c in found] == [kuznetsov.pk]


def test_a_misspelt_name_outside_the_users_scope_is_shown_without_its_name(carol, kuznetsov):
    found = find_duplicates(object_type="person", name="Kuzentsov Ivan", user=carol)
    assert [c.object_id for c in found] == [kuznetsov.pk]
    shown = found[0].as_dict()
    assert shown["id"] is None
    assert "Kuznetsov" not in shown["title"]


def test_the_same_name_comes_first_among_many_similar_ones(alice, make_company):
    """Of 25 numbered companies a dozen are one letter from "Компания21": the guard shows
    ten, and the company of that very name is the first of them, not cut off."""
    companies = {i: make_company(alice, f"ООО Компания{i}") for i in range(25)}
    found = find_duplicates(object_type="company", name="ООО Компания21", user=alice)
    assert len(found) == 10
    assert found[0].object_id == companies[21].pk
