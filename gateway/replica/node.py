"""One replica of a replicated gateway: who owns which agent, and the stream I/O.

A :class:`Node` makes the hubs' sources (:meth:`Node.source`, the fleet's
``SourceFactory``) and runs four loops, each on a connection of its own so
none waits behind another:

* ownership, every :data:`POLL` (or at once when an owner hands over): a
  heartbeat that says this replica is live and reads Redis's clock and
  epoch, one MGET of every agent's lease, then the placement's plan:
  contend for free agents, hand one agent over to its first choice;
* renewal, every lease / 4: extend the leases held; one that is not ours
  any more demotes its source at once. A renewal that fails because Redis
  does not answer changes nothing: nobody steps down on a blip, only when
  Redis says the lease is not ours (another replica took it). One that
  lapsed in an outage longer than the lease, untouched, is taken back
  (:data:`scripts.RENEW`), and a replica back from such an outage takes no
  free agent for a lease, so the holders can;
* the writer: the owners' queued entries, pipelined as fenced appends, in
  order, one batch in flight;
* the reader: one blocking XREAD over every followed agent's stream and
  every owned agent's inbox, restarted (``CLIENT UNBLOCK``) when that set
  changes.

On SIGTERM :meth:`drain` hands every owned agent over (a last checkpoint,
a ``handover`` entry the others act on at once, the lease released) and
leaves the live set first, so no replica ranks it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ..config import RedisSettings
from ..core.backoff import Backoff
from ..core.seams import Size, SourceSink
from ..core.target import Target
from ..errors import RedisUnavailable
from ..tasks import cancel
from .client import BLOCK_MS, RedisLink
from .codec import Keys
from .lua import Arg, Lua
from .placement import Placement
from .scripts import ACQUIRE, APPEND, HEARTBEAT, RELEASE, RENEW
from .source import ReplicaSource, Role

log = logging.getLogger(__name__)

# Seconds between ownership passes.
POLL = 0.25
# Bytes of entries per fenced append (one script call).
BATCH_BYTES = 1 << 20
# How long a drain waits for each hand-over.
DRAIN_TIMEOUT = 3.0


def replica_name() -> str:
    """This process's name among replicas: its host and a random suffix (restarts differ)."""
    host = socket.gethostname().split(".")[0] or "gateway"
    return f"{host}-{secrets.token_hex(3)}"


class Node:
    def __init__(
        self,
        settings: RedisSettings,
        replica: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica = replica or replica_name()
        self.link = RedisLink(settings, self.replica)
        self.keys = Keys(settings.key_prefix)
        self.lease_ms = settings.lease_ms
        self._clock = clock
        self._sources: dict[str, ReplicaSource] = {}
        self._placement = Placement(self.replica)
        self._live_since: dict[str, float] = {}
        self._epoch: bytes | None = None
        self._redis_offset_ms = 0.0
        self._poke = asyncio.Event()
        self._reshaped = asyncio.Event()
        self._written = asyncio.Event()
        self._writer_wake = asyncio.Event()
        self._passes = 0
        # This replica did not hear from Redis for longer than a lease (a pass
        # failed, or took that long); the next pass that hears it says so.
        self._away = False
        self._heard_ms: int | None = None  # Redis's clock at the last heartbeat
        # When this replica's turn comes for a free agent (placement), if sooner than a poll.
        self._next_turn: float | None = None
        self._pass_done = asyncio.Event()
        self._draining = False
        # Set by aclose: nothing more is sent (a hub closing after us releases nothing).
        self._closed = False
        self._reader_id: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._side: set[asyncio.Task[Any]] = set()
        self._scripts: dict[str, Lua] = {}

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect (waiting for Redis a while) and start the loops; returns at once after."""
        await self.link.open()
        self._scripts = {
            name: Lua(source)
            for name, source in {
                "heartbeat": HEARTBEAT,
                "acquire": ACQUIRE,
                "renew": RENEW,
                "release": RELEASE,
                "append": APPEND,
            }.items()
        }
        await self._load_scripts()
        for name, loop in (
            ("ownership", self._ownership),
            ("renewal", self._renewal),
            ("writer", self._writer),
            ("reader", self._reader),
        ):
            self._tasks.append(asyncio.create_task(loop(), name=f"replica:{name}"))

    async def settled(self) -> None:
        """Wait for an ownership pass that started after now (readiness)."""
        target = self._passes + 2
        while self._passes < target:
            self._poke.set()
            await self._pass_done.wait()

    async def drain(self) -> None:
        """Hand every owned agent over and stop taking new ones (SIGTERM)."""
        if self._draining or self._closed:
            return
        self._draining = True
        log.info("replica: draining: handing over %d agents", len(self.owned))
        with contextlib.suppress(RedisUnavailable, ResponseError):
            await self._heartbeat(leaving=True)
        waits = [source.hand_over(then=Role.IDLE) for source in self._sources.values()]
        for source in self._sources.values():
            source.idle()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await asyncio.gather(*(event.wait() for event in waits))

    async def aclose(self) -> None:
        self._closed = True
        for task in self._tasks:
            await cancel(task)
        self._tasks.clear()
        for task in list(self._side):
            await cancel(task)
        await self.link.aclose()

    # --- the hubs' sources ----------------------------------------------------------

    def source(
        self,
        agent_id: str,
        target: Target,
        sink: SourceSink,
        size: Size,
        backoff: Backoff | None,
    ) -> ReplicaSource:
        return ReplicaSource(self, agent_id, target, sink, size, backoff)

    def attach(self, source: ReplicaSource) -> None:
        self._sources[source.agent_id] = source
        if self._draining:
            source.idle()
        self.contend_soon()

    def detach(self, source: ReplicaSource) -> None:
        if self._sources.get(source.agent_id) is source:
            del self._sources[source.agent_id]
        if source.token is not None:
            # A hub retargeted or removed: let another replica (or our next source) take it.
            self._spawn(self._release(source.agent_id, source.token))
        self.reshape()

    def reshape(self) -> None:
        self._reshaped.set()
        if self._reader_id is not None:
            reader_id = self._reader_id
            self._spawn(self._unblock(reader_id))

    def wake_writer(self) -> None:
        self._writer_wake.set()

    def contend_soon(self) -> None:
        self._poke.set()

    def redis_now_ms(self) -> float:
        return time.time() * 1000 + self._redis_offset_ms

    async def flushed(self, source: ReplicaSource) -> None:
        while source.pending(1) is not None:
            self._written.clear()
            self._writer_wake.set()
            await self._written.wait()

    async def release(self, source: ReplicaSource, token: str) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self._release(source.agent_id, token)
        self._placement.handed_over(source.agent_id, self._clock())
        self.contend_soon()

    @property
    def live(self) -> list[str]:
        """The replicas the last heartbeat found live (this one among them once it beat)."""
        return sorted(self._live_since)

    @property
    def owned(self) -> list[str]:
        return sorted(a for a, s in self._sources.items() if s.token is not None)

    # --- ownership --------------------------------------------------------------------

    async def _ownership(self) -> None:
        while True:
            self._poke.clear()
            try:
                await self._pass()
            except RedisUnavailable:
                self._away = True
            except Exception:
                log.exception("replica: an ownership pass failed")
            self._passes += 1
            done, self._pass_done = self._pass_done, asyncio.Event()
            done.set()
            wait = POLL
            if self._next_turn is not None:
                wait = min(POLL, max(0.0, self._next_turn - self._clock()))
                self._next_turn = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._poke.wait()

    async def _heartbeat(self, *, leaving: bool = False) -> list[bytes]:
        keys = [self.keys.replicas, self.keys.epoch]
        # A new candidate every time: one fixed per replica would be set again after a
        # FLUSHALL by the replica that set it first, and nobody would see the data lost.
        fresh_epoch = secrets.token_hex(8)
        args: list[Arg] = [self.replica, self.lease_ms, "1" if leaving else "0", fresh_epoch]
        before = time.time() * 1000
        now_ms, live, epoch = await self._scripts["heartbeat"](self.link, keys, args)
        after = time.time() * 1000
        self._redis_offset_ms = int(now_ms) - (before + after) / 2
        # On Redis's clock, which went on while it was paused, or down and back.
        if self._heard_ms is not None and int(now_ms) - self._heard_ms > self.lease_ms:
            self._away = True
        self._heard_ms = int(now_ms)
        if self._epoch is not None and epoch != self._epoch:
            log.warning("replica: Redis lost its data (a new epoch): starting over")
            for source in self._sources.values():
                source.reset()
        self._epoch = epoch
        return list(live)

    async def _pass(self) -> None:
        live = await self._heartbeat(leaving=self._draining)
        now = self._clock()
        if self._away:
            # Back from an outage that may have been longer than the lease: the
            # holders re-take what lapsed meanwhile (their next renewal, within a
            # quarter lease). Give them a whole lease before taking anything.
            self._away = False
            self._placement.hold_back_all(now + self.lease_ms / 1000)
        names = {name.decode() for name in live}
        for name in names:
            self._live_since.setdefault(name, now)
        for name in set(self._live_since) - names:
            del self._live_since[name]
        agents = sorted(self._sources)
        if not agents:
            return
        tokens = await self.link.call(
            self.link.client.mget([self.keys.lease(agent) for agent in agents])
        )
        owners: dict[str, str | None] = {}
        for agent, raw in zip(agents, tokens, strict=True):
            token = None if raw is None else raw.decode()
            source = self._sources.get(agent)
            if source is None:
                continue
            if source.token is not None and token is None and not source.handing_over:
                token = await self._retake(source, source.token)
            elif source.token is not None and token is not None and token != source.token:
                source.demote()  # Redis says someone else owns it: the only reason to stop
            owners[agent] = None if token is None else token.partition(":")[2]
        if self._draining:
            return
        plan = self._placement.plan(now, owners, self._live_since)
        self._next_turn = plan.next_turn
        for agent in plan.contend:
            source = self._sources.get(agent)
            # Its hand-over entry freed the lease already: the agent is the others' now.
            if source is None or source.handing_over:
                continue
            keys = [self.keys.lease(agent), self.keys.generation(agent)]
            token = await self._scripts["acquire"](self.link, keys, [self.replica, self.lease_ms])
            if token is not None:
                source.promote(token.decode())
        for agent in plan.release:
            source = self._sources.get(agent)
            if source is not None:
                log.info("replica: handing %s to a replica that ranks first for it", agent)
                source.hand_over()

    async def _retake(self, source: ReplicaSource, token: str) -> str | None:
        """A held lease found lapsed: ours again if nobody took it since; else step down."""
        keys = [self.keys.lease(source.agent_id), self.keys.generation(source.agent_id)]
        result = await self._scripts["renew"](self.link, keys, [token, self.lease_ms])
        self._renewed(source, token, result)
        return token if result else None

    def _renewed(self, source: ReplicaSource, token: str, result: Any) -> None:
        if result == 2:  # see scripts._HELD
            log.info(
                "replica: %s: re-took its lease, which lapsed while Redis was away", source.agent_id
            )
        elif result == 0 and source.token == token:
            source.demote()

    async def _renewal(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 4000)
            held = [(s, s.token) for s in self._sources.values() if s.token is not None]
            if not held:
                continue
            try:
                async with self.link.client.pipeline(transaction=False) as pipe:
                    for source, token in held:
                        agent = source.agent_id
                        keys = [self.keys.lease(agent), self.keys.generation(agent)]
                        self._evalsha(pipe, "renew", keys, [token, self.lease_ms])
                    results = await self.link.call(pipe.execute(raise_on_error=False))
            except RedisUnavailable:
                continue
            if any(isinstance(result, NoScriptError) for result in results):
                with contextlib.suppress(RedisUnavailable):
                    await self._load_scripts()
                continue
            for (source, token), result in zip(held, results, strict=True):
                self._renewed(source, token, result)

    async def _load_scripts(self) -> None:
        """Load the scripts pipelines run by digest (a restarted Redis has forgotten them)."""
        for script in self._scripts.values():
            await self.link.call(self.link.client.script_load(script.source))

    def _evalsha(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        # By digest, in the pipeline: a NOSCRIPT answer reloads them all (the callers).
        pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)

    async def _release(self, agent_id: str, token: str) -> None:
        keys = [self.keys.lease(agent_id), self.keys.generation(agent_id)]
        await self._scripts["release"](self.link, keys, [token])

    # --- the writer ---------------------------------------------------------------------

    async def _writer(self) -> None:
        delay = Backoff(base=0.05, cap=1.0)
        while True:
            await self._writer_wake.wait()
            self._writer_wake.clear()
            batches = []
            for source in list(self._sources.values()):
                taken = source.pending(BATCH_BYTES)
                if taken is not None:
                    batches.append((source, *taken))
            if not batches:
                self._written.set()
                continue
            try:
                results = await self._append(batches)
            except RedisUnavailable:
                self._writer_wake.set()
                await asyncio.sleep(delay.next_delay())
                continue
            delay.reset()
            if any(isinstance(result, NoScriptError) for result in results):
                # Redis restarted: nothing of this batch was written; load, then again.
                with contextlib.suppress(RedisUnavailable):
                    await self._load_scripts()
                self._writer_wake.set()
                continue
            more = False
            for (source, token, serial, batch), result in zip(batches, results, strict=True):
                if isinstance(result, ResponseError):
                    source.refused(token, fenced=str(result).startswith("FENCED"))
                else:
                    self._renewed(source, token, result)
                    source.written(token, serial, len(batch))
                more = more or source.pending(1) is not None
            self._written.set()
            if more:
                self._writer_wake.set()

    async def _append(self, batches: list[Any]) -> list[Any]:
        async with self.link.client.pipeline(transaction=False) as pipe:
            for source, token, _, batch in batches:
                agent = source.agent_id
                args: list[Any] = [token, self.lease_ms]
                for entry_id, kind, data in batch:
                    args += [str(entry_id), kind.value, data]
                keys = [
                    self.keys.lease(agent),
                    self.keys.generation(agent),
                    self.keys.output(agent),
                    self.keys.checkpoint(agent),
                    self.keys.status(agent),
                ]
                self._evalsha(pipe, "append", keys, args)
            result: list[Any] = await self.link.call(pipe.execute(raise_on_error=False))
            return result

    # --- the reader ---------------------------------------------------------------------

    async def _reader(self) -> None:
        reader = self.link.reader()
        delay = Backoff(base=0.1, cap=2.0)
        while True:
            self._reshaped.clear()
            streams: dict[Any, Any] = {}  # redis-py's own key and id types
            readers: dict[str, ReplicaSource] = {}
            for source in self._sources.values():
                wanted = source.wanted()
                if wanted is not None:
                    streams[wanted[0]] = str(wanted[1])
                    readers[wanted[0]] = source
            if not streams:
                await self._reshaped.wait()
                continue
            try:
                if self._reader_id is None:
                    self._reader_id = int(await self.link.call(reader.client_id()))
                reply = await self.link.call(
                    reader.xread(streams, count=512, block=BLOCK_MS), blocking=True
                )
            except RedisUnavailable as exc:
                self._reader_id = None
                for source in self._sources.values():
                    source.link_down(str(exc))
                await asyncio.sleep(delay.next_delay())
                continue
            delay.reset()
            for raw_key, entries in reply or []:
                key = raw_key.decode()
                readers[key].received(key, entries)
            if reply:
                # Let the sources act on what came (type forwarded input, relay a
                # mirror's output) before the next read: a keystroke's way
                # through Redis is waited on at both ends.
                await asyncio.sleep(0)

    async def _unblock(self, reader_id: int) -> None:
        with contextlib.suppress(RedisUnavailable):
            await self.link.call(self.link.client.client_unblock(reader_id))

    def _spawn(self, coroutine: Any) -> None:
        if self._closed:
            coroutine.close()
            return
        task = asyncio.create_task(coroutine)
        self._side.add(task)
        task.add_done_callback(self._side_done)

    def _side_done(self, task: asyncio.Task[Any]) -> None:
        self._side.discard(task)
        if task.cancelled():
            return
        # A release or an unblock that Redis did not answer changes nothing:
        # the lease lapses by itself, and the reader is restarted anyway.
        error = task.exception()
        if error is not None and not isinstance(error, RedisUnavailable):
            log.error("replica: %s failed", task.get_name(), exc_info=error)
