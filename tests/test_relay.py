"""The relay, sans I/O: coalescing by the clock it is given, viewer states, resyncs.

Every test passes ``now``: no sleeping past windows, no patched constants.
"""

from __future__ import annotations

import random

import pytest

from gateway.core import ttyd
from gateway.core.relay import (
    COALESCE_BYTES,
    COALESCE_SECONDS,
    MAX_COALESCE_BYTES,
    MAX_COALESCE_STEPS,
    Delivery,
    Relay,
    ViewerState,
    coalesce,
    join_output,
)

SNAPSHOT = [b"S{}", b"0<snapshot>"]
LATER = 10.0  # long after anything: a quiet spell


def settled(relay: Relay[str], *keys: str, now: float = 0.0) -> None:
    """Viewers that took their snapshot at ``now`` and sent it: DIRECT."""
    for key in keys:
        relay.join(key)
    relay.flush(now)  # what a join does first
    for key in keys:
        assert relay.take(key, SNAPSHOT) == SNAPSHOT
        assert not relay.sent(key)
        assert relay.state(key) is ViewerState.DIRECT


def write_all(
    relay: Relay[str], delivery: Delivery[str] | None, *, refuse: frozenset[str] = frozenset()
) -> dict[str, bytes]:
    """Play the hub: write to the direct ones, unless their socket refuses."""
    written: dict[str, bytes] = {}
    if delivery is None:
        return written
    for key in delivery.direct:
        if key in refuse:
            relay.refused(key, delivery.frame)
        else:
            written[key] = delivery.frame
    relay.written(len(written), delivery.frame)
    return written


def test_a_lone_message_is_relayed_whole_and_runs_are_joined_once() -> None:
    message = b"0hello"
    assert join_output([message]) is message
    assert join_output([b"0a", b"0b", b"0c"]) == b"0abc"
    status = ttyd.Status("connected", 80, 24).serialize()  # type: ignore[arg-type]
    assert coalesce([b"0a", b"0b", status, b"0c"]) == [b"0ab", status, b"0c"]


def test_output_after_a_quiet_spell_goes_out_at_once() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "v")
    delivery = relay.output(b"0echo", LATER)
    # No timer stands between a keystroke and its echo.
    assert delivery is not None
    assert delivery.direct == ["v"]
    assert write_all(relay, delivery) == {"v": b"0echo"}
    assert relay.deadline is None
    assert relay.bytes_to_viewers == sum(map(len, SNAPSHOT)) + len(b"0echo")


def test_output_under_load_is_one_frame_shared_by_every_viewer() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "a", "b", now=1.0)  # their snapshots: a frame just went
    for piece in (b"0one", b"0-two", b"0-three"):
        assert relay.output(piece, 1.001) is None  # held for the window
    assert relay.deadline == pytest.approx(1.0 + COALESCE_SECONDS)
    delivery = relay.flush(relay.deadline)
    assert delivery is not None
    assert sorted(delivery.direct) == ["a", "b"]
    assert delivery.frame == b"0one-two-three"  # one frame, encoded once, for all
    assert relay.deadline is None


def test_a_big_burst_is_not_held_back() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "v", now=1.0)
    assert relay.output(b"0x", 1.0) is None
    burst = b"0" + b"y" * (COALESCE_BYTES // 4)
    held = [relay.output(burst, 1.0) for _ in range(4)]
    # The window is not over, but a full frame goes at once.
    assert held[:3] == [None, None, None]
    delivery = held[3]
    assert delivery is not None
    assert len(delivery.frame) == 1 + len(b"x") + 4 * (len(burst) - 1)


def test_the_window_grows_with_the_audience() -> None:
    relay: Relay[str] = Relay(1 << 20)
    assert relay.coalescing() == (COALESCE_SECONDS, COALESCE_BYTES)
    viewers = [f"v{i}" for i in range(20)]
    settled(relay, *viewers)
    window, limit = relay.coalescing()
    assert window == 3 * COALESCE_SECONDS
    assert limit == 3 * COALESCE_BYTES
    settled(relay, *(f"w{i}" for i in range(500)))
    assert relay.coalescing() == (MAX_COALESCE_STEPS * COALESCE_SECONDS, MAX_COALESCE_BYTES)
    # Held output goes at the limit, however long the window.
    burst = b"0" + b"y" * (MAX_COALESCE_BYTES // 2)
    assert relay.output(burst, 0.0) is None
    assert relay.output(burst, 0.0) is not None


def test_a_joiner_never_gets_output_its_snapshot_holds() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "watcher", now=1.0)
    relay.output(b"0a", 1.001)
    relay.join("joiner")
    # The hub flushes held output before the snapshot: the joiner, still
    # owing its resync, is not in that delivery.
    delivery = relay.flush(1.002)
    assert delivery is not None
    assert delivery.direct == ["watcher"]
    assert delivery.woken == []
    assert relay.take("joiner", SNAPSHOT) == SNAPSHOT
    relay.sent("joiner")
    delivery = relay.output(b"0c", LATER)
    assert delivery is not None
    assert sorted(delivery.direct) == ["joiner", "watcher"]


def test_a_resync_needs_its_snapshot() -> None:
    relay: Relay[str] = Relay(1 << 20)
    relay.join("v")
    with pytest.raises(ValueError, match="snapshot"):
        relay.take("v")


def test_a_refused_write_queues_and_later_frames_keep_the_order() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "v")
    assert write_all(relay, relay.output(b"0one", LATER)) == {"v": b"0one"}
    # The socket's buffer is full: the frame queues and the sender takes over.
    assert write_all(relay, relay.output(b"0two", 2 * LATER), refuse=frozenset({"v"})) == {}
    assert relay.state("v") is ViewerState.QUEUED
    assert relay.queued_bytes("v") == len(b"0two")
    # Not past what waits in the queue.
    delivery = relay.output(b"0three", 3 * LATER)
    assert delivery is not None
    assert delivery.direct == []
    assert delivery.woken == ["v"]
    assert relay.take("v") == [b"0twothree"]
    assert relay.state("v") is ViewerState.QUEUED  # the batch is out with the sender
    assert relay.output(b"0late", 4 * LATER) is not None
    assert relay.queued_bytes("v") == len(b"0late")
    assert relay.sent("v")  # more waits
    assert relay.take("v") == [b"0late"]
    assert not relay.sent("v")
    assert relay.state("v") is ViewerState.DIRECT
    assert write_all(relay, relay.output(b"0four", 5 * LATER)) == {"v": b"0four"}


def test_held_output_goes_before_a_status() -> None:
    relay: Relay[str] = Relay(1 << 20)
    settled(relay, "v", now=1.0)
    relay.output(b"0a", 1.001)
    relay.output(b"0b", 1.002)
    delivery = relay.flush(1.003)  # what the hub does before a status
    assert delivery is not None
    assert delivery.frame == b"0ab"
    relay.refused("v", delivery.frame)
    assert relay.broadcast(b"S{}") == ["v"]
    assert relay.take("v") == [b"0ab", b"S{}"]


def test_a_slow_viewer_drops_its_queue_and_owes_a_snapshot() -> None:
    relay: Relay[str] = Relay(64)
    settled(relay, "slow", "fast")
    now = LATER
    for _ in range(10):
        now += LATER
        write_all(relay, relay.output(b"0" + b"x" * 20, now), refuse=frozenset({"slow"}))
        assert relay.queued_bytes("slow") <= 64
    assert relay.state("slow") is ViewerState.RESYNC
    assert relay.resyncs_of("slow") >= 1
    assert relay.resyncs_of("fast") == 0
    assert relay.resyncs == relay.resyncs_of("slow")
    # Owing a snapshot, it keeps nothing more: the snapshot will hold it.
    write_all(relay, relay.output(b"0more", now + LATER))
    assert relay.queued_bytes("slow") == 0
    assert relay.take("slow", SNAPSHOT) == SNAPSHOT


def test_pause_affects_only_that_viewer_and_a_paused_overflow_resyncs_once() -> None:
    relay: Relay[str] = Relay(64)
    settled(relay, "a", "b")
    relay.pause("a")
    assert relay.take("a") == []
    delivery = relay.output(b"0while-paused", LATER)
    assert delivery is not None
    assert delivery.direct == ["b"]
    assert relay.queued_bytes("a") == len(b"0while-paused")
    for i in range(10):
        relay.output(b"0" + b"x" * 30, LATER * (2 + i))
    assert relay.resyncs_of("a") == 1  # dropped once, then nothing kept
    assert relay.state("a") is ViewerState.PAUSED
    assert relay.resume("a")
    assert relay.state("a") is ViewerState.RESYNC


def test_notices_survive_a_resync_and_wait_behind_nothing() -> None:
    relay: Relay[str] = Relay(1 << 20)
    relay.join("v")
    assert relay.notice("v", b"Nnote")
    assert relay.take("v", SNAPSHOT) == [*SNAPSHOT, b"Nnote"]
    relay.sent("v")
    assert relay.notice("v", b"Nagain")
    assert relay.state("v") is ViewerState.QUEUED  # a direct write must not pass it
    delivery = relay.output(b"0x", LATER)
    assert delivery is not None
    assert delivery.direct == []
    assert delivery.woken == ["v"]
    assert relay.take("v") == [b"0x", b"Nagain"]


def test_a_viewer_that_left_gets_nothing_and_its_resyncs_are_kept() -> None:
    relay: Relay[str] = Relay(8)
    settled(relay, "v")
    write_all(relay, relay.output(b"0" + b"x" * 20, LATER), refuse=frozenset({"v"}))
    assert relay.leave("v")
    assert not relay.leave("v")
    assert relay.state("v") is ViewerState.CLOSED
    assert relay.take("v") == []
    assert not relay.notice("v", b"N")
    assert not relay.refused("v", b"0")
    assert relay.resyncs == 1


@pytest.mark.parametrize("seed", range(40))
def test_random_interleavings_lose_nothing_and_stay_bounded(seed: int) -> None:
    """Play the hub and the viewers' senders in a random order, with refusing sockets.

    After each snapshot a viewer's output continues the stream exactly: no
    gap, no byte twice; queues stay in their bound; the count is exact.
    """
    rng = random.Random(seed)
    bound = rng.choice([64, 1024, 1 << 20])
    relay: Relay[str] = Relay(bound)
    stream = bytearray()
    at: dict[str, int | None] = {}  # where each viewer's screen is in the stream
    holding: dict[str, list[bytes]] = {}
    handed = 0
    now = 0.0

    def receive(key: str, frame: bytes) -> None:
        if frame[:1] == b"X":  # our snapshot: the stream's offset when it was taken
            at[key] = int(frame[1:])
        elif frame[:1] == b"0":
            start = at[key]
            assert start is not None, "output before the snapshot"
            assert frame[1:] == stream[start : start + len(frame) - 1], "a gap or a repeat"
            at[key] = start + len(frame) - 1

    def deliver(delivery: Delivery[str] | None) -> None:
        nonlocal handed
        if delivery is None:
            return
        written = 0
        for key in delivery.direct:
            if rng.random() < 0.3:
                relay.refused(key, delivery.frame)
            else:
                receive(key, delivery.frame)
                written += 1
        relay.written(written, delivery.frame)
        handed += written * len(delivery.frame)

    for step in range(300):
        viewers = list(at)
        action = rng.random()
        if action < 0.1 or not viewers:
            key = f"v{step}"
            relay.join(key)
            at[key] = None
        elif action < 0.5:
            data = bytes(rng.randrange(33, 126) for _ in range(rng.choice([1, 20, 300, 5000])))
            stream += data
            now += rng.choice([0.0, 0.001, 0.01, 1.0])
            deliver(relay.output(b"0" + data, now))
        elif action < 0.55:
            now += 0.005
            deliver(relay.flush(now))
        else:
            key = rng.choice(viewers)
            if action < 0.6:
                relay.pause(key)
            elif action < 0.65:
                relay.resume(key)
            elif action < 0.68:
                relay.leave(key)
                del at[key]
                holding.pop(key, None)
            elif key in holding:
                for frame in holding.pop(key):
                    receive(key, frame)
                relay.sent(key)
            else:
                snapshot = None
                if relay.state(key) is ViewerState.RESYNC:
                    deliver(relay.flush(now))  # as join_frames does, first
                    snapshot = [b"X%d" % len(stream)]
                batch = relay.take(key, snapshot)
                handed += sum(map(len, batch))
                if batch:
                    holding[key] = batch
        for key in at:
            assert relay.queued_bytes(key) <= bound
    assert relay.bytes_to_viewers == handed
