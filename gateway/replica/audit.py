"""The fleet's audit trail: each replica's own file, and one list in Redis for all.

:class:`FleetAudit` is the :class:`~gateway.seams.AuditSink` of a replica:
every entry goes to the local JSON-lines file as before (the file is the
record a replica keeps whatever happens to Redis) and, tagged with the
replica, to ``audit``, a Redis list that ``GET /api/audit`` reads, so an
admin sees the whole fleet from any replica.

The list is capped at :data:`CAPACITY` entries, oldest dropped first, and
``audit:base`` counts those dropped: offsets stay absolute (entry ``n`` is
the same entry on every replica and on every call) while the oldest ones
age out. A list and not a stream: reading by offset is ``LRANGE``, O(limit),
where a stream would be walked from its start.

:meth:`~FleetAudit.record` never blocks and never raises: entries wait in a
bounded queue for a writer task; while Redis does not answer they wait (the
file has them already), and beyond :data:`MAX_PENDING` they are counted as
dropped from the fleet's view (``audit_dropped``, as the file does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any, Literal

from ..audit import MAX_PENDING, AuditLog, entry_line
from ..errors import RedisUnavailable
from ..tasks import cancel
from .client import RedisLink
from .lua import Lua

log = logging.getLogger(__name__)

CAPACITY = 100_000
# Entries sent to Redis in one step at most.
BATCH = 500
# How long a stop waits to hand what is queued to Redis.
CLOSE_TIMEOUT = 2.0
RETRY_SECONDS = 1.0

# KEYS: audit, audit:base. ARGV: capacity, lines...
APPEND = Lua(
    """
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
local over = n - tonumber(ARGV[1])
if over > 0 then
  redis.call('LTRIM', KEYS[1], over, -1)
  redis.call('INCRBY', KEYS[2], over)
end
return n
"""
)

# KEYS: audit, audit:base. ARGV: offset, limit. Returns {base, length, entries}.
READ = Lua(
    """
local base = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = math.max(0, tonumber(ARGV[1]) - base)
local entries = redis.call('LRANGE', KEYS[1], first, first + tonumber(ARGV[2]) - 1)
return {base, redis.call('LLEN', KEYS[1]), entries}
"""
)


class FleetAudit:
    """The local file plus the fleet's list in Redis."""

    def __init__(self, local: AuditLog, link: RedisLink, prefix: str, replica: str) -> None:
        self.local = local
        self._link = link
        self._replica = replica
        self._keys = [f"{prefix}audit", f"{prefix}audit:base"]
        self._pending: deque[dict[str, Any]] = deque()
        self._dropped = 0
        self.dropped_total = 0
        self._wakeup = asyncio.Event()
        self._sending = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def status(self) -> Literal["ok", "failing", "stopped"]:
        # The file is the control; Redis's health is reported on its own.
        return self.local.status

    def record(self, event: str, **fields: Any) -> None:
        self.local.record(event, **fields)
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            self.dropped_total += 1
            return
        entry = {"ts": round(time.time(), 3), "event": event, "replica": self._replica, **fields}
        self._pending.append(entry)
        self._wakeup.set()

    async def start(self) -> None:
        await self.local.start()
        self._task = asyncio.create_task(self._send_loop(), name="fleet-audit")

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel(self._task)
            self._task = None
        with contextlib.suppress(RedisUnavailable, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.flush()
        await self.local.aclose()

    async def flush(self) -> None:
        """Send every queued entry now; RedisUnavailable (and they stay queued) if not."""
        async with self._sending:
            while self._pending or self._dropped:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
                dropped = self._dropped
                if dropped:
                    note = {"ts": round(time.time(), 3), "event": "audit_dropped"}
                    batch.append({**note, "replica": self._replica, "count": dropped})
                lines = []
                for entry in batch:
                    try:
                        lines.append(entry_line(entry).rstrip(b"\n"))
                    except (TypeError, ValueError, RecursionError) as exc:
                        log.error(
                            "fleet audit: an %r entry was not sent: %s", entry.get("event"), exc
                        )
                try:
                    if lines:
                        await APPEND(self._link, self._keys, [CAPACITY, *lines])
                except RedisUnavailable:
                    # Back to the front, in order, for the next try.
                    kept = batch[:-1] if dropped else batch
                    self._pending.extendleft(reversed(kept))
                    raise
                self._dropped -= dropped

    async def read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The fleet's entries from ``offset`` (absolute; the oldest may have aged out)."""
        with contextlib.suppress(RedisUnavailable):
            await self.flush()
        base, length, raw = await READ(self._link, self._keys, [offset, limit])
        entries = []
        for line in raw:
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries, int(base) + int(length)

    async def _send_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self.flush()
            except RedisUnavailable as exc:
                log.warning("fleet audit: Redis unavailable (%s); %d entries wait", exc,
                            len(self._pending))  # fmt: skip
                await asyncio.sleep(RETRY_SECONDS)
                self._wakeup.set()
            except Exception:
                log.exception("fleet audit: sender error")
