"""Which reverse proxies may tell us the client's address.

``X-Forwarded-For`` is believed only when the TCP peer is a configured
proxy, and then only up to the first hop that is not one: anybody can send
the header, only our proxies append to it truthfully. A proxy may append a
header line of its own rather than to the client's (HAProxy's
``option forwardfor`` does), so every line counts, in order. A hop that is
not an IP address ends the trust there: what stands before it is the
client's word. ``X-Forwarded-Host``
and ``-Proto`` are never used: ``public_origin`` says what the gateway's
address is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str], key: str) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not an IP address or network") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """The trusted proxy networks (none by default)."""

    trusted: tuple[Network, ...] = ()

    def _trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def client(self, peer: str | None, forwarded_for: str | Sequence[str] | None) -> str | None:
        """The client's address, given the TCP peer and its X-Forwarded-For line(s)."""
        if peer is None or not forwarded_for or not self._trusts(peer):
            return peer
        lines = [forwarded_for] if isinstance(forwarded_for, str) else forwarded_for
        hops = [hop.strip() for line in lines for hop in line.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            if not _is_address(hop):
                return client
            client = hop
            if not self._trusts(hop):
                return hop
        return client


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
