"""Pages speak the user's language; Arabic renders right to left."""

from __future__ import annotations


def test_a_russian_user_gets_russian_pages(alice, client_for):
    from rapport.accounts.services import user_update

    user_update(actor=alice, user=alice, language="ru")
    html = client_for(alice).get("/companies/").content.decode()
    assert 'lang="ru"' in html
    assert 'dir="ltr"' in html
    assert "Компании" in html


def test_an_arabic_user_gets_a_right_to_left_page(alice, client_for):
    from rapport.accounts.services import user_update

    user_update(actor=alice, user=alice, language="ar")
    html = client_for(alice).get("/companies/").content.decode()
    assert 'lang="ar"' in html
    assert 'dir="rtl"' in html
    assert "الشركات" in html


def test_validation_messages_come_in_the_users_language(alice, client_for):
    from rapport.accounts.services import user_update

    user_update(actor=alice, user=alice, language="ru")
    r = client_for(alice).post(
        "/api/v1/companies", data='{"short_name": ""}', content_type="application/json"
    )
    assert r.status_code == 422
    assert "Обязательное поле" in r.json()["error"]["fields"]["short_name"][0]


def test_every_catalogue_compiles_for_the_five_languages():
    from pathlib import Path

    import rapport

    locale = Path(rapport.__file__).parent / "locale"
    for lang in ("ru", "ar", "az", "it"):
        assert (locale / lang / "LC_MESSAGES" / "django.mo").exists(), lang
