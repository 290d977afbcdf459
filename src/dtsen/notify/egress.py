"""Where DTSEN may POST: the rule for every outgoing callback and webhook URL (registry API
subscriptions, program webhooks), checked when a URL is accepted and again right before each POST,
which then connects to the very address that was checked.

A URL is refused when it is not https, carries a user name or password, or names a host that is, or
resolves to, an address that is not public: loopback, private, link-local, shared (CGNAT), multicast,
reserved, unspecified, IPv4-mapped IPv6 or IPv6 embedding such an IPv4 address (6to4, Teredo, NAT64),
or a cloud metadata address. An IPv4 address written any other way than dotted decimal (0x7f000001,
2130706433, 0177.0.0.1, 127.1) is refused as such. Every address a name resolves to must pass, and the
POST connects to one of those addresses (the URL's name still goes in the Host header, the TLS SNI and
the certificate check): a name that resolves to a public address when checked and to an internal one
a moment later (DNS rebinding) is not followed. Any port is allowed: only public addresses are reached,
over TLS, and program teams do run receivers on ports such as 8443.

DTSEN_CALLBACK_ALLOWLIST lets an administrator allow what the rule refuses, for internal receivers and
local trials: each entry is a host (`receiver.internal`, `127.0.0.1`, `[::1]`), a host and port
(`127.0.0.1:8099`), or a URL prefix (`http://10.0.0.7:8080/dtsen/`). A URL an entry matches may be http
and may reach any address. A user name or password in a URL is refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from dtsen.errors import DataError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The instance metadata services of the clouds (AWS, GCP, Azure, OpenStack; AWS over IPv6; Alibaba;
# AWS ECS task metadata). Most are refused as link-local or private anyway; listed so that no change to
# the rules below can let them through.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
MAX_URL_LENGTH = 2000


class RefusedDestination(DataError):
    """A callback or webhook URL DTSEN does not POST to (the message says which rule refused it)."""


def _normal_host(host: str) -> str:
    """Lower-case, no trailing dot, IDNA for a name, the canonical form for an IP address."""
    host = host.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise RefusedDestination(f"the host {host!r} is not a valid name") from exc


@dataclass(frozen=True)
class _Entry:
    host: str
    port: int | None  # None: any port
    scheme: str | None  # set for a URL prefix
    path: str  # a URL prefix's path ("" for a host entry)

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        if host != self.host or (self.port is not None and port != self.port):
            return False
        if self.scheme is None:
            return True
        prefix = self.path.rstrip("/")
        return scheme == self.scheme and (path == prefix or path.startswith(prefix + "/") or not prefix)


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[_Entry, ...] = ()

    @classmethod
    def parse(cls, raw: str | None) -> Allowlist:
        """DTSEN_CALLBACK_ALLOWLIST: comma-separated hosts, host:port pairs and URL prefixes; ValueError
        names an entry that is none of them."""
        try:
            return cls._parse(raw)
        except RefusedDestination as exc:
            raise ValueError(str(exc)) from exc

    @classmethod
    def _parse(cls, raw: str | None) -> Allowlist:
        entries = []
        for item in (raw or "").split(","):
            item = item.strip()
            if not item:
                continue
            if "://" in item:
                parts = urlsplit(item)
                if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                    raise ValueError(f"{item!r} is not an http(s) URL prefix without user name")
                port = parts.port or (443 if parts.scheme == "https" else 80)
                entries.append(_Entry(_normal_host(parts.hostname), port, parts.scheme, parts.path))
                continue
            parts = urlsplit(f"//{item}")
            if not parts.hostname or parts.username or parts.path:
                raise ValueError(f"{item!r} is neither a host, a host:port nor a URL prefix")
            entries.append(_Entry(_normal_host(parts.hostname), parts.port, None, ""))
        return cls(tuple(entries))

    def allows(self, scheme: str, host: str, port: int, path: str) -> bool:
        return any(e.matches(scheme, host, port, path) for e in self.entries)


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str  # normalised: what the allowlist and the resolver are given
    port: int
    allowlisted: bool  # an allowlist entry matches: any scheme and address


def refusal(address: IPAddress) -> str | None:
    """Why DTSEN does not POST to `address`, or None for a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        teredo = address.teredo
        embedded = address.sixtofour or (teredo[1] if teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and refusal(embedded):
            return f"an IPv6 address embedding a refused IPv4 address ({refusal(embedded)})"
    for kind in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    if not address.is_global:
        return "not a public address"
    return None


def check_url(url: str, allowlist: Allowlist) -> Destination:
    """The rules that need no DNS; RefusedDestination says which one a URL breaks."""
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise RefusedDestination(f"a callback URL is 1 to {MAX_URL_LENGTH} characters, no spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedDestination("the callback URL cannot be read (its port?)") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise RefusedDestination("the callback must be an https URL with a host")
    if "@" in parts.netloc:
        raise RefusedDestination("a callback URL must not carry a user name or password")
    raw_host = parts.hostname.rstrip(".")
    host = _normal_host(raw_host)
    if port == 0:
        raise RefusedDestination("the callback URL's port is 1 to 65535")
    port = port or (443 if scheme == "https" else 80)
    allowlisted = allowlist.allows(scheme, host, port, parts.path)
    if allowlisted:
        return Destination(url, scheme, host, port, True)
    if scheme != "https":
        raise RefusedDestination(
            "the callback must be an https URL (http only to a host in DTSEN_CALLBACK_ALLOWLIST)"
        )
    literal = _ip_literal(raw_host)
    if literal is not None and (why := refusal(literal)):
        raise RefusedDestination(f"the callback host is {why}")
    return Destination(url, scheme, host, port, False)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host written as an IP address stands for; None for a name. An IPv4 address in
    any form but dotted decimal is refused: resolvers read 0x7f000001 and 0177.0.0.1 as 127.0.0.1."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.lower().rsplit(".", 1)[-1]):
        raise RefusedDestination("an IP address in a callback URL is written in dotted decimal (a.b.c.d)")
    return None


def _checked(destination: Destination, infos: list) -> list[IPAddress]:
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
    if not addresses:
        raise RefusedDestination(f"the callback host {destination.host} resolves to no address")
    if not destination.allowlisted:
        for address in addresses:
            if why := refusal(address):
                raise RefusedDestination(f"the callback host {destination.host} resolves to {why}")
    return addresses


def resolve(destination: Destination) -> list[IPAddress]:
    """Every address the host resolves to, each checked (unless allowlisted); the first is where to
    connect. A name that does not resolve is refused."""
    try:
        infos = socket.getaddrinfo(destination.host, destination.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedDestination(f"the callback host {destination.host} does not resolve") from exc
    return _checked(destination, infos)


async def resolve_async(destination: Destination) -> list[IPAddress]:
    """resolve(), on the event loop's resolver (so a deadline around it holds)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(destination.host, destination.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedDestination(f"the callback host {destination.host} does not resolve") from exc
    return _checked(destination, infos)


def check_and_resolve(url: str, allowlist: Allowlist) -> Destination:
    """What a subscription's callback must pass when it is accepted: the URL rules, then DNS."""
    destination = check_url(url, allowlist)
    resolve(destination)
    return destination
