"""Replicas in one process: two (or three) nodes, one Redis, real tmux + ttyd agents.

Each "replica" is a Node and a Fleet with a hub per agent, as a gateway
process has; they share nothing but the redis-server. What the hubs'
screens show is compared with ``tmux capture-pane`` of the agent itself,
and ``tmux list-clients`` counts the ttyd connections (one per upstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest

from gateway.config import RedisSettings
from gateway.core import ttyd
from gateway.core.backoff import Backoff
from gateway.core.fleet import Fleet
from gateway.core.hub import RESIZE_QUIET, Hub
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.core.viewer import Viewer
from gateway.errors import InputUnconfirmed
from gateway.local import LocalAgent
from gateway.replica.node import Node

from .conftest import AgentFactory, eventually
from .redisserver import RedisServer


class Replica:
    """A node and its fleet, like one gateway process in replica mode."""

    def __init__(
        self,
        server: RedisServer,
        name: str,
        agents: list[LocalAgent],
        url: str | None = None,
        lease_ms: int = 1000,
    ) -> None:
        # ``url``: another way to the same server (a fault proxy in front of it).
        self.node = Node(RedisSettings(url or server.url, lease_ms=lease_ms), name)
        self.fleet = Fleet(source=self.node.source)
        self.agents = agents

    async def start(self) -> None:
        await self.node.start()
        for agent in self.agents:
            hub = self.fleet.new_hub(
                agent.name, Target(agent.url), columns=80, rows=24, backoff=Backoff(0.05, 0.2)
            )
            await self.fleet.add(hub)
        await self.fleet.start()
        await self.node.settled()

    def hub(self, agent: LocalAgent) -> Hub:
        return self.fleet.get(agent.name)

    def owns(self, agent: LocalAgent) -> bool:
        return agent.name in self.node.owned

    async def crash(self) -> None:
        """Stop without a word to Redis: the leases lapse on their own."""
        await self.node.aclose()
        await self.fleet.aclose()

    async def stop(self) -> None:
        await self.node.drain()
        await self.fleet.aclose()
        await self.node.aclose()


ClusterFactory = Callable[..., Awaitable[list[Replica]]]


@pytest.fixture
async def cluster(redis_server: RedisServer) -> AsyncIterator[ClusterFactory]:
    async with AsyncExitStack() as stack:

        async def make(
            agents: list[LocalAgent],
            count: int = 2,
            urls: list[str] | None = None,
            lease_ms: int = 1000,
        ) -> list[Replica]:
            urls = urls or [redis_server.url] * count
            replicas = [
                Replica(redis_server, f"r{i}", agents, urls[i], lease_ms) for i in range(count)
            ]
            for replica in replicas:
                await replica.start()
                stack.push_async_callback(replica.stop)
            return replicas

        yield make


async def screens_equal(agent: LocalAgent, *hubs: Hub) -> bool:
    expected = await agent.capture()
    for hub in hubs:
        await hub.wait_emulated()
        if hub.screen.text() != expected:
            return False
    return True


def owner_of(replicas: list[Replica], agent: LocalAgent) -> list[Replica]:
    return [replica for replica in replicas if replica.owns(agent)]


async def settled(replicas: list[Replica], agent: LocalAgent) -> tuple[Replica, Replica]:
    """(the owner, another replica) once one owns the agent and the other mirrors it."""
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    owner = owner_of(replicas, agent)[0]
    other = next(r for r in replicas if r is not owner)
    hub = other.hub(agent)
    await eventually(lambda: hub.status.state is AgentState.CONNECTED, message="mirror")
    return owner, other


async def test_one_upstream_fleet_wide_and_every_replica_mirrors_it(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent], count=3)
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    await eventually(lambda: agent.client_count(), message="ttyd connected")
    owner = owner_of(replicas, agent)[0]
    followers = [r for r in replicas if r is not owner]
    assert all(r.hub(agent).upstream.mirrors for r in followers)  # type: ignore[union-attr]
    # Output typed in tmux itself reaches every replica's screen, exactly.
    await agent.tmux(
        "send-keys", "-t", agent.name, "for i in $(seq 1 200); do echo line-$i; done", "Enter"
    )
    hubs = [r.hub(agent) for r in replicas]
    await eventually(lambda: screens_equal(agent, *hubs), message="every screen equals tmux")
    assert await agent.client_count() == 1
    for follower in followers:
        assert follower.hub(agent).status.state is AgentState.CONNECTED


async def test_input_from_a_follower_reaches_the_agent_once(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    _, follower = await settled(replicas, agent)
    hub = follower.hub(agent)
    await hub.send_input(b"echo from-$((40 + 2))\r")
    await eventually(lambda: "from-42" in hub.screen.text(), message="echo on the follower")
    await eventually(lambda: screens_equal(agent, hub), message="follower equals tmux")
    assert (await agent.capture()).count("from-42") == 1


async def test_a_follower_resize_is_the_owners(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    _, follower = await settled(replicas, agent)
    await follower.hub(agent).resize(100, 30)
    await eventually(lambda: agent.pane_size(), message="resized", within=10)
    await eventually(lambda: _pane_is(agent, (100, 30)), message="tmux pane is 100x30")
    for replica in replicas:
        await eventually(lambda r=replica: r.hub(agent).size == (100, 30), message="size")
    await agent.tmux("send-keys", "-t", agent.name, "echo wide", "Enter")
    hubs = [r.hub(agent) for r in replicas]
    await eventually(lambda: screens_equal(agent, *hubs), message="screens at the new size")


async def test_who_resized_on_a_follower_is_told_on_every_replica_but_to_them(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    owner, follower = await settled(replicas, agent)
    alice, bob = follower.hub(agent).join("alice"), follower.hub(agent).join("bob")
    carol = owner.hub(agent).join("carol")
    for viewer in (alice, bob, carol):
        await drain(viewer)
    before = follower.hub(agent).size
    # A drag on the follower: forwarded to the owner, which resizes and says who.
    for columns in range(60, 101):
        await follower.hub(agent).resize(columns, 30, who="alice", viewer=alice)
    for replica in replicas:
        await eventually(lambda r=replica: r.hub(agent).size == (100, 30), message="size")
    await asyncio.sleep(RESIZE_QUIET * 3)
    details = {
        "by": "alice",
        "columns": 100,
        "rows": 30,
        "previous": {"columns": before[0], "rows": before[1]},
    }
    for viewer in (bob, carol):
        told = [n for n in notices(await drain(viewer)) if n.code == "resized"]
        assert [n.details for n in told] == [details], viewer.who
    assert [n for n in notices(await drain(alice)) if n.code == "resized"] == []
    # The owner's ttyd is sent the size alone.
    await eventually(lambda: _pane_is(agent, (100, 30)), message="tmux pane is 100x30")


async def drain(viewer: Viewer) -> list[bytes]:
    frames: list[bytes] = []
    batches = viewer.batches()
    while True:
        try:
            frames.extend(await asyncio.wait_for(anext(batches), 0.05))
        except TimeoutError:
            return frames


def notices(frames: list[bytes]) -> list[ttyd.Notice]:
    parsed = [ttyd.parse_server(frame) for frame in frames]
    return [message for message in parsed if isinstance(message, ttyd.Notice)]


async def _pane_is(agent: LocalAgent, size: tuple[int, int]) -> bool:
    return await agent.pane_size() == size


async def test_a_crashed_owner_is_replaced_within_the_lease(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    owner, survivor = await settled(replicas, agent)
    hub = survivor.hub(agent)
    await owner.crash()
    await eventually(lambda: survivor.owns(agent), message="taken over", within=10)
    await eventually(lambda: hub.status.state is AgentState.CONNECTED, message="connected")
    await agent.tmux("send-keys", "-t", agent.name, "echo after-the-crash", "Enter")
    await eventually(lambda: screens_equal(agent, hub), message="the survivor equals tmux")
    await eventually(lambda: _clients_are(agent, 1), message="one ttyd client")
    await hub.send_input(b"echo typed-$((6 * 7))\r")
    await eventually(lambda: "typed-42" in hub.screen.text(), message="input on the new owner")


async def _clients_are(agent: LocalAgent, count: int) -> bool:
    return await agent.client_count() == count


async def test_a_graceful_stop_hands_over_at_once(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    # A lease far longer than the wait below: only the hand-over can move the agent.
    replicas = await cluster([agent], lease_ms=60_000)
    owner, survivor = await settled(replicas, agent)
    hub = survivor.hub(agent)
    await owner.node.drain()
    await eventually(lambda: survivor.owns(agent), message="handed over", within=5)
    await owner.fleet.aclose()
    await agent.tmux("send-keys", "-t", agent.name, "echo handed", "Enter")
    await eventually(lambda: screens_equal(agent, hub), message="survivor equals tmux")
    await eventually(lambda: _clients_are(agent, 1), message="one ttyd client")


async def test_input_to_a_follower_with_no_owner_is_refused(
    make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    owner, follower = await settled(replicas, agent)
    # The owner's forwarded-input path is frozen: the follower must not wait forever,
    # and what it sent is never typed later.
    for task in owner.node._tasks:
        if task.get_name() == "replica:reader":
            task.cancel()
    with pytest.raises(InputUnconfirmed, match="did not confirm"):
        await follower.hub(agent).send_input(b"echo never-typed\r")
    await asyncio.sleep(0.5)
    assert "never-typed" not in await agent.capture()
