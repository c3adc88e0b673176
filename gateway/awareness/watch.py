"""The classifier's asyncio side: one task looks at every agent's screen when it is due.

Off the hot path: nothing here runs per output message. Every :data:`TICK`
the task compares each hub's emulated offset with the last it saw (a number,
no copy), tells that agent's :class:`~.classify.Cadence`, and looks at the
screens that are due: after their output went quiet, at most every second
under continuous output, and at most :data:`MAX_LOOKS` agents a tick for
the whole fleet (the rest wait for the next tick, oldest first). A look is
a ``text()`` of the screen and :func:`~.classify.observe`; a verdict that
changed is published (``agent_state`` on ``/api/events``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ..core.hub import Hub
from ..core.state import AgentState
from .classify import ATTENTION, Cadence, Facts, Seen, Tracker, Verdict, observe
from .profile import BUILTIN, PROFILES, builtin

__all__ = ["MAX_LOOKS", "TICK", "WAITING", "Awareness"]

log = logging.getLogger(__name__)

TICK: Final = 0.05
#: Screens looked at per tick, fleet-wide: 320 a second at most.
MAX_LOOKS: Final = 16
#: The states someone has to answer.
WAITING: Final = ("waiting_approval", "waiting_input", "setup_required")


@dataclass
class _Watch:
    tracker: Tracker
    cadence: Cadence = field(default_factory=Cadence)
    offset: int = -1
    connected_since: float | None = None
    #: Seconds spent in a waiting state so far (Prometheus), up to the last look.
    waited: float = 0.0
    last_look: float | None = None


def _key(verdict: Verdict) -> tuple[Any, ...]:
    fingerprint = verdict.prompt.fingerprint if verdict.prompt else None
    return (verdict.state, verdict.reason, fingerprint, verdict.unread, verdict.settled)


class Awareness:
    """What every agent of ``fleet`` is doing, kept current by :meth:`run`."""

    def __init__(
        self,
        fleet: Iterable[Hub],
        *,
        profile_of: Callable[[str], str] = lambda _: "auto",
        viewers_of: Callable[[Hub], int] = lambda hub: hub.statistics().viewers,
        on_change: Callable[[Hub, Verdict], None] = lambda hub, verdict: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fleet = fleet
        self._profile_of = profile_of
        self._viewers_of = viewers_of
        self._on_change = on_change
        self._clock = clock
        self._watches: dict[str, _Watch] = {}
        self._wall = time.time() - clock()
        # Loaded and checked now, before the app serves: a bad profile stops
        # the start, and the checks' probes never run on the event loop later.
        for name in BUILTIN:
            builtin(name)

    def wall(self, t: float) -> float:
        """A time of the clock as seconds since the epoch, for the API."""
        return round(t + self._wall, 3)

    def verdict(self, agent_id: str) -> Verdict | None:
        watch = self._watches.get(agent_id)
        return None if watch is None else watch.tracker.verdict

    def agent_ids(self) -> list[str]:
        return [hub.agent_id for hub in self._fleet]

    def waited(self) -> dict[str, float]:
        return {agent_id: w.waited for agent_id, w in self._watches.items()}

    def look(self, hub: Hub) -> Seen:
        """A fresh look at ``hub``'s screen, now (the answer's re-check), through its profile."""
        watch = self._watch(hub)
        screen = hub.screen
        lines = tuple(screen.text().split("\n")[: screen.rows])
        facts = self._facts(hub, watch, lines, self._clock())
        return observe(watch.tracker.profile_for(facts), lines, screen.cursor, screen.title)

    def state_json(self, agent_id: str) -> dict[str, Any]:
        """The fields /api/agents gains: state, since, reason, prompt, unread."""
        verdict = self.verdict(agent_id)
        if verdict is None:
            return {"state": "unknown", "state_since": None, "state_reason": "not_seen_yet",
                    "unread": False, "prompt": None, "profile": None}  # fmt: skip
        prompt = None
        if verdict.prompt is not None:
            prompt = verdict.prompt.to_json(self._wall)
            prompt["settled"] = verdict.settled
        return {
            "state": verdict.state,
            "state_since": self.wall(verdict.since),
            "state_reason": verdict.reason,
            "unread": verdict.unread,
            "prompt": prompt,
            "profile": verdict.profile,
        }

    def needs_attention(self, agent_id: str) -> bool:
        verdict = self.verdict(agent_id)
        return verdict is not None and (
            verdict.state in ATTENTION or (verdict.state == "idle" and verdict.unread)
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.tick()

    def tick(self) -> None:
        now = self._clock()
        hubs = {hub.agent_id: hub for hub in self._fleet}
        for gone in self._watches.keys() - hubs.keys():
            del self._watches[gone]
        due: list[tuple[float, Hub, _Watch]] = []
        for hub in hubs.values():
            watch = self._watch(hub)
            offset = hub.screen.offset
            if offset != watch.offset:
                watch.offset = offset
                watch.cadence.output(now)
            if watch.cadence.due(now):
                due.append((watch.cadence.last_look, hub, watch))
        due.sort(key=lambda item: item[0])
        for _, hub, watch in due[:MAX_LOOKS]:
            try:
                self._update(hub, watch, now)
            except Exception:  # one agent's screen must never stop the fleet's awareness
                watch.cadence.looked(now)
                log.exception("%s: its screen could not be classified", hub.agent_id)

    def _watch(self, hub: Hub) -> _Watch:
        watch = self._watches.get(hub.agent_id)
        if watch is None:
            profile = self._profile_of(hub.agent_id)
            if profile not in PROFILES:
                log.warning("%s: no profile %r; detecting the CLI instead", hub.agent_id, profile)
                profile = "auto"
            watch = self._watches[hub.agent_id] = _Watch(Tracker(profile))
        return watch

    def _facts(self, hub: Hub, watch: _Watch, lines: tuple[str, ...] | None, now: float) -> Facts:
        connected = hub.status.state is AgentState.CONNECTED
        if not connected:
            watch.connected_since = None
        elif watch.connected_since is None:
            watch.connected_since = now
        screen = hub.screen
        return Facts(
            lines,
            screen.cursor,
            screen.title,
            now,
            connected=connected,
            connected_since=watch.connected_since or now,
            viewers=self._viewers_of(hub),
            inputs=hub.inputs,
        )

    def _update(self, hub: Hub, watch: _Watch, now: float) -> None:
        before = watch.tracker.verdict
        changed = watch.cadence.looked(now)
        screen = hub.screen
        lines = tuple(screen.text().split("\n")[: screen.rows]) if changed else None
        verdict = watch.tracker.update(self._facts(hub, watch, lines, now))
        if before is not None and before.state in WAITING and watch.last_look is not None:
            watch.waited += now - watch.last_look
        watch.last_look = now
        if before is None or _key(before) != _key(verdict):
            self._on_change(hub, verdict)
