"""The per-user cap on terminals and streams, across replicas and their crashes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError

from gateway.appkeys import CONNECTIONS
from gateway.auth import hash_password, new_api_token
from gateway.config import RedisSettings
from gateway.local import LocalAgent
from gateway.replica.client import RedisLink
from gateway.replica.connections import RedisConnections
from gateway.users import Role, User

from .conftest import GatewayFactory, equals, eventually
from .redisserver import RedisServer
from .replicas import Client, PairFactory, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def test_the_cap_holds_across_replicas(
    pair: PairFactory, agent: LocalAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.web.identity.CONNECTIONS_PER_USER", 3)
    token, digest = new_api_token()
    bot = User("bot", hash_password("x"), Role.VIEWER, ("*",), digest)
    a, b = await pair(agent, users=(bot,))
    headers = {"Authorization": f"Bearer {token}"}

    async def connect(client: Client) -> ClientWebSocketResponse:
        return await client.ws_connect(f"/agents/{agent.name}/ws", protocols=("tty",),
                                       headers=headers)  # fmt: skip

    held = [await connect(a), await connect(a), await connect(b)]
    for client in (a, b):
        with pytest.raises(WSServerHandshakeError) as info:
            await connect(client)
        assert info.value.status == 429
    # A place freed on A is one B may give; closing the client cancels the
    # handler on A mid-release, which must still be told to Redis.
    await held[0].close()
    await eventually(lambda: equals(b.app[CONNECTIONS].held("bot"), 2), message="freed")
    held[0] = await connect(b)
    # A burst on both replicas at once: still no more than the cap in all.
    await asyncio.gather(*(ws.close() for ws in held))
    await eventually(lambda: equals(a.app[CONNECTIONS].held("bot"), 0), message="all freed")
    burst = await asyncio.gather(*(connect(c) for c in (a, b) * 4), return_exceptions=True)
    accepted = [ws for ws in burst if isinstance(ws, ClientWebSocketResponse)]
    assert len(accepted) == 3
    assert all(isinstance(e, WSServerHandshakeError) and e.status == 429
               for e in burst if e not in accepted)  # fmt: skip
    for ws in accepted:
        await ws.close()


async def test_a_crashed_replica_s_places_come_back(redis_server: RedisServer) -> None:
    link = RedisLink(RedisSettings(redis_server.url), "test")
    await link.open()
    try:
        crashed = RedisConnections(link, "t:", "crashed", ttl_ms=300)
        alive = RedisConnections(link, "t:", "alive", ttl_ms=300)
        assert await crashed.acquire("op", 2)
        assert await crashed.acquire("op", 2)
        assert not await alive.acquire("op", 2)
        # "crashed" never refreshes (as a killed process would not): its places
        # stop counting at their deadline, on Redis's clock.
        async with alive.refreshing():
            await eventually(lambda: alive.acquire("op", 2), message="the places come back")
            assert await alive.acquire("op", 2)
            assert not await alive.acquire("op", 2)
            # Its own places outlive many deadlines: it refreshes them.
            await eventually(lambda: equals(crashed.held("op"), 2), within=5)
            assert await alive.held("op") == 2
        # A clean stop gives them back at once.
        assert await alive.held("op") == 0
    finally:
        await link.aclose()


async def test_a_release_redis_missed_is_repaired_by_the_refresh(
    redis_server: RedisServer,
) -> None:
    link = RedisLink(RedisSettings(redis_server.url), "test")
    await link.open()
    try:
        connections = RedisConnections(link, "t:", "r1", ttl_ms=60_000)
        assert await connections.acquire("op", 5)
        assert await connections.acquire("op", 5)
        redis_server.pause()
        try:
            await connections.release("op")  # never raises, even now
        finally:
            redis_server.resume()
        # The paused release timed out; Redis still counts 2.
        await connections.refresh()
        assert await connections.held("op") == 1
        redis_server.restart()  # every key lost: the refresh writes them again
        await eventually(lambda: _refreshed(connections), message="counts written again")
        assert await connections.held("op") == 1
    finally:
        await link.aclose()


async def _refreshed(connections: RedisConnections) -> bool:
    try:
        await connections.refresh()
    except Exception:
        return False
    return True
