"""The direct writer's bargain with aiohttp, held by a real aiohttp server.

:func:`gateway.web.terminal.direct_writer` writes the hub's frames to a
viewer's transport beside aiohttp's own WebSocket writer. That is safe only
while aiohttp (1) writes each frame without yielding in the middle of it and
(2) marks the socket closed before it writes its close frame. An aiohttp
upgrade that changes either fails these tests.

The terminal socket in front of a frozen ttyd (SIGSTOP) is tested here too:
a join still gets its screen, and typing gets a refusal, never a replay. So
is a viewer that stopped reading: dropped by the heartbeat, it must not keep
its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from gateway.appkeys import FLEET
from gateway.core import ttyd
from gateway.core.state import AgentState
from gateway.errors import UpstreamUnavailable
from gateway.local import LocalAgent
from gateway.web.terminal import direct_writer

from .conftest import (
    AgentFactory,
    GatewayFactory,
    contains,
    eventually,
    frozen,
    open_terminal,
    origin_of,
)
from .test_shutdown import stalled_viewer

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


# --- a frozen ttyd (SIGSTOP) -----------------------------------------------------------


async def test_a_join_with_a_size_gets_the_screen_of_a_frozen_agent(
    make_agent: AgentFactory, gateway: GatewayFactory
) -> None:
    # Input nobody echoes, so the frozen agent's socket buffers can be filled.
    agent = await make_agent(
        command=("sh", "-c", "echo still-on-screen; stty raw -echo; exec cat >/dev/null")
    )
    await eventually(lambda: contains(agent.capture(), "still-on-screen"), message="the screen")
    client = await gateway(agent)
    hub = client.app[FLEET].get(agent.name)
    upstream = hub.upstream
    assert upstream is not None
    await eventually(lambda: upstream.state is AgentState.CONNECTED, message="upstream")

    async def flood() -> None:
        while True:
            await hub.send_input(b"x" * 60_000)

    with frozen(agent):
        pushing = asyncio.create_task(flood())
        try:
            # Input pending: a resize sent now waits behind it.
            await eventually(lambda: upstream.statistics().buffered > 0, message="input pending")
            terminal = await open_terminal(client, agent.name, 100, 30)
            try:
                await terminal.wait_text("still-on-screen")
                # It came before the stuck send's deadline failed the connection.
                assert upstream.state is AgentState.CONNECTED
                assert hub.size == (100, 30)
            finally:
                await terminal.close()
        finally:
            pushing.cancel()
            with contextlib.suppress(asyncio.CancelledError, UpstreamUnavailable):
                await pushing


async def test_typing_into_a_frozen_agent_gets_a_notice_and_is_never_typed(
    agent: LocalAgent, gateway: GatewayFactory
) -> None:
    client = await gateway(agent)
    terminal = await open_terminal(client, agent.name)
    try:
        await terminal.wait_text("$")
        with frozen(agent):
            await eventually(
                lambda: any("has not answered" in s.message for s in terminal.statuses),
                message="the freeze in the status",
            )
            await terminal.send_input(b"echo never-$((6*7))\r")
            await eventually(
                lambda: any(n.code == "input_refused" for n in terminal.notices),
                message="the refusal",
            )
        await eventually(
            lambda: terminal.statuses[-1].state is AgentState.CONNECTED, message="reconnected"
        )
        # The marker went after the refused input: once it shows, the shell has read both.
        await terminal.send_input(b"echo resumed-$((6*7))\r")
        await eventually(lambda: contains(agent.capture(), "resumed-42"), message="marker")
        assert "never-42" not in await agent.capture()
    finally:
        await terminal.close()


# --- a viewer that stopped reading -------------------------------------------------------


def tcp_connection(port: int, peer_port: int) -> tuple[int, int] | None:
    """The server side of a loopback connection: (bytes unsent, inode; 0 when no fd holds it)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == peer_port:
            return int(fields[4].split(":")[0], 16), int(fields[9])
    return None


async def test_a_viewer_the_heartbeat_drops_loses_its_socket_though_its_window_is_shut(
    agent: LocalAgent, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A ping 2 s after the last frame heard, dropped 1 s later without a pong.
    monkeypatch.setattr("gateway.web.terminal.HEARTBEAT", 2.0)
    client = await gateway(agent)
    hub = client.app[FLEET].get(agent.name)
    await eventually(lambda: hub.status.state is AgentState.CONNECTED, message="upstream")
    path = f"/agents/{agent.name}/ws"
    # Never reads again and never answers a ping: a frozen tab, a dead path.
    stalled = await asyncio.to_thread(stalled_viewer, client.port, path, origin_of(client))
    try:
        peer_port = stalled.getsockname()[1]
        await eventually(lambda: hub.statistics().viewers == 1, message="the viewer joined")
        # A flood that lasts past the heartbeat's drop: output keeps coming for it.
        flood = "for i in $(seq 1 200000); do echo line-$i; done"
        await agent.tmux("send-keys", "-t", agent.name, flood, "Enter")

        def shut() -> bool:
            # Output waits unsent in the gateway's kernel buffer: the peer's window is zero.
            connection = tcp_connection(client.port, peer_port)
            return connection is not None and connection[0] > 0

        await eventually(shut, within=2, interval=0.01, message="the peer's window shut")
        await eventually(lambda: hub.statistics().viewers == 0, message="the heartbeat's drop")

        def released() -> bool:
            connection = tcp_connection(client.port, peer_port)
            return connection is None or connection[1] == 0

        # Before, aiohttp's transport.close() waited for the buffer to drain, which a
        # peer holding a zero window never lets happen: the fd stayed open for good.
        await eventually(released, within=5, message="the gateway's socket closed")
    finally:
        stalled.close()
