"""Log lines nobody outside can forge.

Much of what the gateway logs came from outside: a ttyd's close reason, a
request path, a container's name, a Docker error. A newline in any of them
would start a line that looks like the gateway's own ("... INFO gateway.login:
login ok"), and other control characters can rewrite a terminal that tails
the log. So every record's message is escaped as it is emitted, whoever
logged it; tracebacks (``exc_text``) keep their lines.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as ``\\xNN`` or ``\\uNNNN``."""
    return _CONTROLS.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class EscapingFilter(logging.Filter):
    """A handler filter: the record's message, controls escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


class MalformedRequestFilter(logging.Filter):
    """aiohttp's "Error handling request" for a request its parser refused: one line.

    Anyone can send a bad method or an 8 KiB header; aiohttp logs each with
    a full traceback at ERROR. What was wrong is worth a line at INFO: the
    kind of error, never its message, which quotes the raw request (a
    cookie, a bearer token, a login body).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError):
            record.msg = f"{record.getMessage()}: {exc.code} {type(exc).__name__}"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def handler(stream: TextIO | None = None) -> logging.Handler:
    """One line per record on ``stream`` (stderr), escaped, parser noise made quiet."""
    return _dressed(logging.StreamHandler(stream))


def file_handler(path: Path) -> logging.Handler:
    """:func:`handler`, appending to ``path`` (0600: it names clients and paths)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    return _dressed(logging.FileHandler(path, encoding="utf-8"))


def _dressed(out: logging.Handler) -> logging.Handler:
    out.setFormatter(logging.Formatter(FORMAT))
    out.addFilter(MalformedRequestFilter())
    out.addFilter(EscapingFilter())
    return out


def configure(level: int | str) -> None:
    """The gateway's logging (``gateway serve``)."""
    logging.basicConfig(level=level, handlers=[handler()])
