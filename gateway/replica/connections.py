"""The per-user cap on open terminals and streams, across every replica.

``conn:<user>`` is a hash with two fields per replica: ``n:<replica>``, how
many that replica holds open for the user, and ``t:<replica>``, until when
(ms, Redis's clock) that count holds. :data:`ACQUIRE` sums the counts still
valid and takes a place in the same step, so two replicas cannot both give
away the last one. A replica refreshes its deadlines every
third of :data:`TTL_MS`, writing its own counts as it knows them; one that
crashed stops refreshing, and its counts stop counting :data:`TTL_MS`
later (and are deleted by the next acquire). Writing the whole count, not a
difference, also repairs a release that Redis missed while it was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from ..errors import RedisUnavailable
from ..tasks import running
from .client import RedisLink
from .lua import LIVE_PARTS, NOW_MS, WRITE_PART, Arg, Lua

log = logging.getLogger(__name__)

T = TypeVar("T")

# A replica's counts hold this long unless refreshed (every third of it).
TTL_MS = 15_000

# Sums the valid counts and drops the lapsed ones; the prelude of ACQUIRE and HELD.
_TOTAL = (
    NOW_MS
    + LIVE_PARTS
    + """
local total = 0
for _, part in ipairs(live_parts(KEYS[1])) do total = total + tonumber(part[2]) end
"""
)

# KEYS: user. ARGV: replica, limit (-1: none), ttl_ms. 1 if a place was taken.
ACQUIRE = Lua(
    _TOTAL
    + """
local limit = tonumber(ARGV[2])
if limit >= 0 and total >= limit then return 0 end
redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[1], 1)
redis.call('HSET', KEYS[1], 't:' .. ARGV[1], now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
return 1
"""
)

# KEYS: user. Returns the valid total.
HELD = Lua(_TOTAL + "\nreturn total\n")

# KEYS: user. ARGV: replica, count, ttl_ms. This replica's count, as it knows it.
SET_COUNT = Lua(
    NOW_MS
    + WRITE_PART
    + """
set_part(KEYS[1], ARGV[1], tonumber(ARGV[2]) > 0 and ARGV[2] or nil, tonumber(ARGV[3]))
return 1
"""
)


class RedisConnections:
    """:class:`~gateway.seams.ConnectionBackend` shared by the replicas."""

    def __init__(self, link: RedisLink, prefix: str, replica: str, ttl_ms: int = TTL_MS) -> None:
        self._link = link
        self._ttl_ms = ttl_ms
        self._prefix = prefix
        self._replica = replica
        # What this replica holds open, per user: the truth its refresh writes.
        self._mine: Counter[str] = Counter()
        # Users whose count went to zero here but Redis was not told yet.
        self._unsaid: set[str] = set()
        # One change of this replica's counts in Redis at a time: a refresh
        # written after an acquire but computed before it would undo it.
        self._lock = asyncio.Lock()
        # Writes under way, shielded from their caller's cancellation.
        self._tasks: set[asyncio.Task[Any]] = set()

    def _key(self, name: str) -> str:
        return f"{self._prefix}conn:{name}"

    async def held(self, name: str) -> int:
        return int(await HELD(self._link, [self._key(name)]))

    async def acquire(self, name: str, limit: int | None) -> bool:
        # Shielded, like release: a handler cancelled (its client gone) while
        # Redis counts must still count here what Redis counted.
        return await self._shielded(self._acquire(name, limit))

    async def _acquire(self, name: str, limit: int | None) -> bool:
        async with self._lock:
            args: list[Arg] = [self._replica, -1 if limit is None else limit, self._ttl_ms]
            if not await ACQUIRE(self._link, [self._key(name)], args):
                return False
            self._mine[name] += 1
            self._unsaid.discard(name)
            return True

    async def release(self, name: str) -> None:
        self._mine[name] -= 1
        if self._mine[name] <= 0:
            del self._mine[name]
            # Until Redis has heard it: the next refresh says it again.
            self._unsaid.add(name)
        # Called from a handler's ``finally``, often one being cancelled (its
        # client went away): shielded, the write is not cut off half-way.
        await self._shielded(self._release(name))

    async def _release(self, name: str) -> None:
        try:
            async with self._lock:
                await self._write(name)
        except RedisUnavailable as exc:
            # The next refresh writes it; until then the user has one place fewer.
            log.info("a released connection of %s not written yet: %s", name, exc)

    async def _shielded(self, work: Coroutine[Any, Any, T]) -> T:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _write(self, name: str) -> None:
        args: list[Arg] = [self._replica, self._mine[name], self._ttl_ms]
        await SET_COUNT(self._link, [self._key(name)], args)
        if name not in self._mine:
            self._unsaid.discard(name)

    async def refresh(self) -> None:
        """Extend this replica's counts (and write those Redis missed)."""
        async with self._lock:
            for name in [*self._mine, *self._unsaid]:
                await self._write(name)

    @contextlib.asynccontextmanager
    async def refreshing(self) -> AsyncIterator[None]:
        """Keep this replica's counts alive while the block runs; drop them after."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._ttl_ms / 1000 / 3)
                try:
                    await self.refresh()
                except RedisUnavailable as exc:
                    log.warning("connection counts not refreshed: %s", exc)

        async with running(loop(), "connection-counts"):
            yield
        if self._tasks:
            await asyncio.wait(self._tasks)
        # A clean stop gives its places back at once (a crash: after TTL_MS).
        self._unsaid |= set(self._mine)
        self._mine.clear()
        with contextlib.suppress(RedisUnavailable):
            await self.refresh()
