"""The dashboard's event feed: what changed in the fleet, in order, resumable.

Publishers (the fleet, Docker discovery) append to one :class:`EventBus`;
every ``GET /api/events`` stream reads the same ring from its own position
(see :mod:`gateway.sse`), filtered by what its user may see.

:class:`Loopback` is the control channel of a gateway that is one process:
there is no other replica to tell (see :class:`~gateway.seams.ControlChannel`),
and :class:`LocalPresence` its presence: nobody watches elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ring import Ring
from .tasks import Signal

# Events kept for resuming. A client away for longer gets a reset and a fresh snapshot.
EVENT_RING = 1000


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # agent, docker
    data: dict[str, Any]
    # The agent it is about: only users who see that agent get it (None: everybody).
    agent: str | None = None


class EventBus:
    def __init__(self, capacity: int = EVENT_RING) -> None:
        self.ring: Ring[Event] = Ring(capacity)
        self.signal = Signal()

    def publish(self, kind: str, data: dict[str, Any], *, agent: str | None = None) -> None:
        self.ring.append(Event(kind, data, agent))
        self.signal.fire()

    async def resume(self, last_event_id: str | None) -> int | None:
        return self.ring.resume(last_event_id)


class Loopback:
    """The control channel of a single gateway: whatever it ends, it ended itself."""

    async def publish(self, kind: str, value: str) -> None:
        return None


class LocalPresence:
    """The presence of a single gateway: its own viewers are all there are."""

    def fleet_wide(
        self, agent_id: str, viewers: int, presence: Mapping[str, int]
    ) -> tuple[int, dict[str, int]]:
        return viewers, dict(presence)
