"""Who is on the other end: the client's address, read through the proxies we trust.

Behind nginx or HAProxy every request comes from the proxy's address, so limits per address
would put a whole city in one bucket. ``trusted_proxies`` names the proxies (addresses or
networks) whose forwarding header is believed; the header is read from the right, skipping
trusted hops, and the first untrusted address is the client. A header from anyone else is
ignored: a stranger cannot choose their own address by sending ``X-Forwarded-For``.

``trusted_proxy_header`` chooses the header the proxy writes: ``x-forwarded-for`` (nginx's
``$proxy_add_x_forwarded_for``, HAProxy's ``option forwardfor``) or ``forwarded`` (RFC 7239).
Only that one is read, so a client cannot smuggle in the other.

Limits count per :func:`address_key`: an IPv4 address, or an IPv6 address's /64 network (one
household or phone gets a whole /64, so counting single IPv6 addresses would count nothing).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable

from aiohttp import web

__all__ = ["ProxyTrust", "address_key", "client_address", "is_https", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger("kanava.guard")

_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]+)')
_FORWARDED_PROTO = re.compile(r'(?i)(?:^|[;,\s])proto\s*=\s*("[^"]*"|[^;,\s]+)')


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``127.0.0.1``, ``10.0.0.0/8``, ``::1``: raises ValueError on anything else."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


class ProxyTrust:
    """The configured proxies, and how to read the client's address through them."""

    def __init__(self, proxies: Iterable[str] = (), header: str = "x-forwarded-for") -> None:
        self.networks = parse_networks(proxies)
        header = header.lower()
        if header not in ("x-forwarded-for", "forwarded"):
            raise ValueError(
                f"trusted_proxy_header must be x-forwarded-for or forwarded, not {header!r}"
            )
        self.header = header
        self._warned = False

    def trusted(self, address: str) -> bool:
        ip = _ip(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, peer: str | None, header_values: list[str]) -> str:
        """The client's address, given the socket's peer and the forwarding header's values."""
        current = peer or "unknown"
        if not self.networks:
            if header_values and not self._warned:
                # Probably a proxy that nobody named: everyone would share its address.
                self._warned = True
                log.warning(
                    "a %s header arrived from %s, but trusted_proxies is empty: if a proxy is "
                    "in front of Kanava, name it there, or every client counts as the proxy",
                    self.header,
                    current,
                )
            return current
        if not self.trusted(current):
            return current
        hops = self._hops(header_values)
        while hops and self.trusted(current):
            candidate = hops.pop()
            if _ip(candidate) is None:
                # "unknown", an obfuscated name or garbage: the last trusted hop is all we know.
                return current
            current = candidate
        return current

    def https(self, peer: str | None, values: list[str]) -> bool:
        """Whether a trusted proxy says the browser's own connection is HTTPS, given the
        values of ``X-Forwarded-Proto`` (or ``Forwarded``, when that is the header read)."""
        if peer is None or not self.networks or not self.trusted(peer):
            return False
        text = ",".join(values)
        if self.header == "forwarded":
            protos = [p.strip('"') for p in _FORWARDED_PROTO.findall(text)]
        else:
            protos = [p.strip() for p in text.split(",")]
        return bool(protos) and protos[-1].lower() == "https"  # what the nearest proxy saw

    def _hops(self, values: list[str]) -> list[str]:
        hops: list[str] = []
        for value in values:
            if self.header == "forwarded":
                for match in _FORWARDED_FOR.finditer(value):
                    hops.append(_strip_port(match.group(1).strip('"')))
            else:
                hops.extend(_strip_port(part.strip()) for part in value.split(",") if part.strip())
        return hops


def client_address(request: web.Request, trust: ProxyTrust | None = None) -> str:
    """The address of the person behind ``request``."""
    if trust is None:
        trust = request.app.get(PROXY_TRUST) or _NO_PROXIES
    values = request.headers.getall(trust.header, [])
    return trust.client(request.remote, list(values))


def is_https(request: web.Request) -> bool:
    """The browser reached us over TLS: directly, or through a trusted proxy that says so."""
    if request.secure:
        return True
    trust = request.app.get(PROXY_TRUST) or _NO_PROXIES
    header = "Forwarded" if trust.header == "forwarded" else "X-Forwarded-Proto"
    return trust.https(request.remote, list(request.headers.getall(header, [])))


def address_key(address: str) -> str:
    """What limits count by: the IPv4 address, or the /64 of an IPv6 address."""
    ip = _ip(address)
    if ip is None:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def _strip_port(hop: str) -> str:
    """``[2001:db8::1]:4711`` → ``2001:db8::1``; ``192.0.2.1:80`` → ``192.0.2.1``."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


_NO_PROXIES = ProxyTrust()
PROXY_TRUST = web.AppKey("proxy_trust", ProxyTrust)
