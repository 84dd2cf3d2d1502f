"""Administrator pages and API: channel settings, outgoing messages, templates. Anyone else
gets 404 on the pages and 403 from the API."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse


def _failed_message():
    from rapport.messaging.models import OutgoingMessage
    from rapport.messaging.services import message_enqueue

    message = message_enqueue(
        kind="email", key="rule:1:event:2:action:3", to="a@example.com", subject="Hi"
    )
    OutgoingMessage.objects.filter(pk=message.pk).update(
        status="failed", attempts=8, last_error="Gave up after 8 attempts"
    )
    message.refresh_from_db()
    return message


PAGES = [
    ("get", "messaging-settings", []),
    ("get", "message-list", []),
    ("get", "message-template-list", []),
    ("get", "message-template-create", []),
]


@pytest.mark.parametrize(("method", "name", "args"), PAGES)
def test_the_pages_are_for_administrators_only(method, name, args, alice, admin_user, client_for):
    url = reverse(name, args=args)
    assert getattr(client_for(alice), method)(url).status_code == 404
    assert getattr(client_for(admin_user), method)(url).status_code == 200


def test_non_administrators_cannot_retry_edit_or_delete(alice, admin_user, client_for):
    from rapport.messaging.services import template_create

    message = _failed_message()
    template = template_create(actor=admin_user, data={"name": "T", "body": "Hi"})
    client = client_for(alice)
    assert client.post(reverse("message-retry", args=[message.pk])).status_code == 404
    assert client.get(reverse("message-template-edit", args=[template.pk])).status_code == 404
    assert client.post(reverse("message-template-delete", args=[template.pk])).status_code == 404
    assert client.post(reverse("messaging-test-email"), {"to": "a@example.com"}).status_code == 404
    assert client.post(reverse("messaging-settings"), {"smtp_host": "evil"}).status_code == 404
    for url in (
        "/api/v1/messages",
        f"/api/v1/messages/{message.pk}",
        "/api/v1/message-templates",
        f"/api/v1/message-templates/{template.pk}",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/api/v1/messages/{message.pk}/retry").status_code == 403
    assert client.delete(f"/api/v1/message-templates/{template.pk}").status_code == 403
    message.refresh_from_db()
    assert message.status == "failed"


def test_the_settings_page_saves_and_keeps_a_password_left_blank(admin_user, client_for):
    from rapport.messaging.selectors import channel_settings_get

    client = client_for(admin_user)
    form = {
        "smtp_host": "smtp.example.com",
        "smtp_port": "587",
        "smtp_security": "starttls",
        "smtp_user": "crm",
        "smtp_password": "pw-1",
        "smtp_timeout": "10",
        "from_email": "Rapport <crm@example.com>",
        "sms_provider": "log",
        "sms_method": "POST",
        "sms_content_type": "application/json",
        "sms_body": "{{ text }}",
        "url_allowlist": "10.0.0.0/8\nhooks.internal:8443",
        "max_attempts": "5",
        "retry_base_seconds": "30",
        "retry_max_seconds": "3600",
    }
    assert client.post(reverse("messaging-settings"), form).status_code == 302
    form["smtp_password"] = ""
    form["smtp_port"] = "2525"
    assert client.post(reverse("messaging-settings"), form).status_code == 302
    cfg = channel_settings_get()
    assert (cfg.smtp_port, cfg.smtp_password, cfg.smtp_security) == (2525, "pw-1", "starttls")
    page = client.get(reverse("messaging-settings")).content.decode()
    assert "pw-1" not in page
    form["url_allowlist"] = "not a host!"
    form["smtp_port"] = "70000"
    response = client.post(reverse("messaging-settings"), form)
    assert response.status_code == 422
    text = response.content.decode()
    assert "url_allowlist" in text
    assert "smtp_port" in text


def test_the_test_email_button_sends_through_the_saved_server(
    admin_user, client_for, smtp, channels
):
    inbox, port = smtp
    channels(smtp_host="127.0.0.1", smtp_port=port)
    client = client_for(admin_user)
    response = client.post(
        reverse("messaging-test-email"), {"to": "admin@example.com"}, follow=True
    )
    assert "Test email sent to admin@example.com" in response.content.decode()
    assert [m["To"] for m in inbox.messages] == ["admin@example.com"]


def test_the_message_list_filters_and_retry_now_requeues(admin_user, client_for):
    from rapport.messaging.services import message_enqueue

    failed = _failed_message()
    waiting = message_enqueue(kind="sms", key="k-sms", to="+79123419615", body="Hi")
    client = client_for(admin_user)
    page = client.get(reverse("message-list") + "?status=failed").content.decode()
    assert f'id="message-{failed.pk}"' in page
    assert f'id="message-{waiting.pk}"' not in page
    assert "Gave up after 8 attempts" in page
    page = client.get(reverse("message-list") + "?kind=sms").content.decode()
    assert f'id="message-{waiting.pk}"' in page
    assert f'id="message-{failed.pk}"' not in page
    client.post(reverse("message-retry", args=[failed.pk]))
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == ("pending", 0)


def test_templates_are_created_previewed_edited_and_deleted_on_pages(admin_user, client_for):
    from rapport.messaging.models import MessageTemplate

    client = client_for(admin_user)
    data = {
        "name": "Offer",
        "channel": "email",
        "subject": "Offer for {{ client.name }}",
        "body": "Dear {{ client.first_name }}, {{ deal.title }}",
        "language": "",
    }
    preview = client.post(reverse("message-template-preview"), data, HTTP_HX_REQUEST="true")
    assert "Offer for Maria Rossi" in preview.content.decode()
    assert "Dear Maria" in preview.content.decode()
    bad = client.post(
        reverse("message-template-preview"), {**data, "body": "{{ ''.__class__.__mro__ }}"}
    )
    assert "not allowed" in bad.content.decode()
    assert client.post(reverse("message-template-create"), data).status_code == 302
    template = MessageTemplate.objects.get(name="Offer")
    response = client.post(
        reverse("message-template-edit", args=[template.pk]), {**data, "body": "{% if %}"}
    )
    assert response.status_code == 422
    client.post(reverse("message-template-edit", args=[template.pk]), {**data, "name": "Offer 2"})
    template.refresh_from_db()
    assert template.name == "Offer 2"
    assert "Offer 2" in client.get(reverse("message-template-list")).content.decode()
    client.post(reverse("message-template-delete", args=[template.pk]))
    assert not MessageTemplate.objects.exists()


def _api(client, method, url, body=None):
    if method == "get":
        return client.get(url)
    return getattr(client, method)(
        url, data=json.dumps(body or {}), content_type="application/json"
    )


def test_the_templates_api_creates_reads_updates_previews_and_deletes(admin_user, client_for):
    client = client_for(admin_user)
    created = _api(
        client,
        "post",
        "/api/v1/message-templates",
        {"name": "Ready", "channel": "sms", "body": "{{ client.first_name }}, your order is ready"},
    )
    assert created.status_code == 201
    tid = created.json()["id"]
    assert _api(client, "get", "/api/v1/message-templates?channel=sms").json()[0]["id"] == tid
    patched = _api(client, "patch", f"/api/v1/message-templates/{tid}", {"name": "Ready!"})
    assert patched.json()["name"] == "Ready!"
    preview = _api(client, "post", f"/api/v1/message-templates/{tid}/preview", {})
    assert preview.json() == {"subject": "", "body": "Maria, your order is ready"}
    preview = _api(
        client,
        "post",
        f"/api/v1/message-templates/{tid}/preview",
        {"context": {"client": {"first_name": "Ivan"}}},
    )
    assert preview.json()["body"] == "Ivan, your order is ready"
    bad = _api(client, "patch", f"/api/v1/message-templates/{tid}", {"body": "{{ x "})
    assert bad.status_code == 422
    assert "body" in bad.json()["error"]["fields"]
    assert _api(client, "delete", f"/api/v1/message-templates/{tid}").status_code == 204
    assert _api(client, "get", f"/api/v1/message-templates/{tid}").status_code == 404


def test_the_messages_api_lists_with_filters_and_retries(admin_user, client_for):
    from rapport.messaging.services import message_enqueue

    failed = _failed_message()
    message_enqueue(kind="webhook", key="k-hook", url="https://example.com/h", source="rule:7")
    client = client_for(admin_user)
    body = _api(client, "get", "/api/v1/messages?status=failed").json()
    assert [m["id"] for m in body["items"]] == [failed.pk]
    assert body["items"][0]["last_error"] == "Gave up after 8 attempts"
    body = _api(client, "get", "/api/v1/messages?source=rule:7").json()
    assert [m["kind"] for m in body["items"]] == ["webhook"]
    retried = _api(client, "post", f"/api/v1/messages/{failed.pk}/retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "pending"
    again = _api(client, "post", f"/api/v1/messages/{failed.pk}/retry")
    assert again.status_code == 200  # a waiting message may be pushed to now again
    cancelled = _api(client, "post", f"/api/v1/messages/{failed.pk}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    refused = _api(client, "post", f"/api/v1/messages/{failed.pk}/retry")
    assert refused.status_code == 422
    assert "status" in refused.json()["error"]["fields"]
