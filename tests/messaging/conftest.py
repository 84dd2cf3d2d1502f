"""Real servers on 127.0.0.1 for the channels: an SMTP server (aiosmtpd) that can answer
4xx/5xx on demand, and an HTTP server (SMS gateway, webhook receiver) that records requests."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An SMTP server's mailbox; ``data_replies``/``rcpt_replies`` are answered first, in order."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.peers: set[Any] = set()
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(message_from_bytes(envelope.content))
        self.peers.add(session.peer)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


class Recorder:
    """What the HTTP server received, and what it answers next (status, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[tuple[int, dict[str, str], bytes]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index]["body"])


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorder.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            status, headers, payload = (
                recorder.replies.pop(0) if recorder.replies else (200, {}, b'{"ok": true}')
            )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    return Handler


@pytest.fixture
def http_server() -> Iterator[Recorder]:
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def second_http_server() -> Iterator[Recorder]:
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: a connection attempt would sit in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _addr = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.fixture
def channels(admin_user: Any) -> Any:
    """Save channel settings as the administrator: ``channels(smtp_port=..., ...)``."""
    from rapport.messaging.services import channel_settings_update

    def save(**data: Any) -> Any:
        return channel_settings_update(actor=admin_user, data=data)

    return save


@pytest.fixture
def mail_to(smtp: tuple[Inbox, int], channels: Any) -> Inbox:
    """Email goes to the test SMTP server; retries come after 1 s, 3 attempts at most."""
    inbox, port = smtp
    channels(
        smtp_host="127.0.0.1",
        smtp_port=port,
        from_email="crm@example.com",
        max_attempts=3,
        retry_base_seconds=1,
        retry_max_seconds=5,
    )
    return inbox


def time_passes() -> None:
    """Make every waiting message due now (instead of sleeping through the backoff)."""
    from django.utils import timezone

    from rapport.messaging.models import OutgoingMessage

    OutgoingMessage.objects.filter(status="pending").update(next_attempt_at=timezone.now())
