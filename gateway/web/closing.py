"""Close a WebSocket from its handler's task, whoever asks for the close.

aiohttp's ``close()`` called by one task while another waits in
``receive()`` wakes the reader with CLOSING and then drops the TCP
connection at once, without waiting for the client's close frame (aiohttp
#3448, #9506): a client still answering finds its connection reset, and
aiohttp's own client then reports 1006 instead of the code the gateway sent.
A viewer's sender writing while the close frame drains can also put a data
frame after it. So other tasks (logout, revocation, shutdown, the viewer's
sender) only *ask* through a :class:`HandlerClose`; the handler stops
reading and sending, then closes with nobody else on the socket, and
aiohttp completes the closing handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMessage, web


class HandlerClose:
    """The closable a handler registers instead of its WebSocket.

    The reading coroutine gets its messages from :meth:`receive`, which is
    interrupted when a close is asked for while it waits (never while the
    reader handles a message: input being sent is sent, and audited).
    """

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self._transport = transport
        self._asked: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._closed = asyncio.Event()
        self._reader: asyncio.Task[Any] | None = None
        self._receiving = False

    @property
    def asked(self) -> bool:
        return self._asked.done()

    def ask(self, code: int, message: bytes = b"") -> None:
        """Ask the handler to close with ``code``; the first request wins."""
        if self._asked.done():
            return
        self._asked.set_result((code, message))
        if self._receiving and self._reader is not None:
            self._reader.cancel()

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Ask for the close and wait until the handler has done it."""
        self.ask(code, message)
        await self._closed.wait()
        return True

    def abort(self) -> None:
        """Drop the connection: a peer that stopped reading never takes the close frame.

        aiohttp's close waits for the socket to drain, with no deadline; once
        the transport is gone that wait ends, and so does the handler.
        """
        self.ask(WSCloseCode.GOING_AWAY)
        if self._transport is not None:
            self._transport.abort()

    async def receive(self) -> WSMessage | None:
        """The next message, or None once a close was asked for."""
        if self._asked.done():
            return None
        self._receiving = True
        try:
            return await self.ws.receive()
        finally:
            self._receiving = False

    async def serve(self, reading: Coroutine[Any, Any, tuple[int, bytes] | None]) -> None:
        """Run ``reading`` until it ends or a close is asked for; then close.

        ``reading`` returns the close it wants (code, reason), or None for a
        plain one. A close asked for from outside wins over it.
        """
        reader = self._reader = asyncio.create_task(reading, name="ws-reader")
        try:
            await asyncio.wait((reader, self._asked), return_when=asyncio.FIRST_COMPLETED)
            # Asked while the reader handled a message: it finishes that one
            # and returns at its next receive.
            await asyncio.wait((reader,))
            wanted = None if reader.cancelled() else reader.result()
            code, message = (
                self._asked.result() if self._asked.done() else wanted or (WSCloseCode.OK, b"")
            )
            await self.ws.close(code=code, message=message)
            if self.ws.close_code == WSCloseCode.ABNORMAL_CLOSURE and self._transport is not None:
                # Dropped without a handshake (the heartbeat got no pong, the
                # read failed): aiohttp then closes the transport, which waits
                # for its buffer to drain, for ever if the peer holds a zero
                # window. Nobody will read what is left: let the socket go now.
                self._transport.abort()
        finally:
            if not reader.done():  # the handler itself was cancelled
                reader.cancel()
            self._closed.set()
