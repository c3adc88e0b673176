"""The HTTP access log, without secrets.

Spectator-link and one-time login tokens travel in the URL (``/s/<token>``,
``/login/<token>``): they are cut out before a line is written, however the
path spells them (``////s/<token>``, ``/s%2F<token>``, ``/%73/<token>``,
``/x/../s/<token>``, or quoted in a ``?next=``): the path is decoded, twice,
and any segment after an ``s`` or ``login`` one is redacted, wherever it
stands. Cookies and Authorization headers are never logged.

A request aiohttp's parser refused (an unknown method, a huge header) never
reached the application: it is logged with the TCP peer's address, since
no trusted-proxy rule applies to what was never routed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .login import logged_address

# A segment "s" or "login", then the next one; "%2F" and "\" are slashes too.
# Case-insensitive: some servers and proxies in front fold case.
_TOKEN_PATH = re.compile(r"(?i)((?:^|[/\\=]|%2f)(?:s|login)(?:[/\\]|%2f)+)[^/\\?#&%\s]+")


def redact(path: str) -> str:
    """The request target (path and query) as it may appear in a log line."""
    decoded = unquote(unquote(path, errors="replace"), errors="replace")
    return _TOKEN_PATH.sub(r"\1[redacted]", decoded)


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
