"""Name keys for the duplicate guard: the same company or person, however written."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.core.names import (
    LEGAL_FORMS,
    name_block_keys,
    name_key,
    name_probe_keys,
    name_similarity,
    name_tokens,
    person_full_name,
    recase,
    split_full_name,
    strip_legal_form,
)

# ----------------------------------------------------------------- companies


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ООО «Ромашка»", "Ромашка ООО"),
        ("ООО «Ромашка»", "romashka llc"),
        ('ООО "Ромашка"', "Ромашка, ООО"),
        ("Общество с ограниченной ответственностью «Ромашка»", "ООО Ромашка"),
        ("АО Устинов", "Устинов АО"),
        ("Antonello Professore SRL", "Antonello Professore S.r.l."),
        ("Antonello Professore srl", "ANTONELLO PROFESSORE S.R.L."),
        ("Ferrari S.p.A.", "Ferrari SpA"),
        ("Nur MMC", "Nur"),
        ("Salamoğlu Getdi mmc", "Salamoglu Getdi MMC"),
        ("شركة النور المحدودة", "النور ذ.م.م"),
        ("Garza Inc.", "Garza, Inc"),
        ("Acme Co., Ltd.", "ACME LTD"),
        ("Ёлка ООО", "Елка"),
    ],
)
def test_the_same_company_written_differently_has_one_key(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)
    assert name_key(a)
    assert name_similarity(a, b) == 100


@pytest.mark.parametrize(
    ("name", "core", "form"),
    [
        ("ООО «Ромашка»", "Ромашка", "ООО"),
        ("Ромашка ООО", "Ромашка", "ООО"),
        ("Ромашка, АО", "Ромашка", "АО"),
        ("Antonello Professore SRL", "Antonello Professore", "S.r.l."),
        ("Antonello Professore S.r.l.", "Antonello Professore", "S.r.l."),
        ("Nur MMC", "Nur", "MMC"),
        ("Romashka LLC", "Romashka", "LLC"),
        ("شركة النور المحدودة", "النور", "ذ.م.م"),
        ("النور ذ.م.م", "النور", "ذ.م.م"),
        ("Garza Inc.", "Garza", "Inc."),
        ("Rossi Costruzioni", "Rossi Costruzioni", None),
        ("«Ромашка»", "Ромашка", None),
        ("ООО", "ООО", None),
        ("", "", None),
    ],
)
def test_strip_legal_form(name: str, core: str, form: str | None) -> None:
    assert strip_legal_form(name) == (core, form)


def test_legal_forms_are_stored_normalised() -> None:
    for form in ("ооо", "ао", "ип", "llc", "srl", "spa", "mmc", "gmbh", "ذمم", "شركة"):
        assert form in LEGAL_FORMS
    assert all(form == form.lower() and "." not in form for form in LEGAL_FORMS)


def test_a_legal_form_inside_the_name_is_kept() -> None:
    assert name_key("Banca Spa Termale Srl") == "banca spa termale"


def test_different_companies_stay_apart() -> None:
    assert name_key("ООО Ромашка") != name_key("ООО Василек")
    assert name_similarity("ООО Ромашка", "ООО Василек") < 60


# ------------------------------------------------------------------- people


def test_tokens_are_ascii_lowercase_sorted_without_punctuation() -> None:
    assert name_tokens("  Иванов   Иван  ") == ["ivan", "ivanov"]
    assert name_tokens("Şükürov Kamal") == ["kamal", "sukurov"]
    assert name_tokens("«O'Neil», Patrick!") == ["oneil", "patrick"]
    assert name_tokens("Фёдоров") == ["fedorov"]
    assert name_tokens("") == []
    assert name_tokens(" — ") == []


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Иванов Иван", "Иван Иванов"),
        ("IVANOV IVAN", "Ivan Ivanov"),
        ("Kamal Şükürov", "Şükürov Kamal"),
        ("  Nanni   Cendron ", "Cendron Nanni"),
    ],
)
def test_word_order_case_and_spaces_do_not_matter(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)
    assert name_similarity(a, b) == 100


def test_cyrillic_and_latin_spellings_match() -> None:
    assert name_similarity("Иванов Иван", "Ivanov Ivan") >= 90
    assert name_similarity("Сергей Кузнецов", "Sergey Kuznetsov") >= 90
    assert name_similarity("Hüseynbəyli Xudayar", "Xudayar Huseynbeyli") >= 90


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ivan Ivanov", "Ivan Ivanv"),
        ("Anna Smith", "Anna Smyth"),
        ("Maria Rossi", "Maria Bossi"),  # the typo moves the surname in sorted order
        ("Януарий Панфилов", "Януарйи Панфилов"),
        ("Giovanni Bianchi", "Giovani Bianchi"),
    ],
)
def test_a_one_letter_typo_in_a_person_name_still_matches(a: str, b: str) -> None:
    assert name_similarity(a, b) >= 90


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Ivan Ivanov", "Ivan Petrov"),
        ("Giovanni Bianchi", "Giovanni Rossi"),
        ("John Smith", "John Brown"),
        ("Иван Кузнецов", "Иван Соколов"),
    ],
)
def test_different_people_with_the_same_first_name_do_not_match(a: str, b: str) -> None:
    assert name_similarity(a, b) < 80


def test_patronymic_left_out_still_matches() -> None:
    assert name_similarity("Иванов Иван Иванович", "Иванов Иван") >= 90
    assert name_similarity("Иван", "Иван Петров") < 90


def test_similarity_of_empty_names_is_zero() -> None:
    assert name_similarity("", "Ivan") == 0
    assert name_similarity("—", "—") == 0


# ------------------------------------------------------------ splitting names


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("Иванов Иван Иванович", ("Иван", "Иванов", "Иванович")),
        ("Иван Иванович Иванов", ("Иван", "Иванов", "Иванович")),
        ("Петрова Анна Сергеевна", ("Анна", "Петрова", "Сергеевна")),
        ("Ivan Ivanov", ("Ivan", "Ivanov", "")),
        ("IVANOV IVAN", ("Ivan", "Ivanov", "")),
        ("IVANOV  IVAN  IVANOVICH", ("Ivan", "Ivanov", "Ivanovich")),
        ("Иванов Иван", ("Иван", "Иванов", "")),
        ("Şükürov Kamal", ("Kamal", "Şükürov", "")),
        ("Məmmədov Əli Həsən oğlu", ("Əli", "Məmmədov", "Həsən oğlu")),
        ("Əliyeva Leyla Rəşid qızı", ("Leyla", "Əliyeva", "Rəşid qızı")),
        ("Xudayar Hüseynbəyli", ("Xudayar", "Hüseynbəyli", "")),
        ("Maria de la Cruz", ("Maria", "de la Cruz", "")),
        ("Ludwig van Beethoven", ("Ludwig", "van Beethoven", "")),
        ("Ivanov, Ivan Petrovich", ("Ivan", "Ivanov", "Petrovich")),
        ("Martin Smith", ("Martin", "Smith", "")),
        ("Madonna", ("Madonna", "", "")),
        ("   ", ("", "", "")),
    ],
)
def test_split_full_name(full: str, expected: tuple[str, str, str]) -> None:
    assert split_full_name(full) == expected


def test_split_and_join_round_trip() -> None:
    full = person_full_name(first="Иван", last="Иванов", middle="Иванович")
    assert full == "Иван Иванович Иванов"
    assert split_full_name(full) == ("Иван", "Иванов", "Иванович")
    assert person_full_name(first=" Ivan ", last="Ivanov") == "Ivan Ivanov"
    assert person_full_name(first="", last="Ivanov") == "Ivanov"


@pytest.mark.parametrize(
    ("typed", "recased"),
    [
        ("IVANOV", "Ivanov"),
        ("ivanov ivan", "Ivanov Ivan"),
        ("o'neil", "O'Neil"),
        ("McDonald", "McDonald"),
        ("IVANOV Ivan", "Ivanov Ivan"),
        ("DE LA CRUZ MARIA", "de la Cruz Maria"),
        ("VAN BEETHOVEN", "van Beethoven"),
        ("AHMED AL-NUR", "Ahmed al-Nur"),
        ("JEAN-PIERRE", "Jean-Pierre"),
        ("İSMAYILOV ELÇİN", "İsmayılov Elçin"),
        ("ƏLİYEV HƏSƏN OĞLU", "Əliyev Həsən oğlu"),
        ("ПЕТРОВА АННА", "Петрова Анна"),
        ("", ""),
    ],
)
def test_recase(typed: str, recased: str) -> None:
    assert recase(typed) == recased


# ----------------------------------------------------------------- robustness


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_name_functions_never_raise(text: str) -> None:
    key = name_key(text)
    assert key == key.strip()
    assert key.isascii()
    strip_legal_form(text)
    split_full_name(text)
    recase(text)
    assert 0 <= name_similarity(text, "Ivan Ivanov") <= 100


# ------------------------------------------------------------------ blocking keys


def _one_typo_away(word: str) -> set[str]:
    """Every word one letter changed, added, dropped, or two neighbours swapped."""
    out: set[str] = set()
    for i in range(len(word) + 1):
        out.add(word[:i] + "x" + word[i:])
        if i < len(word):
            out.add(word[:i] + word[i + 1 :])
            out.add(word[:i] + "x" + word[i + 1 :])
        if i < len(word) - 1:
            out.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    out.discard(word)
    return {w for w in out if w}


def _shares_a_block_key(stored: str, typed: str) -> bool:
    return bool(set(name_block_keys(name_key(stored))) & set(name_probe_keys(name_key(typed))))


@pytest.mark.parametrize(
    "stored",
    ["Kuznetsov Ivan", "Rossi Maria Grazia", "Ali Abdurakhmanov", "Ромашка", "Li Na", "Qi"],
)
def test_one_typo_anywhere_in_a_name_keeps_a_block_key_in_common(stored: str) -> None:
    words = name_key(stored).split()
    for i, word in enumerate(words):
        for typo in _one_typo_away(word):
            typed = " ".join([*words[:i], typo, *words[i + 1 :]])
            assert _shares_a_block_key(stored, typed), typed


@pytest.mark.parametrize(
    ("stored", "typed"),
    [
        ("Кузнецов Иван Петрович", "Kuznetsov Ivan"),  # a word less, the other alphabet
        ("Kuznetsov Ivan", "Иван Петрович Кузнецов"),  # a word more, another order
        ("ООО «Ромашка Плюс»", "Romashka Plus LLC"),
        ("Rossi Maria Grazia Anna", "Maria Grazia Rossi"),
    ],
)
def test_a_word_more_or_less_keeps_a_block_key_in_common(stored: str, typed: str) -> None:
    assert _shares_a_block_key(stored, typed)


@pytest.mark.parametrize(
    ("stored", "typed"),
    [
        ("Kuznetsov Ivan", "Smirnov Ivan"),
        ("Kuznetsov Ivan", "Kuznetsov Petr"),
        ("Ромашка", "Лютик"),
    ],
)
def test_different_names_share_no_block_key(stored: str, typed: str) -> None:
    assert not _shares_a_block_key(stored, typed)


def test_block_keys_are_64_bit_and_stable() -> None:
    keys = name_block_keys("ivan kuznetsov")
    assert keys == name_block_keys("ivan kuznetsov")
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert name_block_keys("") == ()
    assert name_probe_keys("") == ()
