"""R10 on the pages: two people edit the same company or person from stale forms.

Each user opens the real edit page and submits the form exactly as the page rendered it (every
input, textarea and selected option, and the hidden version), changing only what they typed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from rapport.parties.models import Company, Person


class PageForm(HTMLParser):
    """The fields a browser would submit from the page's edit form (the one with a version)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[list[tuple[str, str]]] = []
        self._textarea: str | None = None
        self._text = ""
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._multiple = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append([])
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("submit", "button", "reset", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "textarea":
            self._textarea, self._text = a.get("name", ""), ""
        elif tag == "select":
            self._select, self._options, self._multiple = a.get("name", ""), [], "multiple" in a
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            # A browser drops the newline right after <textarea>.
            text = self._text[1:] if self._text.startswith("\n") else self._text
            self.forms[-1].append((self._textarea, text))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = [v for v, selected in self._options if selected]
            if not chosen and not self._multiple and self._options:
                chosen = [self._options[0][0]]
            self.forms[-1].extend((self._select, v) for v in chosen)
            self._select = None

    @classmethod
    def edit_form(cls, html: str) -> dict[str, list[str]]:
        parser = cls()
        parser.feed(html)
        form = next(f for f in parser.forms if any(name == "version" for name, _v in f))
        out: dict[str, list[str]] = {}
        for name, value in form:
            out.setdefault(name, []).append(value)
        return out


def open_edit_page(client: Client, url: str) -> dict[str, list[str]]:
    r = client.get(url)
    assert r.status_code == 200
    return PageForm.edit_form(r.content.decode())


def save(client: Client, url: str, form: dict[str, list[str]], **typed: str) -> Any:
    data = {**form, **{k: [v] for k, v in typed.items()}, "force": ["0"]}
    return client.post(url, data)


def field_value(html: str, name: str) -> str:
    form = PageForm.edit_form(html)
    return form[name][0]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Users are logged in with force_login; their passwords need no million rounds here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def editors(alice, admin_user, client_for) -> tuple[Client, Client]:
    """User A (Alice, manager of team A) and user B (an administrator): both may edit."""
    return client_for(alice), client_for(admin_user)


@pytest.fixture(params=["company", "person"])
def record(request, alice, make_company, make_person) -> tuple[type[Any], Any, str]:
    if request.param == "company":
        obj = make_company(alice, "Volga Trade", city="Samara", notes="")
        return Company, obj, f"/companies/{obj.pk}/edit/"
    obj = make_person(alice, "Ivan", "Petrov", city="Samara", notes="")
    return Person, obj, f"/people/{obj.pk}/edit/"


def test_changes_to_different_fields_from_stale_forms_are_both_kept(editors, record):
    a, b = editors
    model, obj, url = record
    # given both open the edit page
    form_a = open_edit_page(a, url)
    form_b = open_edit_page(b, url)
    assert form_a["version"] == form_b["version"] == [str(obj.version)]

    # when A changes the city, then B, from the stale form, changes the notes
    assert save(a, url, form_a, city="Kazan").status_code == 302
    r = save(b, url, form_b, notes="Call on Monday")

    # then B's save succeeds, is told about the merge, and both changes are kept
    assert r.status_code == 302
    page = b.get(r["Location"]).content.decode()
    assert "Someone else changed this record meanwhile" in page
    saved = model.objects.get(pk=obj.pk)
    assert (saved.city, saved.notes) == ("Kazan", "Call on Monday")
    assert saved.version == obj.version + 2


def test_the_same_field_changed_twice_is_a_conflict_showing_both_values(editors, record):
    a, b = editors
    model, obj, url = record
    form_a = open_edit_page(a, url)
    form_b = open_edit_page(b, url)

    # when A sets the city to Kazan, then B, from the stale form, sets it to Tver
    assert save(a, url, form_a, city="Kazan").status_code == 302
    r = save(b, url, form_b, city="Tver", notes="Moved")

    # then B sees a conflict with both values, and nothing of B's is saved over A's
    assert r.status_code == 409
    html = r.content.decode()
    conflicts = re.search(r'<div class="warning" id="conflicts".*?</div>\s*</div>', html, re.S)
    assert conflicts
    assert "city" in conflicts.group(0)
    assert "Kazan" in conflicts.group(0)
    assert "Tver" in conflicts.group(0)
    saved = model.objects.get(pk=obj.pk)
    assert (saved.city, saved.notes, saved.version) == ("Kazan", "", obj.version + 1)

    # and B's typed values are still in the form, which now carries the current version
    assert field_value(html, "city") == "Tver"
    assert field_value(html, "notes") == "Moved"
    assert field_value(html, "version") == str(saved.version)

    # when B saves again, B's value is taken knowingly
    again = b.post(url, {**PageForm.edit_form(html), "force": ["0"]})
    assert again.status_code == 302
    saved = model.objects.get(pk=obj.pk)
    assert (saved.city, saved.notes) == ("Tver", "Moved")


def test_a_stale_form_agreeing_with_the_other_change_is_not_a_conflict(editors, record):
    a, b = editors
    model, obj, url = record
    form_a = open_edit_page(a, url)
    form_b = open_edit_page(b, url)
    assert save(a, url, form_a, city="Kazan").status_code == 302
    assert save(b, url, form_b, city="Kazan", notes="Same idea").status_code == 302
    saved = model.objects.get(pk=obj.pk)
    assert (saved.city, saved.notes) == ("Kazan", "Same idea")


@pytest.mark.parametrize(
    ("field", "a_typed", "b_field", "b_typed"),
    [
        pytest.param("phones", "+7 495 111-22-33", "city", "Kazan"),
        pytest.param("tags", "vip", "city", "Kazan"),
        ("city", "Kazan", "phones", "+7 495 111-22-33"),
        ("city", "Kazan", "tags", "vip"),
    ],
)
def test_contact_details_and_tags_survive_a_stale_save(
    editors, record, field, a_typed, b_field, b_typed
):
    """Phones and tags are fields of the form too: a stale form must not put back old ones."""
    a, b = editors
    model, obj, url = record
    form_a = open_edit_page(a, url)
    form_b = open_edit_page(b, url)
    assert save(a, url, form_a, **{field: a_typed}).status_code == 302
    r = save(b, url, form_b, **{b_field: b_typed})
    assert r.status_code == 302
    after = open_edit_page(a, url)
    assert after[field] == [a_typed]
    assert after[b_field] == [b_typed]
