"""Shutdown (gateway.app's on_shutdown) with a viewer that stopped reading: a real `gateway serve`.

A frozen tab, or a dead path whose TCP peer still lives, never takes the
close frame: its socket's buffers stay full. SIGTERM must still end the
process promptly, and every other viewer must get its 1001.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from gateway.core import ttyd
from gateway.local import LocalAgent

from .conftest import AgentFactory, eventually, timeout
from .test_cli import free_port, run_cli

# What the stalled peer will take into its receive buffer, at most: tiny, so
# the gateway's side fills at once.
TINY_BUFFER = 4096


def masked_text_frame(payload: bytes) -> bytes:
    """A client's frame (FIN, text, masked with a zero key: the mask is still set)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def stalled_viewer(port: int, path: str, origin: str) -> socket.socket:
    """Open the terminal WebSocket and the ttyd handshake, then never read again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_BUFFER)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: tty\r\nOrigin: {origin}\r\n\r\n"
    )
    sock.sendall(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)  # byte by byte: nothing past the headers is read
    assert answer.startswith(b"HTTP/1.1 101"), answer
    sock.sendall(masked_text_frame(b'{"AuthToken": ""}'))
    return sock


async def serve(agent: LocalAgent, folder: Path) -> tuple[asyncio.subprocess.Process, int, str]:
    """A `gateway serve` process in front of ``agent``: (process, port, origin)."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    config = folder / "gateway.toml"
    config.write_text(
        f'[server]\npublic_origin = "{origin}"\n'
        f'[[agents]]\nid = "{agent.name}"\nurl = "{agent.url}"\n'
    )
    proc = await run_cli("serve", "--config", str(config), "--listen", f"127.0.0.1:{port}")
    return proc, port, origin


async def until_connected(http: aiohttp.ClientSession, origin: str) -> None:
    """Wait until the gateway answers and says its one agent is connected."""

    async def connected() -> bool:
        try:
            async with http.get(f"{origin}/api/agents") as response:
                agents = (await response.json())["agents"]
        except aiohttp.ClientConnectionError:
            return False
        return bool(agents[0]["status"] == "connected")

    await eventually(connected, within=timeout(30), message="the agent is connected")


async def test_sigterm_ends_promptly_with_a_viewer_that_stopped_reading(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = await make_agent()
    proc, port, origin = await serve(agent, tmp_path)
    stalled: socket.socket | None = None
    try:
        async with aiohttp.ClientSession(headers={"Origin": origin}) as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{origin}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(ready, within=timeout(30), message="the gateway is ready")
            path = f"/agents/{agent.name}/ws"
            stalled = await asyncio.to_thread(stalled_viewer, port, path, origin)
            viewer = await http.ws_connect(f"{origin}{path}", protocols=("tty",))
            await viewer.send_bytes(ttyd.Handshake("").serialize())
            # Output the stalled one cannot take: its socket and the gateway's fill up.
            await agent.tmux(
                "send-keys", "-t", agent.name, "for i in $(seq 1 200000); do echo line-$i; done",
                "Enter",
            )  # fmt: skip

            async def taken() -> bool:
                # The good viewer is being sent output: the flood is on.
                msg = await viewer.receive(timeout=timeout(10))
                return msg.type is aiohttp.WSMsgType.BINARY and b"line-" in msg.data

            await eventually(taken, within=timeout(20), message="the flood reaches viewers")

            async def keep_reading() -> None:
                async for _ in viewer:
                    pass

            reading = asyncio.create_task(keep_reading())
            proc.send_signal(signal.SIGTERM)
            # Docker stops a container 10 s after its SIGTERM. Before the fix the
            # sockets closed one after another, each waiting for its peer: 12 s
            # here for this one stalled viewer, and as long as the peer lived
            # when its window was shut.
            await asyncio.wait_for(proc.wait(), timeout(8))
            await asyncio.wait_for(reading, timeout(10))
            assert viewer.close_code == 1001
            assert proc.returncode == 0
    finally:
        if stalled is not None:
            stalled.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert "Traceback" not in stderr, stderr


async def test_sigterm_ends_promptly_with_a_frozen_ttyd(
    make_agent: AgentFactory, tmp_path: Path
) -> None:
    agent = await make_agent()
    proc, _, origin = await serve(agent, tmp_path)
    pid = agent.ttyd_pid
    assert pid is not None
    try:
        async with aiohttp.ClientSession(headers={"Origin": origin}) as http:
            await until_connected(http, origin)
            os.kill(pid, signal.SIGSTOP)
            proc.send_signal(signal.SIGTERM)
            # Before: websockets waited its 10 s for a close answer that never came.
            await asyncio.wait_for(proc.wait(), timeout(8))
            assert proc.returncode == 0
    finally:
        os.kill(pid, signal.SIGCONT)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_during_shutdown_leaves_no_traceback(
    make_agent: AgentFactory, tmp_path: Path, second: signal.Signals
) -> None:
    """An impatient operator (or Docker, then an orchestrator) signals again mid-shutdown.

    The shutdown is made to last (ttyd frozen: its close waits its deadline),
    so the second signal lands while the app's cleanup is running.
    """
    agent = await make_agent()
    proc, _, origin = await serve(agent, tmp_path)
    pid = agent.ttyd_pid
    assert pid is not None
    try:
        async with aiohttp.ClientSession(headers={"Origin": origin}) as http:
            await until_connected(http, origin)
            os.kill(pid, signal.SIGSTOP)
            proc.send_signal(signal.SIGTERM)
            for _ in range(5):  # while it shuts down
                await asyncio.sleep(0.2)
                if proc.returncode is None:
                    proc.send_signal(second)
            await asyncio.wait_for(proc.wait(), timeout(8))
            assert proc.returncode == 0
    finally:
        os.kill(pid, signal.SIGCONT)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert "Traceback" not in stderr, stderr
    assert "athrow" not in stderr, stderr
