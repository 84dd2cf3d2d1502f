"""Notifications by email, through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import socket
from email import message_from_bytes

import pytest


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    yield inbox
    controller.stop()


def test_an_assigned_task_is_emailed_once_to_whoever_asked_for_it(alice, dan, bob, smtp):
    from rapport.accounts.services import user_update
    from rapport.activities.services import task_create
    from rapport.core.events import outbox_dispatch
    from rapport.core.models import OutboxEvent

    user_update(actor=dan, user=dan, email="dan@example.test", email_notify_kinds=["task_assigned"])
    user_update(actor=bob, user=bob, email="bob@example.test", email_notify_kinds=[])
    task_create(actor=alice, data={"title": "Visit Volga Foods", "responsible_id": dan.pk})
    task_create(actor=alice, data={"title": "Bob's silent task", "responsible_id": bob.pk})
    outbox_dispatch()
    OutboxEvent.objects.filter(name="notification.created").update(status="pending")
    outbox_dispatch()  # a replay sends nothing twice
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "dan@example.test"
    assert "Visit Volga Foods" in mail["Subject"]
    assert mail["Message-ID"].startswith("<notification-")


def test_unknown_notification_kinds_are_refused_in_the_profile(alice):
    from rapport.accounts.services import user_update
    from rapport.core.errors import FieldErrors

    with pytest.raises(FieldErrors) as exc:
        user_update(actor=alice, user=alice, email_notify_kinds=["spam"])
    assert "email_notify_kinds" in exc.value.errors
