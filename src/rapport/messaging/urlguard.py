"""The SSRF guard for every request Rapport makes to an address a user or admin typed.

``url_check`` refuses, before any connection: schemes other than http/https, addresses with
credentials, and any host that resolves to an address that is not globally routable
(loopback, private, link-local, CGNAT, unspecified, multicast, reserved, documentation,
IPv4-mapped/compatible IPv6 of those, NAT64, 6to4 and Teredo wrappers ...). It checks the
*resolved* addresses: ``0177.0.0.1``, ``2130706433`` and ``0x7f.1`` all resolve to 127.0.0.1.
``safe_request`` then connects to a vetted address (pinned: no second DNS lookup, so a name
cannot re-resolve elsewhere between check and use), keeps TLS SNI and the certificate check on
the host name, never follows a redirect by itself (each hop is checked again, at most 3), and
reads at most ``max_bytes`` of the answer within the timeout.

An administrator's allowlist (``host``, ``host:port``, ``IP``, ``IP:port``, ``[v6]:port`` or a
CIDR network) lets specific internal targets through.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from django.utils.translation import gettext as _

from rapport.core.errors import FieldErrors

log = logging.getLogger("rapport.security")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_TIMEOUT = 10.0
MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})

# Refused whatever ``ipaddress`` thinks of them (belt and braces over ``is_global``).
_BLOCKED_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
_BLOCKED_V6 = [
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible addresses
        "::ffff:0:0/96",  # IPv4-mapped (unwrapped and checked as IPv4 first)
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 among them)
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
]


_NAT64 = [ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48")]
_BLOCKED_V6.extend(_NAT64)


class UrlRefused(Exception):
    """The address may not be called (scheme, credentials, or a non-public address)."""


class UrlUnresolvable(Exception):
    """The host name does not resolve (now): worth trying again later."""


class HttpFailure(Exception):
    """The request could not be completed (connection, timeout, protocol)."""


@dataclass(frozen=True)
class AllowEntry:
    """One allowlist line: a host name, or an address network; optionally one port."""

    host: str = ""
    network: IPNetwork | None = None
    port: int | None = None

    def __str__(self) -> str:
        where = self.host or str(self.network)
        return f"{where}:{self.port}" if self.port else where


@dataclass(frozen=True)
class Vetted:
    """A checked URL and the addresses it may be reached at."""

    url: str
    scheme: str
    host: str  # as sent in Host and SNI (IDNA-encoded, no brackets)
    port: int
    target: str  # path and query
    addresses: tuple[IPAddress, ...]


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    truncated: bool = False
    hops: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


_HOST_RE = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?:\.(?!-)[a-z0-9-]{1,63})*$")


def allowlist_parse(
    text: str | Iterable[str], *, field_name: str = "url_allowlist"
) -> list[AllowEntry]:
    """Parse allowlist lines; a bad line raises FieldErrors naming ``field_name`` and the line."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    entries: list[AllowEntry] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        entry = _entry(line)
        if entry is None:
            raise FieldErrors.single(
                field_name,
                _("“%(line)s” is not a host, host:port, IP address, IP:port or network.")
                % {"line": raw.strip()},
            )
        entries.append(entry)
    return entries


def _port(text: str) -> int | None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        return None
    return int(text)


def _entry(line: str) -> AllowEntry | None:
    port: int | None = None
    host = line
    if line.startswith("["):  # [v6] or [v6]:port
        end = line.find("]")
        if end < 0:
            return None
        host, rest = line[1:end], line[end + 1 :]
        if rest and (not rest.startswith(":") or (port := _port(rest[1:])) is None):
            return None
    elif line.count(":") == 1:  # host:port or v4:port
        host, port_text = line.split(":")
        if (port := _port(port_text)) is None:
            return None
    try:
        return AllowEntry(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        pass
    host = host.rstrip(".")
    if not _HOST_RE.match(host):
        return None
    return AllowEntry(host=host, port=port)


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 IPv6 address, else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if any(address in net for net in _NAT64):  # the IPv4 address is the last 32 bits
            return ipaddress.IPv4Address(address.packed[-4:])
    return address


def address_is_public(address: IPAddress) -> bool:
    """True only for a globally routable unicast address (whatever IPv6 wrapper it wears)."""
    inner = _unwrap(address)
    for candidate in {address, inner}:
        if (
            not candidate.is_global
            or candidate.is_multicast
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_private
            or candidate.is_reserved
            or candidate.is_unspecified
        ):
            return False
        if isinstance(candidate, ipaddress.IPv4Address):
            if any(candidate in net for net in _BLOCKED_V4):
                return False
        elif candidate.ipv4_mapped is None and any(candidate in net for net in _BLOCKED_V6):
            return False
    # A wrapper (mapped, NAT64, 6to4) around a public IPv4 address is still refused: a client
    # has no reason to reach a public site that way, and NAT64 gateways sit inside networks.
    return inner is address


def _allowed_by_list(
    host: str, port: int, address: IPAddress, entries: Sequence[AllowEntry]
) -> bool:
    inner = _unwrap(address)
    for entry in entries:
        if entry.port is not None and entry.port != port:
            continue
        if entry.host and entry.host == host:
            return True
        if entry.network is not None and (address in entry.network or inner in entry.network):
            return True
    return False


def _refuse(url: str, message: str) -> UrlRefused:
    log.warning("outbound request refused: %s (%s)", url[:300], message)
    return UrlRefused(message)


def url_check(url: str, *, allowlist: Sequence[AllowEntry] = ()) -> Vetted:
    """Check ``url`` and resolve its host; raise UrlRefused unless every address is allowed.

    Nothing here connects anywhere: a refusal happens before any connection is attempted.
    """
    text = url.strip()
    if any(ord(ch) < 33 or ch == "\\" for ch in text):
        raise _refuse(url, _("The address contains spaces, control characters or backslashes."))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _refuse(url, _("Only http:// and https:// addresses are allowed."))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse(url, _("Addresses with a user name or password in them are not allowed."))
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        hostname = parts.hostname or ""
    except ValueError as exc:
        raise _refuse(url, _("The port of the address is not a number from 1 to 65535.")) from exc
    hostname = hostname.rstrip(".")
    if not hostname:
        raise _refuse(url, _("The address has no host name."))
    try:
        literal: IPAddress | None = ipaddress.ip_address(hostname.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        host = str(literal)
    else:
        try:
            host = hostname.encode("idna").decode("ascii").lower()
        except UnicodeError as exc:
            raise _refuse(url, _("The host name is not valid.")) from exc
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UrlUnresolvable(
            _("The host name %(host)s does not resolve.") % {"host": host}
        ) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError as exc:
            raise _refuse(url, _("The host resolves to an address that is not IP.")) from exc
        if not (address_is_public(address) or _allowed_by_list(host, port, address, allowlist)):
            raise _refuse(
                url,
                _(
                    "%(host)s resolves to %(address)s, a local, private or reserved address. "
                    "An administrator can allow it in the channel settings."
                )
                % {"host": hostname, "address": address},
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlUnresolvable(_("The host name %(host)s does not resolve.") % {"host": host})
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    return Vetted(
        url=text,
        scheme=scheme,
        host=host,
        port=port,
        target=target,
        addresses=tuple(addresses),
    )


def _connect(addresses: Sequence[IPAddress], port: int, timeout: float) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout=timeout)
        except OSError as exc:
            last = exc
    raise last or OSError("no address to connect to")


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a vetted address; the Host header still names the host."""

    def __init__(self, vetted: Vetted, timeout: float) -> None:
        super().__init__(vetted.host, vetted.port, timeout=timeout)
        self._vetted = vetted

    def connect(self) -> None:
        self.sock = _connect(self._vetted.addresses, self._vetted.port, float(self.timeout or 10))


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a vetted address; SNI and the certificate check use the host name."""

    def __init__(self, vetted: Vetted, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(vetted.host, vetted.port, timeout=timeout, context=self._tls)
        self._vetted = vetted

    def connect(self) -> None:
        sock = _connect(self._vetted.addresses, self._vetted.port, float(self.timeout or 10))
        self.sock = self._tls.wrap_socket(sock, server_hostname=self._vetted.host)


def _one_request(
    vetted: Vetted,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
    max_bytes: int,
) -> HttpResponse:
    deadline = time.monotonic() + timeout
    conn: http.client.HTTPConnection = (
        _PinnedHTTPS(vetted, timeout) if vetted.scheme == "https" else _PinnedHTTP(vetted, timeout)
    )
    try:
        conn.request(method, vetted.target, body=body, headers=headers)
        response = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        truncated = False
        while True:
            if time.monotonic() > deadline:
                truncated = True
                break
            chunk = response.read(min(65536, max_bytes - size + 1))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                truncated = True
                break
        data = b"".join(chunks)[:max_bytes]
        return HttpResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.getheaders()},
            body=data,
            url=vetted.url,
            truncated=truncated,
        )
    except (OSError, http.client.HTTPException) as exc:
        raise HttpFailure(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()


def safe_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    allowlist: Sequence[AllowEntry] = (),
    timeout: float = MAX_TIMEOUT,
    max_bytes: int = MAX_BODY,
    max_redirects: int = MAX_REDIRECTS,
) -> HttpResponse:
    """One request through the guard. A redirect keeps the method and body and is checked
    again like a new address, at most ``max_redirects`` times."""
    timeout = min(max(timeout, 0.1), MAX_TIMEOUT)
    sent_headers = {"User-Agent": "Rapport", **(headers or {})}
    hops: list[str] = []
    current = url
    for _hop in range(max_redirects + 1):
        vetted = url_check(current, allowlist=allowlist)
        response = _one_request(vetted, method, body, sent_headers, timeout, max_bytes)
        response.hops = hops
        location = response.headers.get("location", "")
        if response.status not in REDIRECTS or not location:
            return response
        hops.append(current)
        current = urljoin(current, location)
    raise _refuse(url, _("More than %(n)s redirects.") % {"n": max_redirects})


def safe_post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str] | None = None,
    allowlist: Sequence[AllowEntry] = (),
    timeout: float = MAX_TIMEOUT,
    max_bytes: int = MAX_BODY,
) -> HttpResponse:
    """POST ``body`` through the guard (see ``safe_request``)."""
    return safe_request(
        "POST",
        url,
        body=body,
        headers=headers,
        allowlist=allowlist,
        timeout=timeout,
        max_bytes=max_bytes,
    )
