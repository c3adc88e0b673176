"""The ownership scripts, run by a real redis-server: who holds a lease, and who may write.

The interesting cases are the lapsed lease: an outage longer than the
lease lets it expire with nobody to blame, and its holder may take it back;
a holder that let go on purpose, or was replaced, may not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis
from redis.exceptions import ResponseError

from gateway.replica.codec import Keys
from gateway.replica.scripts import ACQUIRE, APPEND, RELEASE, RENEW

from .redisserver import RedisServer
from .replicas import direct

KEYS = Keys("s:")
AGENT = "a1"
LEASE_MS = 60_000  # nothing lapses by itself during a test: the tests expire leases


class Scripts:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.lease, self.gen = KEYS.lease(AGENT), KEYS.generation(AGENT)

    async def acquire(self, replica: str) -> str | None:
        token = await self.redis.eval(ACQUIRE, 2, self.lease, self.gen, replica, LEASE_MS)
        return None if token is None else token.decode()

    async def renew(self, token: str) -> int:
        return int(await self.redis.eval(RENEW, 2, self.lease, self.gen, token, LEASE_MS))

    async def release(self, token: str) -> int:
        return int(await self.redis.eval(RELEASE, 2, self.lease, self.gen, token))

    async def append(self, token: str, *entries: tuple[str, str, bytes]) -> None:
        args: list[object] = [token, LEASE_MS]
        for entry in entries:
            args += entry
        keys = [self.lease, self.gen, KEYS.output(AGENT), KEYS.checkpoint(AGENT)]
        await self.redis.eval(APPEND, 5, *keys, KEYS.status(AGENT), *args)

    async def lapse(self) -> None:
        """What an outage longer than the lease leaves: the lease key gone, nothing else."""
        await self.redis.delete(self.lease)

    async def holder(self) -> str | None:
        raw = await self.redis.get(self.lease)
        return None if raw is None else raw.decode()

    async def kinds(self) -> list[bytes]:
        return [fields[b"k"] for _, fields in await self.redis.xrange(KEYS.output(AGENT))]


@pytest.fixture
async def scripts(redis_server: RedisServer) -> AsyncIterator[Scripts]:
    redis = direct(redis_server)
    await redis.flushall()
    try:
        yield Scripts(redis)
    finally:
        await redis.aclose()


async def test_a_lease_that_lapsed_untouched_is_re_taken_by_its_holder(scripts: Scripts) -> None:
    token = await scripts.acquire("r1")
    assert token is not None
    assert await scripts.renew(token) == 1
    await scripts.lapse()
    assert await scripts.renew(token) == 2
    assert await scripts.holder() == token
    assert await scripts.renew(token) == 1
    # The append re-takes it too, so output queued in the outage is not refused.
    await scripts.lapse()
    await scripts.append(token, ("1-1", "o", b"x"))
    assert await scripts.holder() == token
    assert await scripts.kinds() == [b"o"]


async def test_a_lapsed_lease_someone_else_took_meanwhile_is_theirs(scripts: Scripts) -> None:
    old = await scripts.acquire("r1")
    assert old is not None
    await scripts.lapse()
    new = await scripts.acquire("r2")
    assert new is not None
    assert new != old
    assert await scripts.renew(old) == 0
    with pytest.raises(ResponseError, match="FENCED"):
        await scripts.append(old, ("1-1", "o", b"late"))
    # Still theirs even once it lapses again: the generation moved on.
    await scripts.lapse()
    assert await scripts.renew(old) == 0
    with pytest.raises(ResponseError, match="FENCED"):
        await scripts.append(old, ("1-1", "o", b"late"))
    assert await scripts.holder() is None
    assert await scripts.kinds() == []


async def test_a_holder_that_let_go_cannot_take_the_lease_back(scripts: Scripts) -> None:
    token = await scripts.acquire("r1")
    assert token is not None
    assert await scripts.release(token) == 1
    assert await scripts.renew(token) == 0
    with pytest.raises(ResponseError, match="FENCED"):
        await scripts.append(token, ("1-1", "o", b"late"))
    assert await scripts.holder() is None

    # Letting go by a hand-over entry is the same.
    token = await scripts.acquire("r1")
    assert token is not None
    await scripts.append(token, ("1-1", "o", b"last"), ("2-1", "h", b""))
    assert await scripts.holder() is None
    assert await scripts.renew(token) == 0
    with pytest.raises(ResponseError, match="FENCED"):
        await scripts.append(token, ("3-1", "o", b"late"))
    assert await scripts.kinds() == [b"o", b"h"]


async def test_a_garbled_token_never_re_takes_a_lapsed_lease(scripts: Scripts) -> None:
    token = await scripts.acquire("r1")
    assert token is not None
    await scripts.lapse()
    generation = token.partition(":")[0]
    for garbled in ("", "x", ":r1", generation, f"{generation}x:r1", f"0{generation}:r1"):
        assert await scripts.renew(garbled) == 0, garbled
    assert await scripts.holder() is None
    assert await scripts.renew(token) == 2


async def test_a_batch_sent_again_appends_only_what_is_missing(scripts: Scripts) -> None:
    token = await scripts.acquire("r1")
    assert token is not None
    first = [("1-1", "o", b"a"), ("2-1", "o", b"b")]
    await scripts.append(token, *first)
    # The reply was lost; the writer sends the batch again, grown meanwhile.
    await scripts.append(token, *first, ("3-1", "s", b"status"), ("3-2", "C", b"ckpt"))
    await scripts.append(token, ("3-2", "C", b"ckpt"))
    entries = await scripts.redis.xrange(KEYS.output(AGENT))
    assert [(i.decode(), f[b"d"]) for i, f in entries] == [
        ("1-1", b"a"),
        ("2-1", b"b"),
        ("3-1", b"status"),
    ]
    assert await scripts.redis.hget(KEYS.checkpoint(AGENT), "id") == b"3-2"
    # Anything else Redis refuses is still an error.
    with pytest.raises(ResponseError, match="Invalid stream ID"):
        await scripts.append(token, ("not-an-id", "o", b"x"))
