"""The HTTP access log, without secrets.

Spectator-link and one-time login tokens travel in the URL (``/s/<token>``,
``/login/<token>``): they are cut out before a line is written, however the
path spells them (``////s/<token>``, ``/s%2F<token>``, ``/%73/<token>``,
``/x/../s/<token>``, or quoted in a ``?next=``): the target is decoded
twice and its path (and ``next``) resolved as a router would before the
token's place is found. Cookies and Authorization headers are never logged.

A request aiohttp's parser refused (an unknown method, a huge header) never
reached the application: it is logged with the TCP peer's address, since
no trusted-proxy rule applies to what was never routed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, unquote

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .identity import logged_address

_LINK_ROUTES = ("s", "login")


def redact(target: str) -> str:
    """The request target (path and query) as it may appear in a log line."""
    decoded = unquote(unquote(target, errors="replace"), errors="replace")
    for token in set(_tokens(decoded)):
        # Whole segments only: a short "token" must not blank a whole line.
        decoded = re.sub(rf"(?<=[/\\=]){re.escape(token)}(?=$|[/\\?#&])", "[redacted]", decoded)
    return decoded


def _tokens(decoded: str) -> Iterator[str]:
    """What stands where a link's token would, once the path is resolved."""
    path, _, query = decoded.partition("?")
    places = [path, *(value for key, value in parse_qsl(query) if key == "next")]
    for place in places:
        # As a router or a browser resolves it: "/x/../s/t" is "/s/t".
        segments = [s for s in posixpath.normpath(place.replace("\\", "/")).split("/") if s]
        if len(segments) >= 2 and segments[0].lower() in _LINK_ROUTES:
            yield segments[1]


class AccessLogger(AbstractAccessLogger):
    """``address "METHOD path" status bytes seconds``, tokens redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        address = logged_address(request)
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            address,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time,
        )
