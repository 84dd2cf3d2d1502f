"""SMS through the HTTP gateway (a server on 127.0.0.1) and the log provider; webhooks with
an Idempotency-Key, retries and the SSRF guard."""

from __future__ import annotations

import json

import pytest
from tests.messaging.conftest import time_passes


@pytest.fixture
def gateway(http_server, channels):
    channels(
        sms_provider="http",
        sms_url=http_server.url + "/send",
        sms_auth_header="Authorization",
        sms_auth_value="Bearer s3cret",
        sms_body='{"to": {{ to|tojson }}, "text": {{ text|tojson }}, "ref": {{ key|tojson }}}',
        url_allowlist=f"127.0.0.1:{http_server.port}",
        max_attempts=3,
        retry_base_seconds=1,
    )
    return http_server


def _sms(key="rule:3:event:41:action:1", to="+7 912 341-96-15", body="Your order is ready"):
    from rapport.messaging.services import message_enqueue

    return message_enqueue(kind="sms", key=key, to=to, body=body, source="rule:3")


def test_an_sms_reaches_the_gateway_with_its_idempotency_key_and_text(db, gateway):
    from rapport.messaging.delivery import messages_deliver

    message = _sms()
    assert message.recipients == ["+79123419615"]
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "sent"
    [request] = gateway.requests
    assert (request["method"], request["path"]) == ("POST", "/send")
    assert request["headers"]["idempotency-key"] == message.key
    assert request["headers"]["authorization"] == "Bearer s3cret"
    assert json.loads(request["body"]) == {
        "to": "+79123419615",
        "text": "Your order is ready",
        "ref": message.key,
    }
    assert message.provider_response.startswith("200")


def test_a_gateway_that_takes_the_text_in_the_address_gets_it_encoded(db, gateway, channels):
    from rapport.messaging.delivery import messages_deliver

    channels(
        sms_method="GET", sms_url=gateway.url + "/send?to={{ to|urlencode }}&t={{ text|urlencode }}"
    )
    _sms(body="Привет & bye")
    messages_deliver()
    assert gateway.requests[0]["method"] == "GET"
    assert (
        gateway.requests[0]["path"]
        == "/send?to=%2B79123419615&t=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82%20%26%20bye"
    )


def test_a_busy_gateway_is_retried_with_the_same_key_and_a_refusal_fails_at_once(db, gateway):
    from rapport.messaging.delivery import messages_deliver

    gateway.replies = [(503, {}, b"busy")]
    first = _sms()
    messages_deliver()
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("pending", 1)
    assert "503" in first.last_error
    time_passes()
    messages_deliver()
    first.refresh_from_db()
    assert first.status == "sent"
    assert [r["headers"]["idempotency-key"] for r in gateway.requests] == [first.key] * 2

    gateway.replies = [(400, {}, b"bad number")]
    second = _sms(key="rule:3:event:42:action:1")
    messages_deliver()
    second.refresh_from_db()
    assert (second.status, second.attempts) == ("failed", 1)
    assert "bad number" in second.last_error


def test_a_gateway_on_a_private_address_is_refused_unless_allowed(db, gateway, channels):
    from rapport.messaging.delivery import messages_deliver

    channels(url_allowlist="")
    message = _sms()
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "failed"
    assert "local, private or reserved" in message.last_error
    assert gateway.requests == []


def test_the_log_provider_writes_the_sms_to_the_log(db, caplog):
    from rapport.messaging.delivery import messages_deliver

    message = _sms()
    with caplog.at_level("INFO", logger="rapport.messaging"):
        messages_deliver()
    message.refresh_from_db()
    assert (message.status, message.provider_response) == ("sent", "logged")
    assert "+79123419615" in caplog.text
    assert "Your order is ready" in caplog.text


def test_an_invalid_phone_number_is_refused_naming_the_recipients(db):
    from rapport.core.errors import FieldErrors

    with pytest.raises(FieldErrors) as exc:
        _sms(to="not a phone")
    assert "to" in exc.value.errors


def _hook(url, key="rule:9:event:77:action:1", payload=None):
    from rapport.messaging.services import message_enqueue

    return message_enqueue(
        kind="webhook",
        key=key,
        url=url,
        payload=payload if payload is not None else {"deal": {"id": 5, "amount": "120000.00"}},
        source="rule:9",
        object_type="deal",
        object_id=5,
    )


def test_a_webhook_posts_json_with_an_idempotency_key(db, http_server, channels):
    from rapport.messaging.delivery import messages_deliver

    channels(url_allowlist=f"127.0.0.1:{http_server.port}")
    message = _hook(http_server.url + "/hooks/crm")
    messages_deliver()
    message.refresh_from_db()
    assert message.status == "sent"
    [request] = http_server.requests
    assert request["method"] == "POST"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["idempotency-key"] == "rule:9:event:77:action:1"
    assert http_server.json() == {"deal": {"id": 5, "amount": "120000.00"}}


def test_a_failing_webhook_is_retried_with_backoff_then_failed(db, http_server, channels):
    from rapport.messaging.delivery import messages_deliver

    channels(
        url_allowlist=f"127.0.0.1:{http_server.port}",
        max_attempts=3,
        retry_base_seconds=1,
    )
    http_server.replies = [(500, {}, b"oops"), (429, {}, b"slow down"), (502, {}, b"bad gw")]
    message = _hook(http_server.url)
    for _attempt in range(3):
        messages_deliver()
        time_passes()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 3)
    assert "502" in message.last_error
    assert len(http_server.requests) == 3
    assert {r["headers"]["idempotency-key"] for r in http_server.requests} == {message.key}


def test_a_webhook_to_loopback_fails_at_once_without_a_request(db, http_server):
    from rapport.messaging.delivery import messages_deliver

    message = _hook(f"http://0177.0.0.1:{http_server.port}/")
    messages_deliver()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 1)
    assert http_server.requests == []


def test_a_webhook_needs_an_http_address_and_json_data(db):
    from rapport.core.errors import FieldErrors

    with pytest.raises(FieldErrors) as exc:
        _hook("gopher://example.com/")
    assert "url" in exc.value.errors
    with pytest.raises(FieldErrors) as exc:
        _hook("https://example.com/", payload={"when": object()})
    assert "payload" in exc.value.errors
