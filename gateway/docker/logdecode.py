"""Docker's log stream, decoded: sans I/O, bytes in, :class:`LogLine` out.

The body of ``GET /containers/{id}/logs`` with ``timestamps=1``: for a
container without a TTY it is multiplexed (an 8-byte header per message:
stream, 0, 0, 0, length); with a TTY it is one raw stream. Either way every
message starts with Docker's RFC 3339 timestamp, which is what resuming a
log relies on: :class:`Position` is how far a log has been read,
:class:`Seen` drops what a resumed stream repeats, and :class:`Numbering`
names each line by its source (the container, the timestamp and a count at
that timestamp), so a log event id means the same line on any gateway
replica, or after a restart, and resumes from what Docker itself keeps. Kept apart from the
follower threads in :mod:`gateway.docker.logs` so that it is tested on bytes
alone.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime

# One log line is cut at this many characters (Docker itself splits at 16 KiB).
MAX_LINE = 16 * 1024

_STREAMS = {0: "stdin", 1: "stdout", 2: "stderr"}
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a container's output, as Docker recorded it."""

    ts: str  # RFC 3339, as Docker wrote it
    ns: int  # the same instant in nanoseconds since the epoch
    stream: str  # stdout or stderr
    text: str
    # Its number among the lines at ``ns`` (1, 2, ...), given as it enters a
    # ring (:class:`Numbering`): with ``ns``, what names it on every gateway.
    count: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return self.ns, self.count

    def json(self) -> str:
        return json.dumps(
            {"ts": self.ts, "stream": self.stream, "line": self.text}, ensure_ascii=False
        )


def parse_timestamp(text: str) -> int:
    """Docker's RFC 3339 (nano) timestamp → nanoseconds since the epoch."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Docker timestamp: {text[:40]!r}")
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(datetime.fromisoformat(match[1] + zone).timestamp())
    return seconds * 1_000_000_000 + int((match[2] or "0").ljust(9, "0"))


def since_param(ns: int) -> str:
    """Docker's ``since`` for an instant: seconds with nine decimals."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


@dataclass(slots=True)
class Position:
    """How far a log has been read: the newest timestamp, and lines taken at exactly it.

    Docker's ``since`` is inclusive and timestamps can repeat, so resuming
    means asking ``since`` :attr:`ns` and skipping :attr:`count` lines there.
    """

    ns: int = 0
    count: int = 0

    def advance(self, line: LogLine) -> None:
        if line.ns > self.ns:
            self.ns, self.count = line.ns, 1
        elif line.ns == self.ns:
            self.count += 1


class LogDecoder:
    """Bytes of a Docker logs body in, lines out (sans I/O)."""

    def __init__(self, tty: bool) -> None:
        self._tty = tty
        self._buffer = bytearray()
        # A message Docker split (no newline yet), per stream: (timestamp, text so far).
        self._partial: dict[str, tuple[str, bytearray]] = {}
        self._last_ns = 0

    def feed(self, data: bytes) -> list[LogLine]:
        self._buffer += data
        lines: list[LogLine] = []
        if self._tty:
            while (end := self._buffer.find(b"\n")) >= 0:
                lines += self._message("stdout", bytes(self._buffer[: end + 1]))
                del self._buffer[: end + 1]
            if len(self._buffer) > MAX_LINE + 64:
                # An endless line: cut it like Docker would have.
                lines += self._message("stdout", bytes(self._buffer))
                self._buffer.clear()
            return lines
        while len(self._buffer) >= 8:
            kind, length = self._buffer[0], int.from_bytes(self._buffer[4:8], "big")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            lines += self._message(_STREAMS.get(kind, "stdout"), payload)
        return lines

    def _message(self, stream: str, payload: bytes) -> list[LogLine]:
        stamp, _, rest = payload.partition(b" ")
        ts = stamp.decode("ascii", "replace")
        complete = rest.endswith(b"\n")
        if complete:
            rest = rest[:-1]
        partial = self._partial.pop(stream, None)
        if partial is not None:
            ts, text = partial[0], partial[1] + rest
        else:
            text = bytearray(rest)
        if not complete and len(text) < MAX_LINE:
            self._partial[stream] = (ts, text)
            return []
        try:
            ns = parse_timestamp(ts)
        except ValueError:
            ts, ns = "", self._last_ns
        self._last_ns = ns
        body = bytes(text[:MAX_LINE]).decode("utf-8", "replace").removesuffix("\r")
        return [LogLine(ts, ns, stream, body)]


class Seen:
    """Filters one stream read from ``position`` on, advancing it."""

    def __init__(self, position: Position) -> None:
        self._position = position
        self._at, self._skip = position.ns, position.count

    def fresh(self, line: LogLine) -> bool:
        if line.ns < self._at:
            return False
        if line.ns == self._at and self._skip > 0:
            self._skip -= 1
            return False
        self._position.advance(line)
        return True


# Longer Last-Event-ID values are not log ids.
MAX_LOG_ID = 64
_LOG_ID = re.compile(r"([0-9a-f]{12})-([0-9]{1,20})-([0-9]{1,9})")
# A log id this far ahead of our clock names no line Docker logged (Docker's
# clock is the host's; a replica on another host may run a little ahead).
FUTURE_SLACK_NS = 60 * 1_000_000_000


class Numbering:
    """Gives the lines of one container, in the order Docker returns them, their keys.

    A key is ``(ns, count)``: the timestamp, clamped so keys never go back
    (stdout and stderr are stamped by two writers), and the line's number at
    it. Every gateway reads the same log in the same order, so it gives the
    same keys, with one exception: a history cut by ``tail`` may begin inside
    a run of equal timestamps, so the first run's counts depend on where it
    was cut. :meth:`uncertain` says which timestamp that is; an id at it is
    not trusted (a reset, never a wrong line).
    """

    def __init__(self, container_id: str) -> None:
        self.prefix = container_id[:12]
        self._last = (0, 0)
        self._first_ns: int | None = None
        self._cut = True

    def number(self, line: LogLine) -> LogLine:
        ns, count = self._last
        key = (ns, count + 1) if line.ns <= ns else (line.ns, 1)
        self._last = key
        if self._first_ns is None:
            self._first_ns = key[0]
        return dataclasses.replace(line, ns=key[0], count=key[1])

    def history_loaded(self, lines: int, tail: int) -> None:
        """The history had ``lines`` lines for a ``tail`` of ``tail``: fewer means all of it."""
        if lines < tail:
            self._cut = False

    @property
    def uncertain(self) -> int | None:
        return self._first_ns if self._cut else None

    def event_id(self, line: LogLine) -> str:
        return f"{self.prefix}-{line.ns}-{line.count}"

    def parse(self, last_event_id: str | None, now_ns: int) -> tuple[int, int] | None:
        """The key a client's id names in this container's log, or None (not ours, not sure)."""
        if last_event_id is None or len(last_event_id) > MAX_LOG_ID:
            return None
        match = _LOG_ID.fullmatch(last_event_id.strip())
        if match is None or match[1] != self.prefix:
            return None
        key = (int(match[2]), int(match[3]))
        uncertain = self.uncertain
        if key[1] < 1 or key[0] > now_ns + FUTURE_SLACK_NS:
            return None
        if uncertain is not None and key[0] <= uncertain:
            return None
        return key
