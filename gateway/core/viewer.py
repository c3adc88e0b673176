"""The outbound side of one browser connection to an agent, on asyncio.

A :class:`Viewer` is the relay's key for one connection and the thin adapter
around it: the event that runs its sender, the direct writer the handler
attached, and :meth:`Viewer.batches`, which the handler sends from. What it
gets and when is the relay's decision (:mod:`gateway.core.relay`); the few
things it needs from its hub (a snapshot, to leave) come in as a
:class:`ViewerHost`, not as the hub itself.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from . import ttyd
from .relay import Relay, ViewerState

#: A resync repaints the viewer's scrollback whole at most this often, and
#: with the newest RESYNC_HISTORY lines otherwise (xterm.js's RIS wipes it).
FULL_REPAINT_INTERVAL = 10.0
RESYNC_HISTORY = 1000


class ViewerHost(Protocol):
    """What a viewer asks of the hub it watches."""

    def join_frames(self, history: int = 0) -> list[bytes]:
        """The frames that repaint a viewer now, after ``history`` lines of history."""

    async def history_frames(self) -> list[bytes]:
        """The frames that repaint a viewer, after all the history."""

    def leave(self, viewer: Viewer) -> None: ...


class Viewer:
    """Created by :meth:`Hub.join`; drive it with ``async for batch in
    viewer.batches()`` and send each frame of a batch. It ends when the
    viewer is closed (:attr:`close_code` says why).
    """

    def __init__(self, host: ViewerHost, relay: Relay[Viewer], who: str = "") -> None:
        self._host = host
        self._relay = relay
        # Who is watching (a user name), for presence.
        self.who = who
        # This connection among every replica's: who resized is not told so.
        self.id = secrets.token_hex(8)
        self._wakeup = asyncio.Event()
        self._wakeup.set()  # its first batch, the snapshot, is due
        # Writes refused because this viewer is read-only (counted by the handler).
        self.refused = 0
        self.close_code: int | None = None
        self._write: Callable[[bytes], bool] | None = None
        self._full_repaint_at: float | None = None

    @property
    def queued_bytes(self) -> int:
        return self._relay.queued_bytes(self)

    @property
    def resyncs(self) -> int:
        return self._relay.resyncs_of(self)

    def attach(self, write: Callable[[bytes], bool]) -> None:
        """Let the hub write output straight to the socket while nothing waits.

        ``write`` takes a whole WebSocket frame and returns False when the
        socket cannot take it now (closing, or its buffer is full): the frame
        then queues as usual and the sender takes over, in order.
        """
        self._write = write

    def write(self, wire: bytes) -> bool:
        """Write a whole WebSocket frame to the socket now, if it takes it."""
        return self._write is not None and self._write(wire)

    def wake(self) -> None:
        self._wakeup.set()

    def pause(self) -> None:
        """ttyd's ``'2'``: stop sending to this viewer only (its queue stays bounded)."""
        self._relay.pause(self)

    def resume(self) -> None:
        """ttyd's ``'3'``."""
        if self._relay.resume(self):
            self._wakeup.set()

    def notice(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        """Tell this viewer something (input refused, who resized the agent, ...).

        Notices travel apart from the output queue, so a resync (which drops
        that queue) never swallows one; only the latest few are kept.
        """
        if self._relay.notice(self, ttyd.Notice(code, message, details).serialize()):
            self._wakeup.set()

    def close(self, code: int) -> None:
        """End :meth:`batches`; the handler closes the socket with ``code``."""
        if self.close_code is None:
            self.close_code = code
            self._wakeup.set()
            self._host.leave(self)

    def owe_full_repaint(self) -> None:
        """The next repaint carries the whole history (the hub rebuilt it)."""
        self._full_repaint_at = None
        self._wakeup.set()

    async def _repaint(self) -> list[bytes]:
        """The frames of a resync: all the history on joining, and at most
        every FULL_REPAINT_INTERVAL after (a viewer too slow to keep up
        must not make the hub write megabytes for it every time it falls
        behind); a few lines of it in between."""
        now = time.monotonic()
        if self._full_repaint_at is None or now - self._full_repaint_at >= FULL_REPAINT_INTERVAL:
            self._full_repaint_at = now
            return await self._host.history_frames()
        return self._host.join_frames(RESYNC_HISTORY)

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Yield lists of encoded frames to send, in order, until closed."""
        relay = self._relay
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            state = relay.state(self)
            if state is ViewerState.CLOSED:
                return
            if state is ViewerState.RESYNC:
                frames = await self._repaint()
                state = relay.state(self)
                if state is ViewerState.CLOSED:
                    return
                if state is not ViewerState.RESYNC:
                    continue  # paused meanwhile: repainted when it resumes
                # Taken while still owing the resync: output the hub flushed
                # for the snapshot is in it, so this viewer must not get it again.
                batch = relay.take(self, frames)
            else:
                batch = relay.take(self)
            if batch:
                try:
                    yield batch
                finally:
                    if relay.sent(self):
                        self._wakeup.set()
