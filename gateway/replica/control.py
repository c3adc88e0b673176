"""The control channel: what one replica tells every other (a session ended).

A Redis **stream**, ``control``, capped at about :data:`CAPACITY` entries;
each replica appends with ``XADD`` and reads everything after the last id
it saw with a blocking ``XREAD`` on a connection of its own.

Why a stream and not pub/sub: pub/sub delivers only to whoever is
subscribed at that instant, so a replica whose connection to Redis blipped
would silently miss a logout and keep that user's terminals open. A stream
is read from a position: after a reconnect the reader resumes from its last
id and gets what it missed (ids are Redis's time, so after Redis itself
restarted, new entries still sort after the old position). It costs a few
MB at most, and it is the same tool the agents' output uses. What a stream
cannot give back (Redis lost its data) does not matter here: the sessions
went with it, and every replica's sweeper, which asks Redis which of its
sessions still live, closes their sockets anyway; the channel only makes
the ending immediate.

Entries: ``k`` (kind: ``session``, or ``presence``: ``v`` is an agent whose
viewers changed there), ``v`` (a session key, never an id), ``r``
(the sender, who acted already and skips its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import RedisUnavailable
from .client import BLOCK_MS, RedisLink
from .lua import text

log = logging.getLogger(__name__)

CAPACITY = 10_000
RETRY_SECONDS = 0.5

Listener = Callable[[str, str], Awaitable[None]]


class RedisControl:
    """:class:`~gateway.seams.ControlChannel` over a Redis stream."""

    def __init__(self, link: RedisLink, prefix: str, replica: str) -> None:
        self._link = link
        self._key = f"{prefix}control"
        self._replica = replica
        self.listeners: list[Listener] = []
        self._last: bytes | None = None
        # Set once the reader knows where it starts (what is published after
        # that is seen): tests and a starting app wait for it.
        self.reading = asyncio.Event()

    async def publish(self, kind: str, value: str) -> None:
        """Tell the others; if Redis does not answer, their sweepers will find out."""
        fields: dict[Any, Any] = {"k": kind, "v": value, "r": self._replica}
        command = self._link.client.xadd(self._key, fields, maxlen=CAPACITY, approximate=True)
        try:
            await self._link.call(command)
        except RedisUnavailable as exc:
            log.warning("control: %s not announced to the other replicas: %s", kind, exc)

    async def run(self) -> None:
        """Read and dispatch until cancelled; survives Redis going away and coming back."""
        reader = self._link.reader()
        while True:
            try:
                if self._last is None:
                    newest = await self._link.call(reader.xrevrange(self._key, count=1))
                    self._last = newest[0][0] if newest else b"0-0"
                    self.reading.set()
                reply = await self._link.call(
                    reader.xread({self._key: self._last}, count=100, block=BLOCK_MS)
                )
            except RedisUnavailable as exc:
                log.debug("control: Redis unavailable: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for entry_id, fields in read_entries(reply):
                self._last = entry_id
                await self._dispatch(fields)

    async def _dispatch(self, fields: dict[bytes, bytes]) -> None:
        if text(fields.get(b"r")) == self._replica:
            return
        kind, value = text(fields.get(b"k")), text(fields.get(b"v"))
        for listener in self.listeners:
            try:
                await listener(kind, value)
            except Exception:
                # One bad message or listener must not stop the channel.
                log.exception("control: listener failed on %r", kind)


def read_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREAD's entries, whether the reply came as RESP2 (a list) or RESP3 (a dict)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, dict) else [item[1] for item in reply]
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    for stream in streams:
        # RESP3 nests one more list per stream.
        items = stream[0] if stream and isinstance(stream[0], list) else stream
        entries.extend((entry_id, fields) for entry_id, fields in items)
    return entries
