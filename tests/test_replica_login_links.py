"""One-time login links in replica mode: a link works once, whichever replicas race for it."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import aiohttp
import pytest

from gateway.appkeys import AUTH

from .conftest import GatewayFactory, browser
from .redisserver import RedisServer
from .replicas import PairFactory, direct, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def test_a_one_time_link_made_on_a_works_once_on_either(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    a, b = await pair()
    browsers = [await browser(c) for c in (a, b, a, b)]
    try:
        for _ in range(5):
            token = secrets.token_urlsafe(32)
            await a.app[AUTH].add_one_time_login(token, "op")

            statuses = await asyncio.gather(*(use(http, token) for http in browsers))
            assert sorted(statuses) == [303, 404, 404, 404]
        # Only the token's digest was ever a key, and none is left.
        redis = direct(redis_server)
        assert await redis.keys("t:login-link:*") == []
        await redis.aclose()
    finally:
        for http in browsers:
            await http.close()


async def use(http: aiohttp.ClientSession, token: str) -> int:
    async with http.get(f"/login/{token}", allow_redirects=False) as response:
        return response.status
