"""The awareness service's budget: when it looks, how many screens a tick, what it tells."""

from __future__ import annotations

import pytest

from gateway.awareness.classify import Facts, Tracker, Verdict
from gateway.awareness.watch import MAX_LOOKS, Awareness
from gateway.core.hub import Hub
from gateway.screen.reference import PyteScreen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fleet_of(count: int) -> list[Hub]:
    # Hubs with no ttyd: their screens are real, fed here; "connected" they are not.
    return [Hub(f"a{i:03d}", None, columns=40, rows=5, screen=PyteScreen) for i in range(count)]


def test_a_fleet_is_looked_at_within_the_budget_oldest_first() -> None:
    hubs, clock = fleet_of(100), Clock()
    looked: list[str] = []
    awareness = Awareness(hubs, clock=clock, on_change=lambda hub, _: looked.append(hub.agent_id))
    for hub in hubs:
        hub.screen.feed(b"$ ")
    ticks = 0
    while len(looked) < len(hubs):
        clock.now += 0.05
        before = len(looked)
        awareness.tick()
        ticks += 1
        assert len(looked) - before <= MAX_LOOKS
        assert ticks < 20
    assert sorted(looked) == sorted(h.agent_id for h in hubs)  # each once, none starved
    assert ticks == -(-len(hubs) // MAX_LOOKS) + 1  # the first tick sees output, no quiet yet
    # Nothing new, no change: no more news, and a screen unchanged is not read again.
    for _ in range(40):
        clock.now += 0.05
        awareness.tick()
    assert len(looked) == len(hubs)
    assert all(awareness.verdict(h.agent_id) is not None for h in hubs)
    assert awareness.state_json("a000")["state_reason"] == "transport.down"
    assert awareness.state_json("nobody")["state"] == "unknown"


def test_a_removed_agent_is_forgotten() -> None:
    hubs, clock = fleet_of(2), Clock()
    awareness = Awareness(hubs, clock=clock)
    for _ in range(3):
        clock.now += 0.5
        awareness.tick()
    assert awareness.verdict("a001") is not None
    hubs.pop()
    awareness.tick()
    assert awareness.verdict("a001") is None
    assert awareness.agent_ids() == ["a000"]


def test_one_agent_that_cannot_be_classified_stops_nobody(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault no real screen produces now (one did: a digit int() refused): injected."""
    hubs, clock = fleet_of(3), Clock()
    awareness = Awareness(hubs, clock=clock)
    real = Tracker.update

    def update(self: Tracker, facts: Facts) -> Verdict:
        if facts.lines is not None and "boom" in facts.lines[0]:
            raise ValueError("a screen the classifier chokes on")
        return real(self, facts)

    monkeypatch.setattr(Tracker, "update", update)
    hubs[1].screen.feed(b"boom")
    for _ in range(5):
        clock.now += 0.5
        awareness.tick()
    assert awareness.verdict("a000") is not None
    assert awareness.verdict("a002") is not None
    assert "a001: its screen could not be classified" in caplog.text
