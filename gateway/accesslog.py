"""The HTTP access log, without secrets.

Spectator-link and one-time login tokens travel in the URL (``/s/<token>``,
``/login/<token>``): they are cut out before a line is written, however the
path spells its slashes (``////s/<token>``, ``/s%2F<token>``). Cookies and
Authorization headers are never logged.

A request aiohttp's parser refused (an unknown method, a huge header) never
reached the application: it is logged with the TCP peer's address, since
no trusted-proxy rule applies to what was never routed.
"""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from .login import logged_address

# A path segment "s" or "login", then the next one; "%2F" is a slash too.
_TOKEN_PATH = re.compile(r"(?i)^((?:/|%2f)+(?:s|login)(?:/|%2f)+)[^/?#]+")


def redact(path: str) -> str:
    """The request path as it may appear in a log line."""
    return _TOKEN_PATH.sub(r"\1[redacted]", path)


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
