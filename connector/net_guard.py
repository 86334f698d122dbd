"""Where the server may send webhook deliveries: a guard against server-side request forgery.

A callback URL is fetched by the server, so without a guard anyone holding a key could make it post
to the cloud metadata service (169.254.169.254), a database on the LAN, or itself. The rules:

* https only; http only to loopback addresses, and only where ``webhooks.allow_loopback`` is on
  (tests, a receiver on the same machine);
* every address the host name resolves to must be globally routable: loopback, private (RFC 1918,
  unique-local), link-local, multicast, unspecified, reserved, shared (CGNAT) and documentation
  ranges are refused, unless the address is in ``webhooks.allowed_networks`` (on-premises
  receivers) or it is loopback and loopback is allowed;
* no credentials in the URL.

The check runs when a subscription is made and again before every delivery, and the delivery
connects to the very address that was checked (a DNS answer that changes between the check and
the connection - DNS rebinding - cannot redirect it). Redirects are never followed (jobs/webhooks.py).
Resolution is injectable, so tests can make a name resolve to any address.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from .errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class Refused(Invalid):
    """A callback URL the server will not call (a 400 when subscribing, a failed attempt when delivering)."""


def address_class(addr: Address) -> str | None:
    """Why an address is not on the public internet (None when it is)."""
    for name in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(addr, f"is_{name}"):
            return name.replace("_", "-")
    if not addr.is_global:  # shared address space (100.64/10), benchmarking and other special ranges
        return "not globally routable"
    return None


@dataclass(frozen=True)
class CallbackPolicy:
    allow_loopback: bool = False
    allowed_networks: tuple = ()
    resolve: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_config(cls, webhooks: dict, resolve: Resolver = system_resolver) -> "CallbackPolicy":
        networks = []
        for cidr in webhooks["allowed_networks"]:
            try:
                networks.append(ipaddress.ip_network(str(cidr), strict=False))
            except ValueError:
                raise ValueError(f"webhooks.allowed_networks: {cidr!r} is not a network like 10.20.0.0/16") from None
        return cls(bool(webhooks["allow_loopback"]), tuple(networks), resolve)

    def refusal(self, addr: Address) -> str | None:
        """Why this policy refuses the address, or None."""
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
        if any(addr in net for net in self.allowed_networks):
            return None
        kind = address_class(addr)
        if kind == "loopback" and self.allow_loopback:
            return None
        return kind

    def check(self, url: str) -> tuple[str, list[str]]:
        """(the URL, the addresses to connect to) or Refused naming why."""
        url = (url or "").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused("callbackUrl must be an absolute https URL")
        if parts.username is not None or parts.password is not None:
            raise Refused("callbackUrl must not carry credentials")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise Refused("callbackUrl has an invalid port") from None
        host = parts.hostname
        try:
            addresses = _literal(host) or self.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"callbackUrl host {host} does not resolve ({exc.__class__.__name__})") from None
        if not addresses:
            raise Refused(f"callbackUrl host {host} does not resolve")
        parsed = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
        for addr in parsed:
            why = self.refusal(addr)
            if why:
                raise Refused(f"callbackUrl host {host} resolves to {addr}, a {why} address; the server only "
                              "calls public addresses (or webhooks.allowed_networks)")
        if parts.scheme == "http" and not all(self._loopback(a) for a in parsed):
            raise Refused("callbackUrl must be https (http only to loopback, with webhooks.allow_loopback)")
        return url, [str(a) for a in parsed]

    def _loopback(self, addr: Address) -> bool:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return addr.is_loopback and self.allow_loopback


def _literal(host: str) -> list[str] | None:
    """An IP address written in the URL needs no resolver."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None
