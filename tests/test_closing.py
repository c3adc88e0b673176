"""A close asked for from another task, done by the handler with a full handshake.

These run a real aiohttp server and client. The client does not answer
the server's close frame on its own (``autoclose=False``), so the tests see
what the server does before the answer comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.web.closing import HandlerClose

from .conftest import SCALE

ANSWER = 4321  # the client's own close code, so the server's record shows it read it


class Server:
    def __init__(self) -> None:
        self.closers: asyncio.Queue[HandlerClose] = asyncio.Queue()
        self.handled: list[bytes] = []
        self.busy = asyncio.Event()
        self.release = asyncio.Event()
        self.reading_ended: asyncio.Future[str] | None = None

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        closer = HandlerClose(ws, request.transport)
        await self.closers.put(closer)
        await closer.serve(self.read(closer))
        return ws

    async def read(self, closer: HandlerClose) -> tuple[int, bytes] | None:
        while (msg := await closer.receive()) is not None:
            if msg.type is not WSMsgType.BINARY:
                return None
            if msg.data == b"slow":
                # Handling a message when the close is asked for: it is
                # finished, never cut off half-way.
                self.busy.set()
                await self.release.wait()
            self.handled.append(msg.data)
            if msg.data == b"bye":
                return WSCloseCode.PROTOCOL_ERROR, b"bye"
        return None


async def _start(server: Server) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_get("/ws", server.handler)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_a_close_from_another_task_waits_for_the_clients_close_frame() -> None:
    server = Server()
    client = await _start(server)
    try:
        ws = await client.ws_connect("/ws", autoclose=False)
        closer = await server.closers.get()
        closing = asyncio.create_task(
            closer.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")
        )
        msg = await ws.receive()
        assert msg.type is WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (WSCloseCode.POLICY_VIOLATION, "session ended")
        # aiohttp alone (close() while the handler waits in receive()) drops
        # the connection here, and the client's answer finds it reset.
        await ws.close(code=ANSWER)
        assert await closing is True
        assert closer.ws.close_code == ANSWER
    finally:
        await client.close()


async def test_a_message_being_handled_is_finished_before_the_close() -> None:
    server = Server()
    client = await _start(server)
    try:
        ws = await client.ws_connect("/ws")
        closer = await server.closers.get()
        await ws.send_bytes(b"slow")
        await server.busy.wait()
        closing = asyncio.create_task(closer.close(code=WSCloseCode.GOING_AWAY))
        await ws.send_bytes(b"after")  # read by nobody: the close was asked for
        server.release.set()
        async for _ in ws:
            pass
        await closing
        assert ws.close_code == WSCloseCode.GOING_AWAY
        assert server.handled == [b"slow"]
    finally:
        await client.close()


async def test_the_reader_s_own_close_is_used_and_the_first_request_wins() -> None:
    server = Server()
    client = await _start(server)
    try:
        ws = await client.ws_connect("/ws")
        await server.closers.get()
        await ws.send_bytes(b"bye")
        async for _ in ws:
            pass
        assert ws.close_code == WSCloseCode.PROTOCOL_ERROR

        ws = await client.ws_connect("/ws")
        closer = await server.closers.get()
        closer.ask(WSCloseCode.POLICY_VIOLATION, b"first")
        closer.ask(WSCloseCode.GOING_AWAY, b"second")
        async for _ in ws:
            pass
        assert ws.close_code == WSCloseCode.POLICY_VIOLATION
    finally:
        await client.close()


async def test_a_client_that_closes_first_ends_the_handler_and_close_returns() -> None:
    server = Server()
    client = await _start(server)
    try:
        ws = await client.ws_connect("/ws")
        closer = await server.closers.get()
        await ws.close(code=WSCloseCode.OK)
        # Asked after the handler already ended: returns, never hangs.
        async with asyncio.timeout(10 * SCALE):
            assert await closer.close(code=WSCloseCode.GOING_AWAY) is True
        assert closer.ws.closed
    finally:
        await client.close()
