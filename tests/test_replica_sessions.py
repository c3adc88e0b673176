"""Sessions in replica mode: two gateways, one real redis-server, any replica serves any request."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import reload_users
from gateway.appkeys import AUTH, CONTROL, SETTINGS
from gateway.local import LocalAgent
from gateway.web.identity import cookie_name

from .conftest import EventReader, GatewayFactory, browser, eventually
from .redisserver import RedisServer
from .replicas import OPERATOR, PASSWORD, Client, PairFactory, direct, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


def session_cookie(http: aiohttp.ClientSession, client: Client) -> str:
    name = cookie_name(client.app)
    return next(c.value for c in http.cookie_jar if c.key == name)


async def me(client: Client, cookie: str) -> int:
    headers = {"Cookie": f"{cookie_name(client.app)}={cookie}"}
    async with client.session.get(client.make_url("/api/me"), headers=headers) as response:
        return response.status


async def test_a_login_on_one_replica_works_on_the_other_and_redis_never_holds_the_id(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    a, b = await pair()
    http = await browser(a, "op", PASSWORD)
    try:
        cookie = session_cookie(http, a)
        assert await me(b, cookie) == 200
        assert await me(a, cookie) == 200
        # Only the SHA-256 of the id names the session; no key or value holds the id.
        redis = direct(redis_server)
        keys = await redis.keys("*")
        assert any(k.startswith(b"t:session:") for k in keys)
        for key in keys:
            assert cookie.encode() not in key
            if await redis.type(key) == b"hash":
                assert cookie.encode() not in b"".join((await redis.hgetall(key)).values())
        await redis.aclose()
    finally:
        await http.close()


@pytest.fixture
def no_sweeper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the control channel can close another replica's sockets in these tests."""
    monkeypatch.setattr("gateway.web.identity.SWEEP_INTERVAL", 3600.0)


async def test_logout_on_a_closes_the_terminal_and_event_stream_on_b(
    pair: PairFactory, agent: LocalAgent, no_sweeper: None
) -> None:
    a, b = await pair(agent)
    on_a = await browser(a, "op", PASSWORD)
    cookie = session_cookie(on_a, a)
    on_b = await browser(b)
    on_b.cookie_jar.update_cookies({cookie_name(b.app): cookie})
    try:
        ws = await on_b.ws_connect(f"/agents/{agent.name}/ws", protocols=("tty",))
        await ws.send_bytes(b'{"AuthToken": ""}')
        events = EventReader(await on_b.get("/api/events"))
        assert (await events.next())["event"] == "snapshot"
        assert (await on_a.post("/api/logout")).status == 204
        # Closed by the control channel (the sweeper is off, see no_sweeper).
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
        assert ws.close_code == 1008
        assert await events.ended()
        assert await me(b, cookie) == 401
    finally:
        await on_a.close()
        await on_b.close()


async def test_the_idle_timeout_runs_on_redis_s_clock(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    a, b = await pair(session_idle_seconds=1)
    http = await browser(a, "op", PASSWORD)
    cookie = session_cookie(http, a)
    await http.close()
    redis = direct(redis_server)
    try:
        (key,) = [k for k in await redis.keys("t:session:*")]
        # Redis itself holds the deadline: no replica needs to be running to end it.
        assert 0 < await redis.pttl(key) <= 1000
        await eventually(lambda: _gone(redis, key), message="Redis expires the idle session")
        assert await me(b, cookie) == 401
        assert await me(a, cookie) == 401
    finally:
        await redis.aclose()


async def _gone(redis: Any, key: bytes) -> bool:
    return not await redis.exists(key)


async def test_activity_on_the_other_replica_moves_the_idle_deadline(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    a, b = await pair(session_idle_seconds=5)
    http = await browser(a, "op", PASSWORD)
    cookie = session_cookie(http, a)
    await http.close()
    redis = direct(redis_server)
    try:
        (key,) = await redis.keys("t:session:*")

        async def aged() -> bool:
            return 0 < await redis.pttl(key) < 4000  # PTTL reads, it never touches

        await eventually(aged, message="a second of idleness on Redis's clock")
        assert await me(b, cookie) == 200
        assert await redis.pttl(key) > 4000
    finally:
        await redis.aclose()


async def test_a_redis_restart_loses_the_sessions_and_nothing_crashes(
    pair: PairFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await pair()
    http = await browser(a, "op", PASSWORD)
    cookie = session_cookie(http, a)
    await http.close()
    redis_server.restart()

    async def logged_out(client: Client) -> bool:
        return await me(client, cookie) == 401

    # The first request after the restart may meet a dead pooled connection (503).
    await eventually(lambda: logged_out(a), message="A forgets the session")
    await eventually(lambda: logged_out(b), message="B forgets the session")
    again = await browser(b, "op", PASSWORD)
    assert await me(a, session_cookie(again, b)) == 200
    await again.close()
    assert "Traceback" not in caplog.text


async def test_redis_down_answers_a_clear_503_never_a_500(
    pair: PairFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await pair()
    http = await browser(a, "op", PASSWORD)
    cookie = session_cookie(http, a)
    await http.close()
    caplog.set_level(logging.INFO)
    redis_server.stop()
    fresh = await browser(b)
    try:
        response = await fresh.post("/api/login", json={"username": "op", "password": PASSWORD})
        assert response.status == 503
        body = await response.json()
        assert body["error"] == "redis_unavailable"
        assert response.headers["Retry-After"] == "1"
        assert await me(a, cookie) == 503
        assert await me(b, "forged") == 503
    finally:
        await fresh.close()
    assert "Traceback" not in caplog.text
    assert "Error handling request" not in caplog.text
    redis_server.start()
    await eventually(lambda: _status_is(me(a, cookie), 401), message="back, the session lost")


async def _status_is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


@pytest.mark.parametrize(
    "cookie",
    [
        "forged-but-plausible-" + "A" * 22,
        "x" * 4000,  # huge, yet within aiohttp's header limit
        "*",  # a glob, were it ever used as a key pattern
        "t:session:*",
        "%00%ff%fe",
        "..%2F..%2F",
        '"quoted"',
        "\u00e9\u4e2d\U0001f600",
    ],
)
async def test_forged_huge_or_odd_cookies_are_nobody(
    pair: PairFactory, redis_server: RedisServer, cookie: str
) -> None:
    _, b = await pair()
    redis = direct(redis_server)
    before = await redis.dbsize()
    try:
        raw = f"{cookie_name(b.app)}={cookie}".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
        host = b.app[SETTINGS].public_origin.removeprefix("http://")
        writer.write(b"GET /api/me HTTP/1.1\r\nHost: " + host.encode() + b"\r\nCookie: " + raw
                     + b"\r\nConnection: close\r\n\r\n")  # fmt: skip
        answer = await reader.read()
        writer.close()
        assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 401 Unauthorized", answer[:200]
        assert await redis.dbsize() == before  # a lookup writes nothing
    finally:
        await redis.aclose()


async def test_logout_racing_requests_on_both_replicas(pair: PairFactory) -> None:
    a, b = await pair()
    http = await browser(a, "op", PASSWORD)
    cookie = session_cookie(http, a)

    async def request(client: Client) -> int:
        return await me(client, cookie)

    racing = [request(client) for _ in range(20) for client in (a, b)]
    results = await asyncio.gather(http.post("/api/logout"), *racing)
    assert results[0].status == 204
    assert set(results[1:]) <= {200, 401}
    # Once the logout has answered, no replica knows the session.
    assert {await request(a), await request(b)} == {401}
    await http.close()


async def test_a_user_removed_by_a_reload_on_a_is_cut_off_on_b(
    pair: PairFactory, agent: LocalAgent, tmp_path: Path, no_sweeper: None
) -> None:
    config = tmp_path / "gateway.toml"

    def write(*users: Any) -> None:
        config.write_text(
            "".join(
                f"[[users]]\nname = '{u.name}'\npassword_hash = '{u.password_hash}'\n"
                f"role = '{u.role.value}'\n"
                for u in users
            )
        )

    from .replicas import ADMIN

    write(OPERATOR, ADMIN)
    a, b = await pair(agent, config_path=config)
    on_b = await browser(b, "op", PASSWORD)
    try:
        ws = await ws_connect_with(on_b, f"/agents/{agent.name}/ws")
        write(ADMIN)
        await reload_users(a.app)
        assert "op" not in a.app[AUTH].users
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
        assert ws.close_code == 1008
    finally:
        await on_b.close()


async def test_a_missed_control_message_is_caught_by_the_sweeper(
    pair: PairFactory, agent: LocalAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await pair(agent)
    on_a = await browser(a, "op", PASSWORD)
    cookie = session_cookie(on_a, a)
    on_b = await browser(b)
    on_b.cookie_jar.update_cookies({cookie_name(b.app): cookie})
    try:
        ws = await ws_connect_with(on_b, f"/agents/{agent.name}/ws")

        async def lost(kind: str, value: str) -> None:
            return None  # as if B had been away from Redis when A said it

        monkeypatch.setattr(a.app[CONTROL], "publish", lost)
        assert (await on_a.post("/api/logout")).status == 204
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
        assert ws.close_code == 1008
    finally:
        await on_a.close()
        await on_b.close()


async def ws_connect_with(http: aiohttp.ClientSession, path: str) -> Any:
    ws = await http.ws_connect(path, protocols=("tty",))
    await ws.send_bytes(b'{"AuthToken": ""}')
    return ws
