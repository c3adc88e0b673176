"""Replica mode end to end: `gateway serve` processes, one config, one Redis, real agents.

Every replica runs the same file (only ``--listen`` differs), as the README
says. Viewers connect to any replica with the ttyd protocol, as a browser
does; what they are painted is replayed into the reference screen and
compared with ``tmux capture-pane``; ``tmux list-clients`` counts ttyd
connections, one per upstream, fleet-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.core import ttyd
from gateway.local import LocalAgent

from .conftest import AgentFactory, Terminal, eventually, timeout
from .redisserver import RedisServer
from .test_cli import free_port, run_cli


class Cluster:
    def __init__(self, tmp_path: Path, redis: RedisServer, agents: list[LocalAgent]) -> None:
        self.ports = [free_port(), free_port()]
        self.origins = [f"http://127.0.0.1:{port}" for port in self.ports]
        agent_tables = "".join(
            f"[[agents]]\nid = '{a.name}'\nurl = '{a.url}'\ncolumns = 80\nrows = 24\n"
            for a in agents
        )
        self.config = tmp_path / "gateway.toml"
        self.config.write_text(
            "[server]\n"
            f"public_origin = '{self.origins[0]}'\n"
            f"extra_origins = ['{self.origins[1]}']\n"
            f"[redis]\nurl = '{redis.url}'\nlease_ms = 1000\n{agent_tables}"
        )
        self.tmp_path = tmp_path
        self.processes: list[asyncio.subprocess.Process | None] = [None, None]
        self.http = aiohttp.ClientSession()

    async def start(self, index: int) -> None:
        state = self.tmp_path / f"state-{index}"
        state.mkdir(exist_ok=True)
        self.processes[index] = await run_cli(
            "serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.ports[index]}",
            cwd=state,
        )  # fmt: skip
        await eventually(lambda: self.ready(index), within=30, message=f"replica {index} ready")

    async def get(self, index: int, path: str) -> tuple[int, Any]:
        try:
            async with self.http.get(self.origins[index] + path) as response:
                return response.status, await response.json()
        except (aiohttp.ClientConnectionError, json.JSONDecodeError):
            return 0, None

    async def ready(self, index: int) -> bool:
        return (await self.get(index, "/readyz"))[0] == 200

    async def holder(self, index: int, agent: str) -> str | None:
        status, body = await self.get(index, "/api/agents")
        if status != 200:
            return None
        (found,) = [a for a in body["agents"] if a["id"] == agent]
        holder: str | None = (found["upstream"] or {}).get("holder")
        return holder

    async def terminal(self, index: int, agent: str) -> Terminal:
        ws = await self.http.ws_connect(
            f"{self.origins[index]}/agents/{agent}/ws",
            protocols=["tty"],
            headers={"Origin": self.origins[index]},
        )
        await ws.send_bytes(ttyd.Handshake("").serialize())
        return Terminal(ws, 80, 24)

    def signal(self, index: int, signum: int) -> None:
        process = self.processes[index]
        assert process is not None
        process.send_signal(signum)

    async def wait(self, index: int) -> int:
        process = self.processes[index]
        assert process is not None
        return await asyncio.wait_for(process.wait(), timeout(30))

    async def aclose(self) -> None:
        for process in self.processes:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), timeout(30))
                except TimeoutError:
                    process.kill()
                    await process.wait()
        await self.http.close()


@pytest.fixture
async def cluster(
    tmp_path: Path, redis_server: RedisServer, make_agent: AgentFactory
) -> AsyncIterator[tuple[Cluster, LocalAgent]]:
    agent = await make_agent()
    made = Cluster(tmp_path, redis_server, [agent])
    try:
        yield made, agent
    finally:
        await made.aclose()


async def same_screen(agent: LocalAgent, *terminals: Terminal) -> bool:
    expected = await agent.capture()
    return all(terminal.screen.text() == expected for terminal in terminals)


async def one_client(agent: LocalAgent) -> bool:
    return await agent.client_count() == 1


async def test_any_replica_serves_any_viewer_with_one_upstream(
    cluster: tuple[Cluster, LocalAgent],
) -> None:
    replicas, agent = cluster
    await replicas.start(0)
    await replicas.start(1)
    for index in (0, 1):
        status, health = await replicas.get(index, "/healthz")
        assert (status, health["redis"]) == (200, "up")
    await eventually(lambda: one_client(agent), message="one ttyd connection")
    holders = [await replicas.holder(i, agent.name) for i in (0, 1)]
    assert holders[0] is not None
    assert holders[0] == holders[1]
    viewers = [await replicas.terminal(i, agent.name) for i in (0, 1)]
    # Typed on one replica, seen exactly on both; tmux has one client still.
    await viewers[1].send_input(b"for i in $(seq 1 60); do echo row-$i; done\r")
    await viewers[0].wait_text("row-60")
    await eventually(lambda: same_screen(agent, *viewers), message="both equal tmux")
    assert await agent.client_count() == 1
    # A viewer joining late on either replica is painted the same screen at once.
    late = await replicas.terminal(1, agent.name)
    await eventually(lambda: same_screen(agent, late), message="late joiner painted")
    for viewer in (*viewers, late):
        await viewer.close()


async def test_sigterm_of_the_holder_hands_over_and_viewers_elsewhere_stay(
    cluster: tuple[Cluster, LocalAgent],
) -> None:
    replicas, agent = cluster
    await replicas.start(0)
    await replicas.start(1)
    await eventually(lambda: one_client(agent), message="one ttyd connection")
    holder = await replicas.holder(0, agent.name)
    names = {}
    for index in (0, 1):
        _, health = await replicas.get(index, "/healthz")
        names[health["replica"]] = index
    owner = names[holder]
    other = 1 - owner
    viewer = await replicas.terminal(other, agent.name)
    await eventually(lambda: same_screen(agent, viewer), message="painted")
    replicas.signal(owner, signal.SIGTERM)
    assert await replicas.wait(owner) == 0
    await eventually(
        lambda: _holder_is(replicas, other, agent.name), within=10, message="handed over"
    )
    await eventually(lambda: one_client(agent), message="one ttyd connection after")
    # The viewer on the surviving replica kept its socket and types on.
    assert viewer.close_code is None
    await viewer.send_input(b"echo still-$((6 * 7))\r")
    await viewer.wait_text("still-42")
    await eventually(lambda: same_screen(agent, viewer), message="equal after the handover")
    with contextlib.suppress(Exception):
        await viewer.close()


async def _holder_is(replicas: Cluster, index: int, agent: str) -> bool:
    _, health = await replicas.get(index, "/healthz")
    return await replicas.holder(index, agent) == health["replica"]
