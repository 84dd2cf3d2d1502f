"""Templates render in the sandbox (no way to Python internals); subjects and recipients with
line breaks are refused (header injection)."""

from __future__ import annotations

import pytest

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ().__class__.__base__.__subclasses__() }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ client.name.__class__.__init__.__globals__ }}",
    "{{ (client|attr('__class__')).__mro__ }}",
    "{{ client.update({'x': 1}) }}",
    "{% set _ = client.pop('name') %}{{ client }}",
    "{{ 'x' * 1000000000 }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 2 ** 1000 }}",
    "{{ 'a'.ljust(1000000000) }}",
]


# Not refused, but they render nothing of Python's insides.
HARMLESS = [
    "{{ ''.__class__ }}",
    "{{ range.__self__ }}",
    "{{ ''.format.__globals__ }}",
    "{{ lipsum.__name__ }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_a_template_cannot_reach_python_internals(payload):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.templating import render

    context = {"client": {"name": "Maria"}}
    with pytest.raises(FieldErrors) as exc:
        render(payload, context)
    assert "body" in exc.value.errors
    assert context == {"client": {"name": "Maria"}}


@pytest.mark.parametrize("payload", HARMLESS)
def test_harmless_lookups_render_nothing_of_python_internals(payload):
    from rapport.messaging.templating import render

    output = render(payload, {})
    for leak in ("class", "module", "uid=", "function", "built-in", "subclasses", "lipsum"):
        assert leak not in output


def test_a_template_renders_record_data_and_filters():
    from rapport.messaging.templating import SAMPLE_CONTEXT, render

    text = "Hello {{ client.first_name }}, {{ deal.title|upper }} {% if deal.amount %}ok{% endif %}"
    assert render(text, SAMPLE_CONTEXT) == "Hello Maria, FLEET TRACKING, 40 VEHICLES ok"
    assert render("{{ missing }}|{{ client.nothing }}", SAMPLE_CONTEXT) == "|"


def test_a_template_with_a_syntax_error_is_refused_when_saved(admin_user):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.services import template_create
    from rapport.messaging.templating import template_check

    with pytest.raises(FieldErrors) as exc:
        template_check("Hello {{ client.name ", "body")
    assert "line 1" in exc.value.errors["body"][0]
    with pytest.raises(FieldErrors) as exc:
        template_create(
            actor=admin_user,
            data={"name": "Offer", "subject": "{% if %}", "body": "Hi {% for x in y %}"},
        )
    assert set(exc.value.errors) == {"subject", "body"}


def test_a_rendered_subject_with_a_line_break_is_refused(admin_user):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.services import template_create, template_render

    template = template_create(
        actor=admin_user,
        data={"name": "Offer", "subject": "Offer for {{ client.name }}", "body": "Hi"},
    )
    assert template_render(template, {"client": {"name": "Maria"}}) == ("Offer for Maria", "Hi")
    with pytest.raises(FieldErrors) as exc:
        template_render(template, {"client": {"name": "Maria\r\nBcc: all@example.com"}})
    assert "subject" in exc.value.errors


def test_a_template_subject_typed_with_a_line_break_is_refused(admin_user):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.services import template_create

    with pytest.raises(FieldErrors) as exc:
        template_create(actor=admin_user, data={"name": "X", "subject": "a\nb", "body": "Hi"})
    assert "subject" in exc.value.errors


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("subject", {"subject": "Hello\r\nBcc: victim@example.com"}),
        ("subject", {"subject": "Hello\nX-Injected: 1"}),
        ("to", {"to": "maria@example.com\r\nBcc: victim@example.com"}),
        ("to", {"to": ["maria@example.com\nBcc: victim@example.com"]}),
        ("to", {"to": ["not-an-address"]}),
        ("to", {"to": []}),
        ("key", {"key": "rule:1\nx"}),
        ("kind", {"kind": "fax"}),
    ],
)
def test_header_injection_and_bad_input_are_refused_naming_the_field(db, field, kwargs):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.models import OutgoingMessage
    from rapport.messaging.services import message_enqueue

    data = {"kind": "email", "key": "rule:1:event:1:action:1", "to": ["maria@example.com"]}
    data.update({"subject": "Hi", "body": "Text"})
    data.update(kwargs)
    with pytest.raises(FieldErrors) as exc:
        message_enqueue(**data)
    assert field in exc.value.errors
    assert not OutgoingMessage.objects.exists()


def test_recipients_are_normalised_and_deduplicated(db):
    from rapport.messaging.services import message_enqueue

    message = message_enqueue(
        kind="email",
        key="k1",
        to="Maria <Maria.Rossi@Example.com>; maria.rossi@example.com, ivan@example.com",
        subject="Hi",
    )
    assert message.recipients == ["maria.rossi@example.com", "ivan@example.com"]
