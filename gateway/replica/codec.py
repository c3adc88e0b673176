"""What replicas write to Redis and read back: keys, stream ids, entries; sans I/O.

An agent's output stream (``a:{id}:out``) is written by its owner only, and
its ids are positions: ``<offset>-<seq>``, where ``offset`` counts the bytes
of terminal output so far. An output entry's id is the offset *after* it
(seq 0), so ``XRANGE key (<offset> +`` is exactly what followed a position;
the other entries (resize, status, a new owner, answers to input) take the
next seq at the current offset. Anyone can tell from two ids whether
anything is missing between them (:meth:`Position.follows`).

Keys carry the agent id in braces, a Redis Cluster hash tag: all of one
agent's keys live on one shard, so one script may touch them together.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ..core import ttyd
from ..errors import PeerProtocolError


class Keys:
    """Every key of one gateway fleet, under its ``key_prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # Where live replicas say so (a sorted set, scored by Redis time).
        self.replicas = f"{prefix}replicas"
        # A random id of this Redis's data: when it changes, data was lost.
        self.epoch = f"{prefix}epoch"

    def _agent(self, agent_id: str, what: str) -> str:
        return f"{self.prefix}a:{{{agent_id}}}:{what}"

    def lease(self, agent_id: str) -> str:
        return self._agent(agent_id, "lease")

    def generation(self, agent_id: str) -> str:
        return self._agent(agent_id, "gen")

    def output(self, agent_id: str) -> str:
        return self._agent(agent_id, "out")

    def checkpoint(self, agent_id: str) -> str:
        return self._agent(agent_id, "ckpt")

    def status(self, agent_id: str) -> str:
        return self._agent(agent_id, "status")

    def inbox(self, agent_id: str) -> str:
        """Operator input and resizes from other replicas, for the owner."""
        return self._agent(agent_id, "in")


@dataclass(frozen=True, slots=True, order=True)
class StreamId:
    offset: int
    seq: int = 0

    @classmethod
    def parse(cls, raw: bytes | str) -> StreamId:
        text = raw.decode("ascii") if isinstance(raw, bytes) else raw
        offset, _, seq = text.partition("-")
        try:
            return cls(int(offset), int(seq or 0))
        except ValueError:
            raise PeerProtocolError(f"not a stream id: {text[:40]!r}") from None

    def __str__(self) -> str:
        return f"{self.offset}-{self.seq}"


#: Before the first entry of a stream (Redis refuses 0-0 as an id).
ORIGIN = StreamId(0, 0)


class Kind(enum.StrEnum):
    OUTPUT = "o"  # terminal output (the ttyd message without its '0')
    RESIZE = "r"  # the agent's terminal size changed: "columns rows"
    STATUS = "s"  # the owner's status frame payload (ttyd.Status)
    OWNER = "g"  # a new owner (its lease token) starts here: it repaints next
    HANDOVER = "h"  # the owner let go on purpose: take over now
    ANSWER = "a"  # the owner's answer to forwarded input (JSON)
    CHECKPOINT = "C"  # not a stream entry: the checkpoint hash, written in order


@dataclass(frozen=True, slots=True)
class Entry:
    id: StreamId
    kind: Kind
    data: bytes

    @classmethod
    def parse(cls, raw_id: bytes, fields: dict[bytes, bytes]) -> Entry:
        try:
            kind = Kind(fields[b"k"].decode("ascii"))
        except (KeyError, UnicodeDecodeError, ValueError):
            raise PeerProtocolError("a stream entry without a known kind") from None
        return cls(StreamId.parse(raw_id), kind, fields.get(b"d", b""))


class Position:
    """Where a stream stands, and the ids of the entries to add at its end."""

    def __init__(self, last: StreamId = ORIGIN) -> None:
        self.last = last

    @property
    def offset(self) -> int:
        return self.last.offset

    def output(self, length: int) -> StreamId:
        """The id of ``length`` bytes of output appended now (``length`` > 0)."""
        self.last = StreamId(self.last.offset + length, 0)
        return self.last

    def event(self) -> StreamId:
        """The id of a non-output entry appended now."""
        self.last = StreamId(self.last.offset, self.last.seq + 1)
        return self.last

    def follows(self, entry: Entry) -> bool:
        """Whether ``entry`` comes right after this position, with nothing lost between."""
        if entry.kind is Kind.OUTPUT:
            return entry.id.seq == 0 and entry.id.offset - len(entry.data) == self.last.offset
        return entry.id.offset == self.last.offset and entry.id.seq > self.last.seq

    def advance(self, entry: Entry) -> None:
        self.last = entry.id


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The screen at a stream position: its status (and so its size) and a repaint."""

    #: Lines of history a checkpoint's repaint carries. A follower starts
    #: from them and keeps what scrolls off after (up to server.scrollback);
    #: all 10,000 (megabytes of SGR) written every 512 KiB or 2 s would cost
    #: Redis more than the output itself.
    HISTORY: ClassVar[int] = 1000

    id: StreamId
    status: ttyd.Status
    # Terminal output that repaints the screen from any state (starts with RIS).
    repaint: bytes

    def encode(self) -> bytes:
        return self.status.serialize()[1:] + b"\n" + self.repaint

    @classmethod
    def decode(cls, raw_id: bytes, data: bytes) -> Checkpoint:
        header, newline, repaint = data.partition(b"\n")
        if not newline:
            raise PeerProtocolError("a checkpoint without its status line")
        return cls(StreamId.parse(raw_id), ttyd.Status.parse(header), repaint)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """Input or a resize a follower sent to the owner through the agent's inbox."""

    request: str  # unique per request: the answer names it
    owner: str  # the lease token the sender saw: another owner drops it
    message: bytes  # the ttyd client message (Input or Resize), serialized

    def fields(self) -> dict[Any, Any]:  # redis-py's field types
        return {"q": self.request, "g": self.owner, "m": self.message}

    @classmethod
    def parse(cls, fields: dict[bytes, bytes]) -> Forwarded:
        try:
            return cls(fields[b"q"].decode(), fields[b"g"].decode(), fields[b"m"])
        except (KeyError, UnicodeDecodeError):
            raise PeerProtocolError("a forwarded message without its fields") from None


def answer(request: str, error: str | None) -> bytes:
    body: dict[str, Any] = {"q": request, "ok": error is None}
    if error is not None:
        body["error"] = error
    return json.dumps(body, separators=(",", ":")).encode()


def parse_answer(data: bytes) -> tuple[str, str | None]:
    """(request, error or None) of an ANSWER entry."""
    try:
        body = json.loads(data)
        request, ok = body["q"], body["ok"]
    except (ValueError, KeyError, TypeError):
        raise PeerProtocolError("a malformed answer entry") from None
    if not isinstance(request, str) or not isinstance(ok, bool):
        raise PeerProtocolError("a malformed answer entry")
    error = None if ok else str(body.get("error", "refused"))
    return request, error
