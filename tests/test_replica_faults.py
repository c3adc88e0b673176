"""Replica mode under the faults of issue 13: frozen owners, Redis away, cut links, lost data.

Real parts wherever they can make the fault: a SIGSTOPped ``gateway serve``
process, a redis-server that is paused, killed or flushed, real tmux + ttyd
agents. The fault proxy (``tests/faultproxy.py``) stands between one replica
and Redis only for what a real part cannot do on demand: a link that goes
silent or resets while the others keep theirs, or one that is slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.core.hub import Hub
from gateway.core.state import AgentState
from gateway.errors import InputUnconfirmed, UpstreamUnavailable
from gateway.local import LocalAgent
from gateway.replica import node as node_module
from gateway.replica import source as source_module
from gateway.replica.codec import Entry, Keys, Kind
from gateway.replica.source import ReplicaSource
from gateway.screen.reference import PyteScreen

from .conftest import AgentFactory, eventually
from .faultproxy import FaultProxy, Mode
from .redisserver import RedisServer
from .replicas import direct
from .test_replica_cluster import Cluster, one_client, same_screen
from .test_replica_node import ClusterFactory, Replica, owner_of, screens_equal
from .test_replica_node import cluster as cluster  # the in-process fixture

PREFIX = "gateway:"  # RedisSettings' default key_prefix


class Watcher:
    """A viewer of a hub in this process, its frames replayed into a screen of its own."""

    def __init__(self, hub: Hub) -> None:
        self.viewer = hub.join("watcher")
        self.screen = PyteScreen(80, 24)
        self.received = 0
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for batch in self.viewer.batches():
            for frame in batch:
                if frame[:1] == b"0":
                    self.received += len(frame) - 1
                    self.screen.feed(frame[1:])

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def tmux_clients(agent: LocalAgent) -> list[str]:
    """Each ttyd connection's tmux client, by its pid: the same pid is the same connection."""
    return (await agent.tmux("list-clients", "-F", "#{client_pid}")).split()


async def type_in_tmux(agent: LocalAgent, line: str) -> None:
    await agent.tmux("send-keys", "-t", agent.name, line, "Enter")


def connected(hub: Hub) -> bool:
    return hub.status.state is AgentState.CONNECTED


def the_owner(replicas: list[Replica], agent: LocalAgent) -> Replica:
    (owner,) = owner_of(replicas, agent)
    return owner


def source_of(replica: Replica, agent: LocalAgent) -> ReplicaSource:
    source = replica.hub(agent).upstream
    assert isinstance(source, ReplicaSource)
    return source


async def converged(agent: LocalAgent, replicas: list[Replica]) -> bool:
    """One owner, every mirror connected, every screen equal to tmux, one ttyd client."""
    if len(owner_of(replicas, agent)) != 1:
        return False
    if not all(connected(r.hub(agent)) for r in replicas):
        return False
    if await agent.client_count() != 1:
        return False
    return await screens_equal(agent, *(r.hub(agent) for r in replicas))


async def until_converged(agent: LocalAgent, replicas: list[Replica], within: float = 15) -> None:
    """Wait for :func:`converged`; on a timeout, say what was still off."""
    try:
        await eventually(lambda: converged(agent, replicas), within=within, message="converged")
    except pytest.fail.Exception:
        expected = await agent.capture()
        lines = [f"tmux clients: {await agent.client_count()}"]
        for replica in replicas:
            hub = replica.hub(agent)
            lines.append(
                f"{replica.node.replica}: owns={replica.owns(agent)} status={hub.status}"
                f" equal={hub.screen.text() == expected}"
            )
            if hub.screen.text() != expected:
                lines.append(hub.screen.text())
        lines.append("tmux:\n" + expected)
        pytest.fail("not converged:\n" + "\n".join(lines))


@pytest.fixture
async def proxies(redis_server: RedisServer) -> AsyncIterator[list[FaultProxy]]:
    """A fault proxy per replica, in front of the one redis-server (closed after the replicas)."""
    made = [FaultProxy("127.0.0.1", redis_server.port) for _ in range(2)]
    for proxy in made:
        await proxy.start()
    yield made
    for proxy in made:
        await proxy.aclose()


def via(proxies: list[FaultProxy]) -> list[str]:
    return [f"redis://127.0.0.1:{proxy.port}/0" for proxy in proxies]


# --- 2. Redis away for a while --------------------------------------------------------


@pytest.mark.parametrize("outage", ["pause", "restart"])
async def test_redis_away_owners_keep_their_terminal_and_all_converge(
    outage: str, make_agent: AgentFactory, cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    owner = the_owner(replicas, agent)
    follower = next(r for r in replicas if r is not owner)
    await eventually(lambda: connected(follower.hub(agent)), message="mirror connected")
    await eventually(lambda: one_client(agent), message="one ttyd client")
    (client,) = await tmux_clients(agent)
    watcher = Watcher(owner.hub(agent))
    token = source_of(owner, agent).token
    try:
        if outage == "pause":
            redis_server.pause()
        else:
            redis_server.stop(save=True)  # a restart that keeps the data, as with AOF
        await type_in_tmux(agent, "echo during-the-$((0 + 1))-outage")
        # The owner's own viewers keep going on ttyd alone.
        await eventually(
            lambda: "during-the-1-outage" in watcher.screen.text(), message="owner's viewer"
        )
        await eventually(lambda: owner.node.link.health == "down", message="health: down")
        await eventually(
            lambda: follower.hub(agent).status.state is AgentState.RECONNECTING,
            message="the mirror says reconnecting",
        )
        # Nobody gave the terminal up meanwhile: the same ttyd connection, the only one.
        assert await tmux_clients(agent) == [client]
        # Longer than the lease, which lapses in Redis meanwhile (on its clock, which
        # goes on while it is paused, or down with its data on disk).
        await asyncio.sleep(2 * owner.node.lease_ms / 1000)
        if outage == "pause":
            redis_server.resume()
        else:
            redis_server.start()
        await eventually(
            lambda: all(r.node.link.health == "up" for r in replicas), message="health: up"
        )
        await type_in_tmux(agent, "echo after-the-outage")
        await until_converged(agent, replicas)
        assert "after-the-outage" in watcher.screen.text()
        assert watcher.viewer.close_code is None
        # Its holder took the lapsed lease back: the same owner with the same token
        # (nobody acquired it meanwhile) and the same ttyd connection, before and after.
        assert source_of(owner, agent).token == token
        assert await tmux_clients(agent) == [client]
    finally:
        await watcher.aclose()


# --- 3. one replica cut off from Redis -------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.BLACKHOLE, Mode.RESET])
async def test_a_replica_cut_off_from_redis_hands_its_agents_on_and_follows_again(
    mode: Mode, proxies: list[FaultProxy], make_agent: AgentFactory, cluster: ClusterFactory
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent], urls=via(proxies))
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    owner = the_owner(replicas, agent)
    other = next(r for r in replicas if r is not owner)
    await eventually(lambda: connected(other.hub(agent)), message="mirror connected")
    cut = proxies[replicas.index(owner)]
    cut.mode = mode
    await eventually(lambda: other.owns(agent), within=10, message="the other took over")
    await type_in_tmux(agent, "echo while-cut-off")
    await eventually(
        lambda: "while-cut-off" in other.hub(agent).screen.text(), message="the new owner paints"
    )
    cut.mode = Mode.PASS
    # Back on the link, Redis fences it: it steps down and mirrors the new owner.
    await eventually(
        lambda: not owner.owns(agent), within=15, message="the cut-off one stepped down"
    )
    await type_in_tmux(agent, "echo after-the-cut")
    await until_converged(agent, replicas)
    assert other.owns(agent)
    assert source_of(owner, agent).mirrors


# --- 4. FLUSHALL: Redis lost everything --------------------------------------------------


async def test_flushall_while_running_converges_on_a_new_epoch(
    make_agent: AgentFactory, cluster: ClusterFactory, redis_server: RedisServer
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    await type_in_tmux(agent, "for i in $(seq 1 40); do echo before-$i; done")
    await eventually(lambda: converged(agent, replicas), message="converged before")
    redis = direct(redis_server)
    keys = Keys(PREFIX)
    try:
        before = await redis.get(keys.epoch)
        assert before is not None
        await redis.flushall()
        await type_in_tmux(agent, "echo after-the-flush")
        # Lost data shows as a new epoch, whichever replica writes it first.
        await eventually(lambda: _epoch_is_new(redis, keys, before), message="a new epoch")
        await until_converged(agent, replicas)
        epoch = await redis.get(keys.epoch)
        assert all(r.node._epoch == epoch for r in replicas)
        # The new stream starts at the new owner's generation, from offset 0.
        raw = await redis.xrange(keys.output(agent.name), count=1)
        assert raw
        assert Entry.parse(*raw[0]).kind is Kind.OWNER
    finally:
        await redis.aclose()


async def _epoch_is_new(redis: aioredis.Redis, keys: Keys, before: bytes) -> bool:
    epoch = await redis.get(keys.epoch)
    return epoch is not None and epoch != before


# --- 5. bounded queues: a flood while Redis is slow -----------------------------------------


async def test_a_flood_while_redis_is_slow_stays_bounded_and_mirrors_resync(
    proxies: list[FaultProxy],
    make_agent: AgentFactory,
    cluster: ClusterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    peaks = {"pending": 0, "inbox": 0}
    over: list[int] = []  # queues above the bound that hold more than one entry
    queue, received = ReplicaSource._queue, ReplicaSource.received

    def queue_spy(self: ReplicaSource, *args: Any) -> None:
        queue(self, *args)
        peaks["pending"] = max(peaks["pending"], self._pending_bytes)
        if self._pending_bytes > source_module.MAX_PENDING_BYTES and len(self._pending) > 1:
            over.append(self._pending_bytes)

    def received_spy(self: ReplicaSource, *args: Any) -> None:
        received(self, *args)
        peaks["inbox"] = max(peaks["inbox"], self._inbox_bytes)

    gaps: list[str] = []  # entries a mirror applied that did not follow its position
    apply = ReplicaSource._apply

    async def apply_spy(self: ReplicaSource, entry: Entry) -> None:
        if not self._owning and not self._position.follows(entry):
            gaps.append(f"{self._position.last} -> {entry.id} ({entry.kind})")
        await apply(self, entry)

    monkeypatch.setattr(ReplicaSource, "_queue", queue_spy)
    monkeypatch.setattr(ReplicaSource, "received", received_spy)
    monkeypatch.setattr(ReplicaSource, "_apply", apply_spy)
    syncs: list[bool] = []
    sync = ReplicaSource._sync

    async def sync_spy(self: ReplicaSource, *, repaint: bool) -> None:
        syncs.append(repaint)
        await sync(self, repaint=repaint)

    monkeypatch.setattr(ReplicaSource, "_sync", sync_spy)
    # tmux passes on a few hundred KB/s of a flood (it redraws rather than scroll every
    # line), so the bounds are scaled down to what a test overflows in seconds; still
    # above a checkpoint (the screen and the hub's unemulated tail), written whole.
    monkeypatch.setattr(source_module, "MAX_PENDING_BYTES", 128 * 1024)
    monkeypatch.setattr(source_module, "MAX_INBOX_BYTES", 128 * 1024)
    # Batches smaller than a checkpoint: it travels apart from the output around it.
    monkeypatch.setattr(node_module, "BATCH_BYTES", 16 * 1024)
    agent = await make_agent()
    replicas = await cluster([agent], urls=via(proxies))
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    owner = the_owner(replicas, agent)
    follower = next(r for r in replicas if r is not owner)
    await eventually(lambda: connected(follower.hub(agent)), message="mirror connected")
    slow = proxies[replicas.index(owner)]
    slow.delay = 0.25  # each way; renewals still arrive within the 1 s lease
    slow.mode = Mode.DELAY
    source = source_of(owner, agent)
    start = owner.hub(agent).offset
    await type_in_tmux(agent, "seq 1 100000000")
    await eventually(
        lambda: (
            source.dropped > 0
            and owner.hub(agent).offset - start > 2 * source_module.MAX_PENDING_BYTES
        ),
        within=15,
        message="the writer's queue overflowed",
    )
    await agent.tmux("send-keys", "-t", agent.name, "C-c", "")
    slow.mode = Mode.PASS
    await type_in_tmux(agent, "clear; echo after-the-flood")
    await until_converged(agent, replicas)
    assert "after-the-flood" in follower.hub(agent).screen.text()
    # The writer fell behind and dropped to a checkpoint instead of growing: the queue
    # stays within its bound, or holds one entry alone (a checkpoint is written whole).
    assert peaks["pending"] > 0
    assert over == []
    # Every mirror resynced from a checkpoint instead of painting across a gap.
    assert gaps == []
    # The follower's first start, then at least one resync from a checkpoint after a gap.
    assert len(syncs) >= 2
    assert peaks["inbox"] <= source_module.MAX_INBOX_BYTES


# --- 6. input forwarded while ownership moves -----------------------------------------------


@pytest.mark.parametrize("move", ["drain", "cut"])
async def test_input_forwarded_while_ownership_moves_is_typed_once_or_refused(
    move: str,
    proxies: list[FaultProxy],
    make_agent: AgentFactory,
    cluster: ClusterFactory,
    workdir: Path,
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent], urls=via(proxies))
    await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
    owner = the_owner(replicas, agent)
    sender = next(r for r in replicas if r is not owner)
    hub = sender.hub(agent)
    await eventually(lambda: connected(hub), message="mirror connected")
    log = workdir / "typed.log"
    outcomes: dict[int, tuple[str, float]] = {}
    moves: list[asyncio.Task[None]] = []

    def move_now() -> None:
        if move == "drain":
            moves.append(asyncio.create_task(owner.node.drain()))
        else:
            proxies[replicas.index(owner)].mode = Mode.BLACKHOLE

    async def send(count: int) -> None:
        for i in range(count):
            line = f"echo m{i} $EPOCHREALTIME >> {log}\r"
            try:
                await hub.send_input(line.encode())
                outcomes[i] = ("typed", time.time())
            except InputUnconfirmed:
                outcomes[i] = ("unconfirmed", time.time())
            except UpstreamUnavailable as exc:
                outcomes[i] = (str(exc), time.time())
                await asyncio.sleep(0.01)
            if i == 20:
                # Right after input was typed, while more follows: the tightest race.
                move_now()

    sending = asyncio.create_task(send(150))
    await eventually(lambda: sender.owns(agent), within=15, message="ownership moved")
    await sending
    await asyncio.gather(*moves)
    # Anything still on its way would be typed within the forwarding limit: wait past it.
    await type_in_tmux(agent, f"echo end >> {log}")
    await eventually(lambda: log.exists() and "end" in log.read_text(), message="the shell idle")
    await asyncio.sleep(2 * source_module.FORWARD_MAX_AGE_MS / 1000)
    typed: dict[int, list[float]] = {}
    for row in log.read_text().splitlines():
        if row.startswith("m"):
            mark, at = row.split()
            typed.setdefault(int(mark[1:]), []).append(float(at))
    for i, (outcome, at) in outcomes.items():
        times = typed.get(i, [])
        assert len(times) <= 1, f"m{i} typed {len(times)} times"
        if outcome == "typed":
            assert times, f"m{i} answered typed but never ran"
        elif outcome == "unconfirmed":
            # Unknown to the sender: typed before it gave up, or never.
            assert all(t < at for t in times), f"m{i} typed after it was refused"
        else:
            assert not times, f"m{i} refused ({outcome}) but typed"
    assert any(outcome == "typed" for outcome, _ in outcomes.values())
    assert len(set(typed) - set(outcomes)) == 0


async def test_input_typed_just_before_a_hand_over_runs(
    make_agent: AgentFactory, cluster: ClusterFactory, workdir: Path
) -> None:
    agent = await make_agent()
    replicas = await cluster([agent])
    log = workdir / "typed.log"
    for i in range(6):
        await eventually(lambda: len(owner_of(replicas, agent)) == 1, message="one owner")
        owner = the_owner(replicas, agent)
        source = source_of(owner, agent)
        await eventually(
            lambda s=source: not s.mirrors and s.state is AgentState.CONNECTED, message="ttyd"
        )
        await owner.hub(agent).send_input(f"echo h{i} >> {log}\r".encode())
        # Typed (ttyd took it), then the agent moves on at once: the shell still runs it.
        source.hand_over()
        await eventually(lambda o=owner: not o.owns(agent), message="handed over")
        await eventually(
            lambda i=i: log.exists() and f"h{i}" in log.read_text(), message=f"h{i} ran"
        )


# --- 1. a frozen owner (two `gateway serve` processes) -------------------------------------


class Appends:
    """MONITOR of the fenced appends: which owner token made which stream entries."""

    def __init__(self, server: RedisServer) -> None:
        self._redis = direct(server)
        self.entries: list[tuple[str, str]] = []  # (token, kind) per XADD inside an APPEND
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())
        await self._ready.wait()

    async def _watch(self) -> None:
        token: str | None = None
        async with self._redis.monitor() as monitor:
            self._ready.set()
            while True:
                command = await monitor.next_command()
                words = command["command"].split(" ")
                if command["client_type"] != "lua":
                    # EVALSHA <sha> 5 <lease> <gen> <out> <ckpt> <status> <token> ...: an APPEND.
                    is_append = (
                        words[0].upper() in ("EVALSHA", "EVAL")
                        and len(words) > 8
                        and words[2] == "5"
                        and words[3].endswith(":lease")
                    )
                    token = words[8] if is_append else None
                elif token is not None and words[0].upper() == "XADD":
                    # XADD <out> <id> k <kind> d <data>: written by the script called last.
                    self.entries.append((token, words[4]))

    def by(self, token: str) -> list[str]:
        return [kind for who, kind in self.entries if who == token]

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()


async def lease_token(redis: aioredis.Redis, agent: str) -> str | None:
    raw = await redis.get(Keys(PREFIX).lease(agent))
    return None if raw is None else raw.decode()


@pytest.fixture
async def processes(
    tmp_path: Path, redis_server: RedisServer, make_agent: AgentFactory
) -> AsyncIterator[tuple[Cluster, LocalAgent]]:
    agent = await make_agent()
    made = Cluster(tmp_path, redis_server, [agent])
    try:
        yield made, agent
    finally:
        for process in made.processes:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)
        await made.aclose()


async def test_a_frozen_owner_writes_nothing_after_it_wakes_and_steps_down(
    processes: tuple[Cluster, LocalAgent], redis_server: RedisServer
) -> None:
    replicas, agent = processes
    await replicas.start(0)
    await replicas.start(1)
    await eventually(lambda: one_client(agent), message="one ttyd connection")
    names = {}
    for index in (0, 1):
        _, health = await replicas.get(index, "/healthz")
        names[health["replica"]] = index
    redis = direct(redis_server)
    appends = Appends(redis_server)
    try:
        old = await lease_token(redis, agent.name)
        assert old is not None
        frozen = names[old.partition(":")[2]]
        other = 1 - frozen
        viewer = await replicas.terminal(other, agent.name)
        await eventually(lambda: same_screen(agent, viewer), message="painted")
        await appends.start()
        replicas.signal(frozen, signal.SIGSTOP)
        # Output while it sleeps waits in its ttyd socket, ready to be relayed when it wakes.
        await agent.tmux("send-keys", "-t", agent.name, "echo while-frozen", "Enter")
        await eventually(
            lambda: _holder_is(replicas, other, agent.name, other), within=10, message="taken over"
        )
        new = await lease_token(redis, agent.name)
        assert new is not None
        assert new != old
        await viewer.wait_text("while-frozen")
        replicas.signal(frozen, signal.SIGCONT)
        # It steps down on its own: its own API names the other replica.
        await eventually(
            lambda: _holder_is(replicas, frozen, agent.name, other),
            within=10,
            message="stepped down",
        )
        await eventually(lambda: one_client(agent), message="one ttyd connection again")
        await viewer.send_input(b"echo after-$((6 * 7))\r")
        await viewer.wait_text("after-42")
        late = await replicas.terminal(frozen, agent.name)
        await eventually(lambda: same_screen(agent, viewer, late), message="both equal tmux")
        assert appends.by(old) == []
        assert appends.by(new)[:1] == [Kind.OWNER.value]
        assert {token for token, _ in appends.entries} == {new}
        for terminal in (viewer, late):
            await terminal.close()
    finally:
        await appends.aclose()
        await redis.aclose()


async def _holder_is(replicas: Cluster, asked: int, agent: str, index: int) -> bool:
    """Replica ``asked``'s /api/agents names replica ``index`` as the holder."""
    _, health = await replicas.get(index, "/healthz")
    if health is None:
        return False
    return await replicas.holder(asked, agent) == health["replica"]
