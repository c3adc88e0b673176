"""Server-Sent Events on aiohttp: the framing and the stream.

What a stream resumes from is :class:`gateway.ring.Ring`, sans-I/O.
:class:`EventStream` is the thin aiohttp side: headers that keep proxies from
buffering, a ``retry:`` hint, keep-alive comments, and a write timeout so a
client that stopped reading is dropped instead of holding a handler forever.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import TypeVar

from aiohttp import web

from ..errors import LocalProtocolError

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

    def abort(self) -> None:
        self.closing.set()
        if self._request.transport is not None:
            self._request.transport.abort()

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
