"""The hub: fan-out, join = snapshot + live, slow viewers, pause, resize."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from gateway.core import ttyd
from gateway.core.backoff import Backoff
from gateway.core.budget import EmulationBudget
from gateway.core.fleet import Fleet
from gateway.core.hub import Hub
from gateway.core.relay import (
    COALESCE_BYTES,
    COALESCE_SECONDS,
    MAX_COALESCE_BYTES,
    MAX_COALESCE_STEPS,
)
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.core.viewer import Viewer
from gateway.errors import AgentNotFound, PeerProtocolError, UpstreamUnavailable
from gateway.local import LocalAgent
from gateway.screen.reference import PyteScreen

from .conftest import AgentFactory, eventually, timeout


def offline_hub(columns: int = 80, rows: int = 24, **kwargs: object) -> Hub:
    """A hub whose output is driven by the test through the sink interface.

    Its upstream points nowhere and is never started: these tests are about
    the hub's own ordering, which a real ttyd cannot pace on demand.
    """
    return Hub("t", Target("unix:/nonexistent.sock"), columns=columns, rows=rows, **kwargs)  # type: ignore[arg-type]


async def drain(viewer: Viewer) -> list[bytes]:
    """Take the batches a viewer has ready now, without waiting for more."""
    frames: list[bytes] = []
    batches = viewer.batches()
    while True:
        try:
            batch = await asyncio.wait_for(anext(batches), 0.01)
        except TimeoutError:
            return frames
        frames.extend(batch)


async def output(hub: Hub, data: bytes) -> None:
    """Play the source: one ttyd output message."""
    await hub.upstream_output(b"0" + data)


def output_of(frames: list[bytes]) -> bytes:
    return b"".join(f[1:] for f in frames if f[:1] == b"0")


def stream(seed: int, pieces: int = 300) -> list[bytes]:
    """Colourful output with redraws, as chunks of varying size."""
    rng = random.Random(seed)
    words = [b"build", b"\x1b[31mfail\x1b[0m", b"\x1b[1;32mok\x1b[0m", "日本".encode(), b"\r\n"]
    chunks = []
    for i in range(pieces):
        parts = [rng.choice(words) for _ in range(rng.randint(1, 8))]
        if i % 37 == 0:
            parts.append(b"\x1b[H\x1b[2J")
        if i % 53 == 0:
            parts.append(f"\x1b[{rng.randint(1, 24)};{rng.randint(1, 80)}H".encode())
        chunks.append(b" ".join(parts))
    return chunks


# --- ordering without a network --------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
async def test_join_midstream_has_no_gap_and_no_duplicate(seed: int) -> None:
    hub = offline_hub()
    await hub.start()
    try:
        chunks = stream(seed)
        join_at = random.Random(seed).sample(range(len(chunks)), 4)
        viewers: list[tuple[Viewer, PyteScreen]] = []
        for i, chunk in enumerate(chunks):
            if i in join_at:
                viewers.append((hub.join(), PyteScreen(80, 24)))
            await output(hub, chunk)
            if i % 10 == 0:
                # Let the emulator run part of the way, so joins hit a lagging screen.
                await asyncio.sleep(0)
                for viewer, screen in viewers:
                    screen.feed(output_of(await drain(viewer)))
        for viewer, screen in viewers:
            screen.feed(output_of(await drain(viewer)))
        await hub.wait_emulated()
        reference = PyteScreen(80, 24)
        reference.feed(b"".join(chunks))
        assert hub.screen.state() == reference.state()
        for _, screen in viewers:
            assert screen.state() == reference.state()
    finally:
        await hub.aclose()


async def test_first_batch_is_status_then_snapshot() -> None:
    hub = offline_hub()
    await output(hub, b"hello \x1b[1mworld\x1b[0m")
    viewer = hub.join()
    frames = await drain(viewer)
    assert isinstance(ttyd.parse_server(frames[0]), ttyd.Status)
    first_output = ttyd.parse_server(frames[1])
    assert isinstance(first_output, ttyd.Output)
    screen = PyteScreen(80, 24)
    screen.feed(first_output.data)
    assert screen.text().startswith("hello world")


async def test_slow_viewer_is_resynced_with_bounded_memory() -> None:
    hub = offline_hub(viewer_queue_bytes=64 * 1024)
    await hub.start()
    try:
        fast, slow = hub.join(), hub.join()
        fast_screen = PyteScreen(80, 24)
        fast_screen.feed(output_of(await drain(fast)))
        await drain(slow)
        peak = 0
        chunks = stream(7, pieces=3000)
        for chunk in chunks:
            await output(hub, chunk)
            peak = max(peak, slow.queued_bytes)
            fast_screen.feed(output_of(await drain(fast)) if fast.queued_bytes > 32_000 else b"")
        fast_screen.feed(output_of(await drain(fast)))
        assert peak <= 64 * 1024
        assert slow.resyncs >= 1
        assert fast.resyncs == 0
        # The slow viewer catches up in one snapshot, to the exact same screen.
        slow_screen = PyteScreen(80, 24)
        slow_screen.feed(output_of(await drain(slow)))
        assert slow_screen.state() == fast_screen.state()
        assert hub.statistics().resyncs == slow.resyncs
    finally:
        await hub.aclose()


async def test_held_output_goes_out_when_the_hubs_timer_fires() -> None:
    hub = offline_hub(clock=lambda: 1.0)  # frozen: everything arrives within the window
    viewer = hub.join()
    await drain(viewer)  # its snapshot: a frame just went, the window is open
    await output(hub, b"one")
    await output(hub, b"-two")
    # The timing itself is the relay's (tests/test_relay.py); here, that the
    # hub's timer delivers what the relay held, as one frame.
    frames: list[bytes] = []

    async def arrived() -> bool:
        frames.extend(await drain(viewer))
        return output_of(frames) == b"one-two"

    await eventually(arrived, message="held output")
    assert frames == [b"0one-two"]
    await hub.aclose()


async def test_the_window_grows_with_the_audience() -> None:
    hub = offline_hub()
    assert hub.coalescing == (COALESCE_SECONDS, COALESCE_BYTES)
    viewers = [hub.join() for _ in range(20)]
    window, limit = hub.coalescing
    assert window == 3 * COALESCE_SECONDS
    assert limit == 3 * COALESCE_BYTES
    viewers += [hub.join() for _ in range(500)]
    assert hub.coalescing == (MAX_COALESCE_STEPS * COALESCE_SECONDS, MAX_COALESCE_BYTES)
    # Held output goes at the limit, however long the window.
    await drain(viewers[0])  # joins: a frame was just sent, the window is open
    burst = b"y" * (MAX_COALESCE_BYTES // 2)
    await output(hub, burst)
    await output(hub, burst)
    assert viewers[0].queued_bytes >= 1 + len(burst)
    await hub.aclose()


async def test_joining_while_output_is_held_gets_it_once() -> None:
    hub = offline_hub(10, 2)
    watcher = hub.join()
    await drain(watcher)
    await output(hub, b"a")
    await output(hub, b"b")  # held for the window (if not "a" too)
    joiner = hub.join()
    frames = await drain(joiner)  # the snapshot flushes "b" to the watcher
    await output(hub, b"c")
    frames += await drain(joiner)
    screen = PyteScreen(10, 2)
    screen.feed(output_of(frames))
    assert screen.text() == "abc\n\n"
    assert output_of(await drain(watcher)).endswith(b"abc")
    await hub.aclose()


async def test_frames_go_straight_to_an_idle_socket_and_queue_behind_a_busy_one() -> None:
    hub = offline_hub()
    viewer = hub.join()
    first = await drain(viewer)
    written: list[bytes] = []
    accepting = True

    def write(frame: bytes) -> bool:
        if accepting:
            written.append(frame)
        return accepting

    viewer.attach(write)
    # Each piece fills a frame, so it goes at once whatever the window.
    one, two, three, four = (word.ljust(COALESCE_BYTES, b".") for word in (b"1", b"2", b"3", b"4"))
    await output(hub, one)
    # Written at once as a WebSocket frame, nothing queued, nothing to wake.
    assert written == [ttyd.websocket_frame(b"0" + one)]
    assert viewer.queued_bytes == 0
    accepting = False  # the socket's buffer is full
    await output(hub, two)
    assert viewer.queued_bytes == len(b"0" + two)
    accepting = True
    await output(hub, three)
    # Not past what waits in the queue: the sender keeps the order.
    assert len(written) == 1
    assert output_of(await drain(viewer)) == two + three
    await output(hub, four)
    assert written[-1] == ttyd.websocket_frame(b"0" + four)
    # Counted once, on one basis (ttyd messages), whichever way they went.
    sent = [*first, b"0" + one, b"0" + two + three, b"0" + four]
    assert hub.statistics().bytes_to_viewers == sum(map(len, sent))
    await hub.aclose()


async def test_held_output_reaches_viewers_before_a_status() -> None:
    hub = offline_hub()
    viewer = hub.join()
    await drain(viewer)
    await output(hub, b"a")
    await output(hub, b"b")  # held
    hub.upstream_state(AgentState.RECONNECTING, 1.0, "lost")
    frames = await drain(viewer)
    assert output_of(frames) == b"ab"
    assert isinstance(ttyd.parse_server(frames[-1]), ttyd.Status)
    await hub.aclose()


async def test_one_emulation_budget_per_turn_of_the_loop() -> None:
    budget = EmulationBudget(0.005)
    first = budget.deadline()
    assert first is not None
    budget.spend(0.003)
    second = budget.deadline()
    assert second is not None
    assert second - asyncio.get_running_loop().time() <= 0.002 + 1e-6
    budget.spend(0.003)
    assert budget.deadline() is None  # spent for this turn, whoever asks
    await asyncio.sleep(0)
    assert budget.deadline() is not None  # a new turn


async def test_the_hubs_of_a_fleet_share_one_budget() -> None:
    fleet = Fleet()
    a = fleet.new_hub("t", Target("unix:/nonexistent.sock"), columns=80, rows=24)
    b = fleet.new_hub("u", None, columns=80, rows=24)
    await fleet.add(a)
    await fleet.add(b)
    assert a.emulation_budget is b.emulation_budget is fleet.emulation_budget
    await fleet.start()
    try:
        # Both hubs fed a backlog at once still reach the same screen as
        # direct emulation, the shared budget only spreading the work.
        chunks = stream(3, pieces=400)
        for chunk in chunks:
            await output(a, chunk)
            await output(b, chunk)
        await a.wait_emulated()
        await b.wait_emulated()
        reference = PyteScreen(80, 24)
        reference.feed(b"".join(chunks))
        assert a.screen.text() == b.screen.text() == reference.text()
    finally:
        await fleet.aclose()


async def test_pause_affects_only_that_viewer() -> None:
    hub = offline_hub()
    a, b = hub.join(), hub.join()
    await drain(a), await drain(b)
    a.pause()
    await output(hub, b"while-paused")
    assert b"while-paused" in output_of(await drain(b))
    assert await drain(a) == []
    a.resume()
    assert b"while-paused" in output_of(await drain(a))


async def test_input_is_refused_while_upstream_down() -> None:
    hub = offline_hub()
    with pytest.raises(UpstreamUnavailable):
        await hub.send_input(b"ls\r")


async def test_resize_is_clamped_and_applied_in_order() -> None:
    hub = offline_hub()
    await hub.start()
    try:
        await output(hub, b"x" * 100)
        await hub.resize(9999, 0)
        assert hub.size == (ttyd.MAX_COLUMNS, ttyd.MIN_ROWS)
        await hub.resize(100, 30)
        await output(hub, b"\x1b[30;100HZ")
        viewer = hub.join()
        screen = PyteScreen(100, 30)
        screen.feed(output_of(await drain(viewer)))
        await hub.wait_emulated()
        assert (hub.screen.columns, hub.screen.rows) == (100, 30)
        assert screen.state() == hub.screen.state()
        status = [ttyd.parse_server(f) for f in await drain(viewer)]
        assert status == []  # nothing new since the join
    finally:
        await hub.aclose()


async def test_closed_viewer_ends_and_leaves() -> None:
    hub = offline_hub()
    viewer = hub.join()
    assert hub.statistics().viewers == 1
    viewer.close(1001)
    assert [batch async for batch in viewer.batches()] == []
    assert viewer.close_code == 1001
    assert hub.statistics().viewers == 0


async def test_fleet_lookup() -> None:
    fleet = Fleet()
    await fleet.add(fleet.new_hub("t", None))
    assert fleet.get("t").agent_id == "t"
    with pytest.raises(AgentNotFound):
        fleet.get("missing")
    with pytest.raises(ValueError, match="duplicate"):
        await fleet.add(fleet.new_hub("t", None))
    # A hub made elsewhere would emulate outside the shared budget, unheard.
    with pytest.raises(ValueError, match="new_hub"):
        await fleet.add(Hub("other", None))


async def test_a_viewer_that_joins_a_closed_hub_is_closed_at_once() -> None:
    # A handshake can take seconds; the hub may be removed meanwhile.
    hub = offline_hub()
    await hub.aclose(1001)
    viewer = hub.join("late")
    assert viewer.close_code == 1001
    assert [batch async for batch in viewer.batches()] == []
    assert hub.statistics().viewers == 0


async def test_a_join_mid_message_gets_exactly_the_bytes_not_yet_emulated() -> None:
    hub = offline_hub()
    data = b"".join(b"line %05d\r\n" % i for i in range(2000))  # far past one FEED_PIECE
    await output(hub, data)
    hub._feed_one()  # one piece: the emulator stops inside the message
    emulated = hub.screen.offset
    assert 0 < emulated < len(data)
    frames = await drain(hub.join())
    assert frames[1] == b"0" + hub.screen.snapshot() + data[emulated:]


async def test_presence_and_changes_reach_fleet_listeners() -> None:
    fleet = Fleet()
    heard: list[tuple[str, str, int]] = []
    fleet.listeners.append(
        lambda change, hub: heard.append((change, hub.status.state, len(hub.viewers)))
    )
    hub = fleet.new_hub("parked", None)
    await fleet.add(hub)
    await fleet.start()
    a, b, c = hub.join("olga"), hub.join("olga"), hub.join("vic")
    assert hub.presence == {"olga": 2, "vic": 1}
    c.close(1000)
    assert hub.statistics().presence == {"olga": 2}
    await hub.set_target(None, state=AgentState.CONFLICT, message="two claim it")
    assert (hub.status.state, hub.status.message) == ("conflict", "two claim it")
    # Input to an agent without a terminal is refused, not queued.
    with pytest.raises(UpstreamUnavailable, match="conflict"):
        await hub.send_input(b"x")
    await fleet.remove("parked")
    assert heard == [
        ("added", "stopped", 0),
        ("changed", "stopped", 1),
        ("changed", "stopped", 2),
        ("changed", "stopped", 3),
        ("changed", "stopped", 2),
        ("changed", "conflict", 2),
        ("removed", "conflict", 0),
    ]
    assert a.close_code == b.close_code == 1001
    assert "parked" not in fleet


# --- against a real ttyd + tmux ------------------------------------------------


async def test_real_agent_screen_equals_tmux(make_agent: AgentFactory) -> None:
    agent: LocalAgent = await make_agent()
    hub = Hub(agent.name, Target(agent.url), columns=80, rows=24, backoff=Backoff(0.05, 0.2))
    await hub.start()
    try:
        await eventually(lambda: hub.upstream.state is AgentState.CONNECTED, message="connect")
        await hub.send_input(b"for i in $(seq 1 300); do echo line-$i; done\r")
        await eventually(lambda: "line-300" in hub.screen.text(), message="line-300")
        await eventually(lambda: _same(agent, hub), message="hub screen equals tmux")
    finally:
        await hub.aclose()


async def _same(agent: LocalAgent, hub: Hub) -> bool:
    await hub.wait_emulated()
    return await agent.capture() == hub.screen.text()


async def test_upstream_stays_connected_with_no_viewers(make_agent: AgentFactory) -> None:
    agent = await make_agent()
    hub = Hub(agent.name, Target(agent.url), columns=80, rows=24, backoff=Backoff(0.05, 0.2))
    await hub.start()
    try:
        await eventually(lambda: hub.upstream.state is AgentState.CONNECTED, message="connect")
        await agent.tmux("send-keys", "-t", agent.name, "echo typed-in-tmux", "Enter")
        await eventually(lambda: "typed-in-tmux" in hub.screen.text(), within=timeout(10))
        assert hub.statistics().viewers == 0
    finally:
        await hub.aclose()


async def test_notices_survive_a_pending_resync() -> None:
    hub = offline_hub()
    viewer = hub.join()  # its first batch (the snapshot) is not taken yet
    viewer.notice("read_only", "no typing")
    frames = await drain(viewer)
    assert isinstance(ttyd.parse_server(frames[1]), ttyd.Output)
    assert ttyd.parse_server(frames[-1]) == ttyd.Notice("read_only", "no typing")


def resize_notices(frames: list[bytes]) -> list[ttyd.Notice]:
    parsed = [ttyd.parse_server(frame) for frame in frames]
    return [m for m in parsed if isinstance(m, ttyd.Notice) and m.code == "resized"]


@pytest.fixture
def quick_resize_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.core.hub.RESIZE_QUIET", 0.05)
    monkeypatch.setattr("gateway.core.hub.RESIZE_NOTICE_MAX_WAIT", 0.3)


@pytest.mark.usefixtures("quick_resize_notices")
async def test_a_flood_of_resizes_is_one_notice_to_the_others_naming_who() -> None:
    hub = offline_hub(100, 30)
    await hub.start()
    try:
        alice, bob, carol = hub.join("alice"), hub.join("bob"), hub.join("carol")
        for viewer in (alice, bob, carol):
            await drain(viewer)
        for step in range(1000):
            await hub.resize(40 + step % 60, 20 + step % 10, who="alice", viewer=alice)
        await hub.resize(46, 40, who="alice", viewer=alice)
        await asyncio.sleep(timeout(0.3))
        expected = ttyd.Notice(
            "resized",
            "alice resized the agent to 46x40 (was 100x30)",
            {"by": "alice", "columns": 46, "rows": 40, "previous": {"columns": 100, "rows": 30}},
        )
        assert resize_notices(await drain(bob)) == [expected]
        assert resize_notices(await drain(carol)) == [expected]
        # The one who resized is not told what they did.
        assert resize_notices(await drain(alice)) == []
    finally:
        await hub.aclose()


@pytest.mark.usefixtures("quick_resize_notices")
async def test_a_resize_that_never_stops_is_told_at_most_once_per_max_wait() -> None:
    hub = offline_hub(100, 30)
    await hub.start()
    try:
        alice, bob = hub.join("alice"), hub.join("bob")
        await drain(bob)
        loop = asyncio.get_running_loop()
        started, step = loop.time(), 0
        while loop.time() - started < 1.0:
            await hub.resize(40 + step % 60, 24, who="alice", viewer=alice)
            step += 1
            await asyncio.sleep(0.01)
        await asyncio.sleep(timeout(0.2))
        told = resize_notices(await drain(bob))
        # One second of dragging, a notice per 0.3 s at most (and at least one).
        assert 1 <= len(told) <= 5, told
        assert told[-1].details is not None
        assert told[-1].details["by"] == "alice"
    finally:
        await hub.aclose()


@pytest.mark.usefixtures("quick_resize_notices")
async def test_no_notice_when_the_size_comes_back_or_nobody_is_named() -> None:
    hub = offline_hub(100, 30)
    await hub.start()
    try:
        alice, bob = hub.join("alice"), hub.join("bob")
        await drain(bob)
        await hub.resize(50, 20, who="alice", viewer=alice)
        await hub.resize(100, 30, who="alice", viewer=alice)
        # A resize nobody asked for by name (the holder applying a forwarded one).
        await hub.resize(60, 20)
        await asyncio.sleep(timeout(0.3))
        assert resize_notices(await drain(bob)) == []
    finally:
        await hub.aclose()


def test_a_notice_carries_its_details_and_parses_back() -> None:
    notice = ttyd.Notice("resized", "m", {"by": "a", "columns": 1, "rows": 2})
    wire = notice.serialize()
    assert json.loads(wire[1:]) == {
        "by": "a",
        "columns": 1,
        "rows": 2,
        "code": "resized",
        "message": "m",
    }
    assert ttyd.parse_server(wire) == notice
    assert ttyd.parse_server(ttyd.Notice("read_only", "x").serialize()) == ttyd.Notice(
        "read_only", "x"
    )


def test_who_resized_travels_between_replicas_but_never_to_ttyd() -> None:
    resize = ttyd.Resize(46, 40, by="alice", viewer="c0ffee")
    assert ttyd.parse_client(resize.serialize()) == resize
    assert resize.for_ttyd().serialize() == b'1{"columns":46,"rows":40}'
    assert ttyd.Resize(46, 40).serialize() == b'1{"columns":46,"rows":40}'
    with pytest.raises(PeerProtocolError):
        ttyd.parse_client(b'1{"columns":46,"rows":40,"by":7}')
    long = ttyd.parse_client(b'1{"columns":46,"rows":40,"by":"' + b"x" * 3000 + b'"}')
    assert isinstance(long, ttyd.Resize)
    assert len(long.by) == ttyd.MAX_NAME
