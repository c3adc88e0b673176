"""The HTTP access log, without secrets.

Spectator-link and one-time login tokens travel in the URL (``/s/<token>``,
``/login/<token>``): they are cut out
before a line is written. Cookies and Authorization headers are never logged.
"""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, Request, StreamResponse

from .login import client_address

_TOKEN_PATH = re.compile(r"^/(s|login)/[^/?#]+")


def redact(path: str) -> str:
    """The request path as it may appear in a log line."""
    return _TOKEN_PATH.sub(r"/\1/[redacted]", path)


class AccessLogger(AbstractAccessLogger):
    """``address "METHOD path" status bytes seconds``, tokens redacted."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        address = client_address(request) if isinstance(request, Request) else request.remote
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            address,
            request.method,
            redact(request.path_qs),
            response.status,
            response.body_length,
            time,
        )
