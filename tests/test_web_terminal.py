"""The direct writer's bargain with aiohttp, held by a real aiohttp server.

:func:`gateway.web.terminal.direct_writer` writes the hub's frames to a
viewer's transport beside aiohttp's own WebSocket writer. That is safe only
while aiohttp (1) writes each frame without yielding in the middle of it and
(2) marks the socket closed before it writes its close frame. An aiohttp
upgrade that changes either fails these tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.core import ttyd
from gateway.web.terminal import direct_writer

ROUNDS = 60
BIG = 200 * 1024  # far past the writer's limit and the socket's buffer


async def _client(handler: Any) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_get("/ws", handler)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_frames_from_both_writers_arrive_whole_and_in_their_order() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        assert request.transport is not None
        write = direct_writer(ws, request.transport)

        async def aiohttps() -> None:
            for i in range(ROUNDS):
                await ws.send_bytes(b"A%03d" % i + b"a" * BIG)

        async def ours() -> None:
            for i in range(ROUNDS):
                frame = ttyd.websocket_frame(b"B%03d" % i + b"b" * 1000)
                while not write(frame):
                    await asyncio.sleep(0.001)

        await asyncio.gather(aiohttps(), ours())
        await ws.close()
        return ws

    client = await _client(handler)
    try:
        ws = await client.ws_connect("/ws", max_msg_size=0)
        got: dict[bytes, list[int]] = {b"A": [], b"B": []}
        async for message in ws:
            assert message.type is WSMsgType.BINARY, message  # a torn frame is a protocol error
            data: bytes = message.data
            kind, number, body = data[:1], int(data[1:4]), data[4:]
            assert body == (b"a" * BIG if kind == b"A" else b"b" * 1000)
            got[kind].append(number)
            # A slow reader, so the server's buffer fills and both writers contend.
            await asyncio.sleep(0)
        assert got == {b"A": list(range(ROUNDS)), b"B": list(range(ROUNDS))}
    finally:
        await client.close()


async def test_the_socket_is_closed_before_aiohttp_writes_its_close_frame() -> None:
    seen: list[bool] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        write = direct_writer(ws, transport)
        original = transport.write

        def spy(data: bytes | bytearray | memoryview) -> None:
            if bytes(data[:1]) == b"\x88":  # FIN + close
                seen.append(ws.closed)
                # What the hub would try at that moment is refused.
                seen.append(write(ttyd.websocket_frame(b"0late")))
            original(data)

        transport.write = spy  # type: ignore[method-assign]
        await ws.close()
        return ws

    client = await _client(handler)
    try:
        ws = await client.ws_connect("/ws")
        message = await ws.receive()
        assert message.type is WSMsgType.CLOSE
        assert seen == [True, False]
    finally:
        await client.close()
