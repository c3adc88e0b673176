"""The dashboard's feed across replicas: one Redis stream, the same ids everywhere.

Every replica publishes into one stream, ``events``, and every replica's
``GET /api/events`` reads a mirror of it: a local
:class:`~gateway.ring.Ring` whose epoch and numbers are the stream's, so
``<epoch>-<n>`` names the same event on every replica and a dashboard
that reconnects anywhere with ``Last-Event-ID`` gets exactly what it missed
(the resume rules of :mod:`gateway.ring` and :mod:`gateway.web.streams`
are unchanged).

Numbers and epoch live in ``events:head`` (a hash: ``epoch``, ``seq``), and
:data:`PUBLISH` numbers a batch and appends it in the same atomic step, so
numbers are dense and never reused: entry ``<n>-0`` is the n-th event of the
epoch. When Redis loses the head (a restart without persistence, a flush),
the next script picks a fresh epoch: every id handed out before is then
foreign, and every replica's mirror starts over (its open streams get
``reset`` and a fresh ``snapshot``, like a client whose id is from before
what is kept), never a wrong position. Each entry also names its epoch,
so a mirror can tell an entry of a new epoch that sorts after its position.

Who publishes what: each replica has a hub per agent and would see the same
change of that agent, so one replica speaks for each agent (see
:func:`speaks_for`): the replica that holds the agent's upstream (its lease,
see :mod:`gateway.replica.node`), because its hub is where status, output
and activity happen first and the others only mirror them; an agent nobody
holds (parked: no container running; or between two holders) is spoken for
by the replica that ranks first for it among the live ones (rendezvous, as
placement ranks owners), and Docker's status by the one that ranks first
for the fleet. Every replica ranks the same way, so one event per change;
while membership or a lease moves, a change may be told twice (events are
states: a second telling is harmless) or by the next holder's first change.
Viewers joining on another replica reach the holder through
:mod:`gateway.replica.presence`.

Publishing is never awaited by the caller: events wait in a bounded queue
for one writer (in order); with Redis away they wait (the oldest dropped
beyond :data:`MAX_QUEUED`). A replica sees its own events once they are
back from Redis, at the same place as everybody else's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ..core.backoff import Backoff
from ..errors import RedisUnavailable
from ..events import EVENT_RING, Event
from ..ring import Ring, parse_event_id
from ..tasks import Signal
from .client import BLOCK_MS, RedisLink
from .control import read_entries
from .lua import Lua, text
from .placement import ranking

log = logging.getLogger(__name__)

# Events waiting for Redis at most; beyond, the oldest are dropped (counted).
MAX_QUEUED = 1000
# Events per PUBLISH call.
BATCH = 100
# The name Docker's status is ranked by (no agent id is empty).
FLEET = ""

# The head, made if missing; KEYS: stream, head. ARGV[1]: a fresh epoch.
# A new head numbers on after what the stream still holds, so no id repeats.
_HEAD = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if not epoch then
  epoch = ARGV[1]
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  if top then seq = tonumber(string.match(top[1], '^(%d+)')) end
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'seq', seq)
end
"""

# KEYS: stream, head. ARGV: fresh epoch, capacity, then (kind, agent, data) triples.
# Returns the epoch and the number of the last event appended.
PUBLISH = Lua(
    _HEAD
    + """
for i = 3, #ARGV, 3 do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0',
             'e', epoch, 'k', ARGV[i], 'a', ARGV[i + 1], 'd', ARGV[i + 2])
end
redis.call('HSET', KEYS[2], 'seq', seq)
return {epoch, seq}
"""
)

# KEYS: stream, head. ARGV: fresh epoch. The epoch, the last number, and what is kept.
LOAD = Lua(_HEAD + "\nreturn {epoch, seq, redis.call('XRANGE', KEYS[1], '-', '+')}\n")

_EPOCH = re.compile(rb"[0-9a-f]{8,32}")


def epoch_text(raw: bytes) -> str:
    """An epoch as ids carry it; a value we did not write is hashed into that form."""
    if _EPOCH.fullmatch(raw):
        return raw.decode()
    return hashlib.blake2b(raw, digest_size=8).hexdigest()


def speaks_for(agent_id: str | None, me: str, holder: str | None, live: Iterable[str]) -> bool:
    """Whether replica ``me`` publishes the events of ``agent_id`` (None: Docker's status)."""
    if holder is not None:
        return holder == me
    return ranking(FLEET if agent_id is None else agent_id, {*live, me})[0] == me


class RedisEvents:
    """:class:`~gateway.seams.EventSink` shared by the replicas.

    ``holder(agent)`` names the replica holding the agent's upstream (None if
    nobody is known to, or it has none); ``live()`` the live replicas.
    """

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        replica: str,
        *,
        holder: Callable[[str], str | None],
        live: Callable[[], Iterable[str]],
        capacity: int = EVENT_RING,
    ) -> None:
        self._link = link
        self._stream = f"{prefix}events"
        self._head = f"{prefix}events:head"
        self._replica = replica
        self._holder = holder
        self._live = live
        self._capacity = capacity
        # Until the first load its epoch is a random one of ours: no client id matches it.
        self.ring: Ring[Event] = Ring(capacity)
        self.signal = Signal()
        self._loaded = False
        self._queue: deque[tuple[str, str, str]] = deque()
        self._wake = asyncio.Event()
        self.dropped = 0
        # Set once the mirror holds the stream (tests and readiness may wait).
        self.reading = asyncio.Event()

    # --- EventSink ---------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any], *, agent: str | None = None) -> None:
        holder = None if agent is None else self._holder(agent)
        if not speaks_for(agent, self._replica, holder, self._live()):
            return
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("events: Redis is not taking events; %d dropped", self.dropped)
        self._queue.append((kind, agent or "", json.dumps(data)))
        self._wake.set()

    async def resume(self, last_event_id: str | None) -> int | None:
        start = self.ring.resume(last_event_id)
        if start is not None:
            return start
        parsed = parse_event_id(last_event_id)
        if parsed is None:
            return None
        try:
            if not self._loaded:
                # Just started, or Redis lost the feed: know the epoch before judging.
                await self._load()
                return self.ring.resume(last_event_id)
            seen = parsed[1]
            # Within reach ahead of us: the client saw it on a replica that read
            # it first. Further (a forged id), or behind what is kept: no position.
            if parsed[0] != self.ring.epoch or not (
                self.ring.next_seq <= seen < self.ring.next_seq + self._capacity
            ):
                return None
            await self._catch_up()
        except RedisUnavailable:
            return None
        return self.ring.resume(last_event_id)

    # --- the mirror ----------------------------------------------------------------

    async def run(self) -> None:
        """The writer and the reader, until cancelled."""
        writer = asyncio.create_task(self._writer(), name="events-writer")
        try:
            await self._reader()
        finally:
            writer.cancel()

    async def _reader(self) -> None:
        reader = self._link.reader()
        delay = Backoff(base=0.1, cap=2.0)
        while True:
            try:
                if not self._loaded:
                    await self._load()
                async with reader.pipeline(transaction=False) as pipe:
                    pipe.hget(self._head, "epoch")
                    pipe.xread({self._stream: self._position()}, count=BATCH, block=BLOCK_MS)
                    epoch, reply = await self._link.call(pipe.execute(), blocking=True)
            except RedisUnavailable as exc:
                log.debug("events: Redis unavailable: %s", exc)
                await asyncio.sleep(delay.next_delay())
                continue
            delay.reset()
            if epoch is None or epoch_text(epoch) != self.ring.epoch:
                self._loaded = False  # Redis lost the head: a new epoch
                continue
            self._apply(read_entries(reply))

    def _position(self) -> str:
        return f"{self.ring.next_seq - 1}-0"

    async def _load(self) -> None:
        epoch, seq, entries = await LOAD(
            self._link, [self._stream, self._head], [secrets.token_hex(8)]
        )
        epoch = epoch_text(epoch)
        # A script's reply: each entry's fields come as a flat list.
        kept = [(raw_id, dict(zip(flat[::2], flat[1::2], strict=True))) for raw_id, flat in entries]
        # Entries of an epoch before this one (the head was lost, not the stream) are not ours.
        kept = [
            (raw_id, fields)
            for raw_id, fields in kept
            if epoch_text(fields.get(b"e", b"")) == epoch
        ]
        if epoch != self.ring.epoch:
            log.info("events: the feed is epoch %s at %d", epoch, int(seq))
        self.ring.restart(epoch, _number(kept[0][0]) if kept else int(seq) + 1)
        self._loaded = True
        self._apply(kept)
        self.reading.set()
        self.signal.fire()

    async def _catch_up(self) -> None:
        reply = await self._link.call(
            self._link.client.xrange(
                self._stream, f"({self._position()}", "+", count=self._capacity
            )
        )
        self._apply(list(reply))

    def _apply(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Entries from the stream, in order; duplicates skipped, a gap starts over there."""
        ring, added = self.ring, False
        for raw_id, fields in entries:
            if epoch_text(fields.get(b"e", b"")) != ring.epoch:
                self._loaded = False  # a new epoch's entry after our position
                break
            seq = _number(raw_id)
            if seq < ring.next_seq:
                continue
            if seq > ring.next_seq:
                # Trimmed before we read it: streams behind it get a reset.
                ring.restart(ring.epoch, seq)
            agent = text(fields.get(b"a")) or None
            ring.append(Event(text(fields.get(b"k")), json.loads(fields.get(b"d", b"{}")), agent))
            added = True
        if added:
            self.signal.fire()

    async def _writer(self) -> None:
        delay = Backoff(base=0.05, cap=1.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
                args: list[Any] = [secrets.token_hex(8), self._capacity]
                for item in batch:
                    args += item
                try:
                    await PUBLISH(self._link, [self._stream, self._head], args)
                except RedisUnavailable as exc:
                    # Back to the front, in order. (A reply lost on the way may mean
                    # it was written: then it is told twice, at new positions.)
                    log.debug("events: not published yet: %s", exc)
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > MAX_QUEUED:
                        self._queue.popleft()
                        self.dropped += 1
                    await asyncio.sleep(delay.next_delay())
                    continue
                delay.reset()


def _number(raw_id: bytes) -> int:
    """The event number of an entry id ``<n>-0``."""
    return int(text(raw_id).partition("-")[0])
