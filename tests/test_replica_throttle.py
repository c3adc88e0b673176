"""The login throttle in replica mode: failures on any replica lock the account on all."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import FREE_FAILURES, LOCK_CAP
from gateway.config import RedisSettings
from gateway.replica.client import RedisLink
from gateway.replica.throttle import RedisThrottle

from .conftest import GatewayFactory, origin_of
from .redisserver import RedisServer
from .replicas import PASSWORD, Client, PairFactory, direct, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def login(client: Client, password: str, address: str = "203.0.113.9") -> int:
    headers = {"Origin": origin_of(client), "X-Forwarded-For": address}
    body = {"username": "op", "password": password}
    async with client.post("/api/login", json=body, headers=headers) as response:
        return response.status


async def test_failures_on_two_replicas_add_up_and_the_lock_holds_on_both(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    a, b = await pair(trusted_proxies=("127.0.0.1",))
    # Alternating replicas: each sees fewer failures than the free ones.
    for i in range(FREE_FAILURES):
        assert await login((a, b)[i % 2], "wrong") == 401
    assert await login(a, PASSWORD) == 429
    assert await login(b, PASSWORD) == 429
    # Per name *and* address: another client is not locked out.
    assert await login(b, PASSWORD, "198.51.100.4") == 200
    # Nothing of the name or the address is kept in Redis, only a digest.
    redis = direct(redis_server)
    keys = await redis.keys("t:throttle:*")
    assert len(keys) == 1
    assert b"op" not in keys[0]
    assert b"203.0.113" not in keys[0]
    await redis.aclose()


async def test_the_policy_matches_the_single_process_throttle(redis_server: RedisServer) -> None:
    link = RedisLink(RedisSettings(redis_server.url, key_prefix="t:"), "r1")
    await link.open()
    try:
        throttle = RedisThrottle(link, "t:")
        locks = []
        for _ in range(FREE_FAILURES + 3):
            await throttle.failed(("bob", "x"))
            locks.append(await throttle.retry_after(("bob", "x")))
        assert locks[: FREE_FAILURES - 1] == [0.0] * (FREE_FAILURES - 1)
        # 2, 4, 8, 16 s, on Redis's clock (a few ms may have passed between calls).
        for lock, expected in zip(locks[FREE_FAILURES - 1 :], [2, 4, 8, 16], strict=True):
            assert expected - 0.5 < lock <= expected
        assert await throttle.first_refusal(("bob", "x")) is True
        assert await throttle.first_refusal(("bob", "x")) is False  # once per lock
        for _ in range(30):
            await throttle.failed(("bob", "x"))
        assert await throttle.retry_after(("bob", "x")) <= LOCK_CAP
        await throttle.succeeded(("bob", "x"))
        assert await throttle.retry_after(("bob", "x")) == 0.0
        assert await throttle.first_refusal(("bob", "x")) is False
    finally:
        await link.aclose()
