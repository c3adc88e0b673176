"""A resumable ring of numbered items, sans I/O (the event feed, container logs).

:class:`Ring` keeps the last items of a stream with sequence numbers and
turns a client's ``Last-Event-ID`` into the place to continue from, or into
"cannot" (the client gets a ``reset`` event instead of a gap or a repeat).
Ids on the wire are ``<epoch>-<seq>``; the epoch is random per ring, so an id
from another ring (a restarted gateway) is recognised as foreign rather than
misread. A ring may mirror one kept elsewhere (:meth:`Ring.restart`: replica
mode's feed takes the Redis stream's epoch and numbers). Container logs
number their ring locally and name lines on the wire by their source
(:class:`gateway.docker.logdecode.Numbering`).
"""

from __future__ import annotations

import re
import secrets
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Longer Last-Event-ID values are not ours.
MAX_EVENT_ID = 64

_EVENT_ID = re.compile(r"([0-9a-f]{8,32})-([0-9]{1,18})")
_EPOCH = re.compile(r"[0-9a-f]{8,32}")


def parse_event_id(last_event_id: str | None) -> tuple[str, int] | None:
    """``(epoch, seq)`` of an id of ours, or None for anything else (too long, malformed)."""
    if last_event_id is None or len(last_event_id) > MAX_EVENT_ID:
        return None
    match = _EVENT_ID.fullmatch(last_event_id.strip())
    return None if match is None else (match[1], int(match[2]))


class Ring(Generic[T]):
    """The last ``capacity`` items (and at most ``max_bytes``), numbered from 1."""

    def __init__(
        self,
        capacity: int,
        *,
        max_bytes: int | None = None,
        size: Callable[[T], int] = lambda _: 0,
    ) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one item")
        self.epoch = secrets.token_hex(8)
        self._items: deque[tuple[T, int]] = deque()
        self._capacity = capacity
        self._max_bytes = max_bytes
        self._size = size
        self._bytes = 0
        # The number the next item gets; the first one is 1, so "<epoch>-0"
        # means "before anything".
        self.next_seq = 1

    def __len__(self) -> int:
        return len(self._items)

    @property
    def first_seq(self) -> int:
        """The number of the oldest item still here (== next_seq when empty)."""
        return self.next_seq - len(self._items)

    def append(self, item: T) -> int:
        size = self._size(item)
        self._items.append((item, size))
        self._bytes += size
        while len(self._items) > self._capacity or (
            self._max_bytes is not None and self._bytes > self._max_bytes and len(self._items) > 1
        ):
            self._bytes -= self._items.popleft()[1]
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def restart(self, epoch: str, next_seq: int) -> None:
        """Forget every item and go on as ``epoch``, numbering from ``next_seq``.

        A mirror of a ring kept elsewhere (replica mode: the Redis ``events``
        stream) follows that ring's epoch and numbers; a reader still inside
        the old epoch sees :attr:`epoch` change and must start over.
        """
        if _EPOCH.fullmatch(epoch) is None or next_seq < 1:
            raise ValueError(f"not a ring position: {epoch[:40]!r}, {next_seq}")
        self.epoch = epoch
        self._items.clear()
        self._bytes = 0
        self.next_seq = next_seq

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    @property
    def last_id(self) -> str:
        """The id of the newest item (``<epoch>-0`` before the first)."""
        return self.event_id(self.next_seq - 1)

    def resume(self, last_event_id: str | None) -> int | None:
        """Where a client that last saw ``last_event_id`` continues, or None.

        None means the client cannot be given exactly what it missed: the id
        belongs to another ring, is malformed, lies in the future, or what
        followed it has already left the ring.
        """
        parsed = parse_event_id(last_event_id)
        if parsed is None or parsed[0] != self.epoch:
            return None
        seen = parsed[1]
        if seen >= self.next_seq or seen + 1 < self.first_seq:
            return None
        return seen + 1

    def tail(self, count: int) -> int:
        """Where to start to get the newest ``count`` items."""
        return max(self.first_seq, self.next_seq - count)

    def since(self, seq: int, limit: int | None = None) -> list[tuple[int, T]]:
        """Items numbered ``seq`` and up (those still here), oldest first."""
        start = max(seq, self.first_seq)
        skip = start - self.first_seq
        stop = len(self._items) if limit is None else min(len(self._items), skip + limit)
        return [(self.first_seq + i, self._items[i][0]) for i in range(skip, stop)]
