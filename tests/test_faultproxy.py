"""The fault proxy the replica tests put between a gateway and Redis, held to its word."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from .conftest import eventually, timeout
from .faultproxy import FaultProxy, Mode


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    """A proxy in front of a real echo server on loopback."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    fault = FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    await fault.start()
    yield fault
    await fault.aclose()
    server.close()
    await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _read(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), timeout(10))


async def test_pass_carries_bytes_both_ways_in_order(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    payload = bytes(range(256)) * 1024  # 256 KiB: many chunks
    writer.write(payload)
    assert await _read(reader, len(payload)) == payload
    writer.close()


async def test_delay_holds_every_chunk_back_and_keeps_the_order(proxy: FaultProxy) -> None:
    proxy.mode, proxy.delay = Mode.DELAY, 0.3
    reader, writer = await _connect(proxy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(5):
        writer.write(b"%d," % i)
        await writer.drain()
    assert await _read(reader, 10) == b"0,1,2,3,4,"
    # Each way was held: a lower bound, the fault's own promise.
    assert loop.time() - started >= 2 * 0.3
    writer.close()


async def test_blackhole_drops_what_is_sent_and_keeps_the_connection(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"before|")
    assert await _read(reader, 7) == b"before|"
    proxy.mode = Mode.BLACKHOLE
    writer.write(b"lost|")
    # Swallowed, not merely in flight: else they would come out late, not lost.
    await eventually(lambda: proxy.dropped == len(b"lost|"), message="swallowed")
    proxy.mode = Mode.PASS
    writer.write(b"after|")
    # The positive marker: what comes back after the hole is only what followed it.
    assert await _read(reader, 6) == b"after|"
    assert not writer.is_closing()
    writer.close()


async def test_reset_breaks_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    assert await _read(reader, 1) == b"x"
    proxy.mode = Mode.RESET
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await _read(reader, 1)
    late_reader, late_writer = await _connect(proxy)
    with contextlib.suppress(ConnectionError):
        late_writer.write(b"y")
        await late_writer.drain()
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await _read(late_reader, 1)
    proxy.mode = Mode.PASS
    again_reader, again_writer = await _connect(proxy)
    again_writer.write(b"z")
    assert await _read(again_reader, 1) == b"z"
    again_writer.close()
