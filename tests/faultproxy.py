"""A TCP proxy on loopback that breaks the link on demand: pass, delay, blackhole, reset.

For the faults a real peer cannot produce when asked (toxiproxy is not
packaged here, and ``tc netem`` needs privileges CI may not have): put it
between a client and a real server, then change :attr:`FaultProxy.mode`.

* ``PASS``: bytes go through as they come.
* ``DELAY``: every chunk goes ``delay`` seconds after it came, in order.
* ``BLACKHOLE``: connections stay up and everything sent is dropped, both
  ways: a partition the peers' TCP does not see.
* ``RESET``: every open connection is reset (RST), and new ones at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
from collections.abc import Coroutine
from typing import Any


class Mode(enum.Enum):
    PASS = "pass"
    DELAY = "delay"
    BLACKHOLE = "blackhole"
    RESET = "reset"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST: SO_LINGER 0, then abort."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._mode = Mode.PASS
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        # Directions still pumping per pair: the last one to end closes both sockets.
        self._open: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Bytes the blackhole swallowed.
        self.dropped = 0
        self.port = 0

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        self._mode = mode
        if mode is Mode.RESET:
            for pair in list(self._pairs):
                for writer in pair:
                    _reset(writer)

    async def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._pairs):
            for writer in pair:
                writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode is Mode.RESET:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            _reset(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        self._open[pair] = 2
        self._spawn(self._pump(reader, up_writer, pair))
        self._spawn(self._pump(up_reader, writer, pair))

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def send() -> None:
            while (item := await queue.get()) is not None:
                due, chunk = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while chunk := await reader.read(65536):
                if self._mode is Mode.BLACKHOLE:
                    self.dropped += len(chunk)
                    continue
                delay = self.delay if self._mode is Mode.DELAY else 0.0
                queue.put_nowait((loop.time() + delay, chunk))
            queue.put_nowait(None)
            await sender
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await sender
            self._pairs.discard(pair)
            self._open[pair] = self._open.get(pair, 1) - 1
            if self._open[pair] <= 0:
                # Closed, not left to the garbage collector (an unclosed StreamWriter warns).
                del self._open[pair]
                for end in pair:
                    end.close()
