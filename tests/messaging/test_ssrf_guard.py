"""R7: the SSRF guard refuses every vector before connecting, checks the resolved address,
re-checks each redirect hop, and lets an administrator's allowlist through."""

from __future__ import annotations

import socket
import time

import pytest
from tests.messaging.conftest import nobody_connected

# {port} is a listening socket on 127.0.0.1 that must never see a connection.
VECTORS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f.1:{port}/",
    "http://0x7f000001:{port}/",
    "http://127.1:{port}/",
    "http://127.0.1:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[0:0:0:0:0:0:0:1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://example.com@127.0.0.1:{port}/",
    "http://user:pass@127.0.0.1:{port}/",
    "https://127.0.0.1:{port}/",
    "gopher://127.0.0.1:{port}/_SSRF",
    "ftp://127.0.0.1:{port}/",
    "file:///etc/passwd",
    "dict://127.0.0.1:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.1/",
    "http://10.255.255.254:8080/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.0.1/",
    "http://192.168.1.254/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    "http://[64:ff9b::7f00:1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/",
    "http://127.0.0.1\\@example.com/",
    "http://127.0.0.1 /",
    "http:///path-without-host",
]


@pytest.mark.parametrize("vector", VECTORS)
def test_every_vector_is_refused_before_any_connection(vector, silent_listener):
    from rapport.messaging.urlguard import UrlRefused, safe_post

    url = vector.format(port=silent_listener.getsockname()[1])
    with pytest.raises(UrlRefused):
        safe_post(url, body=b"{}")
    assert nobody_connected(silent_listener)


def test_there_are_at_least_25_vectors():
    assert len(VECTORS) >= 25


def test_public_addresses_pass_the_check_without_connecting():
    from rapport.messaging.urlguard import url_check

    vetted = url_check("https://8.8.8.8/hook?x=1")
    assert [str(a) for a in vetted.addresses] == ["8.8.8.8"]
    assert (vetted.host, vetted.port, vetted.target) == ("8.8.8.8", 443, "/hook?x=1")
    assert str(url_check("http://[2606:4700:4700::1111]/").addresses[0]) == "2606:4700:4700::1111"


def test_the_allowlist_lets_the_test_server_through(http_server):
    from rapport.messaging.urlguard import UrlRefused, allowlist_parse, safe_post

    with pytest.raises(UrlRefused):
        safe_post(http_server.url + "/hook", body=b'{"a": 1}')
    assert http_server.requests == []
    allowed = allowlist_parse(f"127.0.0.1:{http_server.port}")
    response = safe_post(http_server.url + "/hook", body=b'{"a": 1}', allowlist=allowed)
    assert response.status == 200
    assert http_server.requests[0]["path"] == "/hook"
    assert http_server.requests[0]["body"] == b'{"a": 1}'
    # By network too, and by host name (which then resolves to loopback)
    for entry in ("127.0.0.0/8", "localhost"):
        host = "localhost" if entry == "localhost" else "127.0.0.1"
        url = f"http://{host}:{http_server.port}/n"
        assert safe_post(url, body=b"{}", allowlist=allowlist_parse(entry)).status == 200


def test_an_allowlisted_port_does_not_open_other_ports(http_server, silent_listener):
    from rapport.messaging.urlguard import UrlRefused, allowlist_parse, safe_post

    allowed = allowlist_parse(f"127.0.0.1:{http_server.port}")
    with pytest.raises(UrlRefused):
        safe_post(
            f"http://127.0.0.1:{silent_listener.getsockname()[1]}/", body=b"", allowlist=allowed
        )
    assert nobody_connected(silent_listener)


def test_a_redirect_to_another_loopback_port_is_refused_before_connecting(
    http_server, silent_listener
):
    from rapport.messaging.urlguard import UrlRefused, allowlist_parse, safe_post

    target = f"http://127.0.0.1:{silent_listener.getsockname()[1]}/admin"
    http_server.replies = [(302, {"Location": target}, b"")]
    allowed = allowlist_parse(f"127.0.0.1:{http_server.port}")
    with pytest.raises(UrlRefused):
        safe_post(http_server.url + "/hook", body=b"{}", allowlist=allowed)
    assert len(http_server.requests) == 1
    assert nobody_connected(silent_listener)


def test_redirects_within_the_allowed_server_are_followed_at_most_three_times(http_server):
    from rapport.messaging.urlguard import UrlRefused, allowlist_parse, safe_post

    allowed = allowlist_parse(f"127.0.0.1:{http_server.port}")
    http_server.replies = [(307, {"Location": "/moved"}, b""), (200, {}, b"done")]
    response = safe_post(http_server.url + "/hook", body=b'{"x": 1}', allowlist=allowed)
    assert (response.status, response.body) == (200, b"done")
    assert [r["path"] for r in http_server.requests] == ["/hook", "/moved"]
    assert http_server.requests[1]["body"] == b'{"x": 1}'  # method and body kept
    http_server.replies = [(302, {"Location": f"/r{n}"}, b"") for n in range(5)]
    with pytest.raises(UrlRefused):
        safe_post(http_server.url + "/loop", body=b"{}", allowlist=allowed)
    assert len(http_server.requests) == 2 + 4  # the first request and three hops


def test_an_answer_is_read_up_to_one_megabyte(http_server):
    from rapport.messaging.urlguard import MAX_BODY, allowlist_parse, safe_post

    http_server.replies = [(200, {}, b"x" * (3 * MAX_BODY))]
    response = safe_post(
        http_server.url, body=b"{}", allowlist=allowlist_parse(f"127.0.0.1:{http_server.port}")
    )
    assert response.truncated
    assert len(response.body) == MAX_BODY


def test_a_server_that_never_answers_times_out(silent_listener):
    from rapport.messaging.urlguard import HttpFailure, allowlist_parse, safe_post

    port = silent_listener.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(HttpFailure):
        safe_post(
            f"http://127.0.0.1:{port}/",
            body=b"{}",
            allowlist=allowlist_parse(f"127.0.0.1:{port}"),
            timeout=0.5,
        )
    assert time.monotonic() - started < 5


def test_the_timeout_is_never_more_than_ten_seconds():
    from rapport.messaging.urlguard import MAX_TIMEOUT

    assert MAX_TIMEOUT <= 10


@pytest.mark.parametrize(
    "line", ["not a host!", "10.0.0.0/33", "127.0.0.1:99999", "[::1", "host:port"]
)
def test_a_bad_allowlist_line_is_refused_naming_the_field(line):
    from rapport.core.errors import FieldErrors
    from rapport.messaging.urlguard import allowlist_parse

    with pytest.raises(FieldErrors) as exc:
        allowlist_parse(f"10.0.0.0/8\n{line}")
    assert "url_allowlist" in exc.value.errors
    assert line in exc.value.errors["url_allowlist"][0]


def test_the_guard_connects_to_the_vetted_address_only(http_server, monkeypatch):
    """Pinned: the host name is resolved once, by the check; the connection uses that address."""
    from rapport.messaging import urlguard

    lookups: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(urlguard.socket, "getaddrinfo", counting)
    allowed = urlguard.allowlist_parse("localhost")
    response = urlguard.safe_post(
        f"http://localhost:{http_server.port}/p", body=b"{}", allowlist=allowed
    )
    assert response.status == 200
    assert lookups.count("localhost") == 1
    assert http_server.requests[0]["headers"]["host"] == f"localhost:{http_server.port}"
