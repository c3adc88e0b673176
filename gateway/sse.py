"""Server-Sent Events: a resumable ring of numbered items, and the stream.

:class:`Ring` is sans-I/O. It keeps the last items of a stream with
sequence numbers and turns a client's ``Last-Event-ID`` into the place to
continue from, or into "cannot" (the client gets a ``reset`` event instead of
a gap or a repeat). Ids on the wire are ``<epoch>-<seq>``; the epoch is random
per ring, so an id from another ring (a restarted gateway, a recreated
container) is recognised as foreign rather than misread.

:class:`EventStream` is the thin aiohttp side: headers that keep proxies from
buffering, a ``retry:`` hint, keep-alive comments, and a write timeout so a
client that stopped reading is dropped instead of holding a handler forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from aiohttp import web

from .errors import LocalProtocolError

T = TypeVar("T")

# How long a stream may stay silent before a comment line keeps proxies
# (and the browser's idle timers) from dropping it.
KEEPALIVE_SECONDS = 15.0
# How often a waiting stream checks that its client is still there.
DISCONNECT_CHECK = 1.0
# A client that has not taken a write within this long is gone.
WRITE_TIMEOUT = 30.0
# What EventSource waits before reconnecting, in milliseconds.
RETRY_MS = 2000
# Longer Last-Event-ID values are not ours.
MAX_EVENT_ID = 64

_EVENT_ID = re.compile(r"([0-9a-f]{8,32})-([0-9]{1,18})")


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
        if last_event_id is None or len(last_event_id) > MAX_EVENT_ID:
            return None
        match = _EVENT_ID.fullmatch(last_event_id.strip())
        if match is None or match[1] != self.epoch:
            return None
        seen = int(match[2])
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


def format_event(data: str, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One SSE event; ``data`` may span lines, ``event`` and ``event_id`` may not."""
    fields = []
    for name, value in (("id", event_id), ("event", event)):
        if value is not None:
            if "\n" in value or "\r" in value:
                raise LocalProtocolError(f"SSE {name} must be one line")
            fields.append(f"{name}: {value}\n")
    fields.extend(f"data: {line}\n" for line in data.splitlines() or [""])
    return ("".join(fields) + "\n").encode()


class Signal:
    """Wakes every waiter at once: an :class:`asyncio.Event` that re-arms itself.

    Take :meth:`waiter` *before* looking at the state it guards, then wait on
    it: a fire between the look and the wait is not lost.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event


async def wait_any(events: Iterable[asyncio.Event], within: float) -> None:
    """Until one of ``events`` is set, or ``within`` seconds pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class EventStream:
    """One ``text/event-stream`` response.

    :meth:`close` (what a session's end calls, like a WebSocket's) only asks:
    the handler sees :attr:`closing`, stops, and the response ends.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                # nginx (and proxies that copy it) must not buffer the stream.
                "X-Accel-Buffering": "no",
            }
        )
        self.closing = asyncio.Event()

    @property
    def response(self) -> web.StreamResponse:
        return self._response

    async def open(self) -> None:
        await self._response.prepare(self._request)
        await self._write(f"retry: {RETRY_MS}\n\n".encode())

    async def send(self, events: Sequence[bytes]) -> None:
        """Write formatted events in one go; raises ConnectionError when the client is gone."""
        if events:
            await self._write(b"".join(events))

    async def keepalive(self) -> None:
        await self._write(b": keep-alive\n\n")

    async def wait(self, *events: asyncio.Event) -> None:
        """Until one of ``events`` is set, closing is asked, or it is time for a keep-alive.

        A client that went away is noticed within a second, not at the next
        keep-alive write: a log stream with no listener left must close.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KEEPALIVE_SECONDS
        everything = (*events, self.closing)
        while not any(event.is_set() for event in everything):
            left = deadline - loop.time()
            if left <= 0:
                return
            await wait_any(everything, min(left, DISCONNECT_CHECK))
            transport = self._request.transport
            if transport is None or transport.is_closing():
                self.closing.set()

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closing.set()
        return True

    async def finish(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._response.write_eof()

    async def _write(self, data: bytes) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self._response.write(data)
        except TimeoutError:
            self.closing.set()
            if self._request.transport is not None:
                self._request.transport.abort()
            raise ConnectionResetError("the event-stream client stopped reading") from None
