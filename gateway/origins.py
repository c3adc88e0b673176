"""Which browser origins may open WebSockets and send state-changing requests.

A WebSocket upgrade carries the page's cookies whatever site the page is on,
so without this check any web page an operator visits could type into their
agents (cross-site WebSocket hijacking). The rule is exact: the ``Origin``
header must equal one configured origin, byte for byte, after the config
values were normalised the way browsers serialise origins (lower-case scheme
and host, default port omitted). No substring, suffix or pattern matching;
``null`` and a missing header are refused.

:class:`HostPolicy` is the same rule for the ``Host`` header, against DNS
rebinding: a page on ``evil.example`` whose name is made to resolve to the
gateway's address is same-origin with the gateway as far as the browser is
concerned, and sends no ``Origin`` on a GET. Only the ``Host`` it sends,
``evil.example``, gives it away.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigError

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` as a browser would send it, or ConfigError."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid origin {value!r}: {exc}") from None
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.hostname.endswith(".")
    ):
        raise ConfigError(f"an origin is scheme://host[:port], got {value!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """The set of origins allowed to act on this gateway."""

    allowed: frozenset[str]

    @classmethod
    def of(cls, *origins: str) -> OriginPolicy:
        return cls(frozenset(normalize_origin(origin) for origin in origins))

    def allows(self, header: str | None) -> bool:
        """True only for an ``Origin`` header equal to an allowed origin."""
        return header is not None and header in self.allowed


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The ``Host`` headers that name this gateway: those of the allowed origins."""

    allowed: frozenset[str]

    @classmethod
    def of(cls, *origins: str) -> HostPolicy:
        hosts: set[str] = set()
        for origin in origins:
            normal = normalize_origin(origin)
            authority = normal.partition("://")[2]
            hosts.add(authority)
            parts = urlsplit(normal)
            if parts.port is None:
                # A default port may be spelt out in Host: "gw.example:443".
                hosts.add(f"{authority}:{_DEFAULT_PORTS[parts.scheme]}")
        return cls(frozenset(hosts))

    def allows(self, header: str | None) -> bool:
        """True for a ``Host`` equal (ignoring case) to an allowed origin's host[:port]."""
        return header is not None and header.lower() in self.allowed
