"""Every agent hub of this gateway, by id, with one emulation budget."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Iterator

from ..errors import AgentNotFound
from ..limits import DEFAULT_VIEWER_QUEUE_BYTES
from ..screen.base import TerminalScreen
from ..screen.reference import PyteScreen
from .backoff import Backoff
from .budget import EmulationBudget
from .hub import Hub
from .seams import PaneHistory, SourceFactory, ttyd_source
from .target import Target


class FleetChange(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


FleetListener = Callable[[FleetChange, Hub], None]


class Fleet:
    """Hubs come and go at run time (Docker discovery); listeners hear of every
    addition, removal and change of status or viewers, synchronously, so an
    event stream sees them in the order they happened.

    Hubs are made by :meth:`new_hub`, which gives them the fleet's budget and
    change callback, then :meth:`add`-ed.
    """

    def __init__(self, *, source: SourceFactory = ttyd_source) -> None:
        self._hubs: dict[str, Hub] = {}
        self._running = False
        self._source = source
        self.emulation_budget = EmulationBudget()
        self.listeners: list[FleetListener] = []

    def new_hub(
        self,
        agent_id: str,
        target: Target | None,
        *,
        columns: int = 120,
        rows: int = 40,
        viewer_queue_bytes: int = DEFAULT_VIEWER_QUEUE_BYTES,
        backoff: Backoff | None = None,
        screen: Callable[[int, int], TerminalScreen] = PyteScreen,
        pane: PaneHistory | None = None,
    ) -> Hub:
        """A hub of this fleet (not added yet); ``pane``: its tmux, if the gateway can ask it."""
        return Hub(
            agent_id,
            target,
            columns=columns,
            rows=rows,
            viewer_queue_bytes=viewer_queue_bytes,
            backoff=backoff,
            screen=screen,
            budget=self.emulation_budget,
            on_change=self._changed,
            source=self._source,
            pane=pane,
        )

    async def add(self, hub: Hub) -> None:
        """Add a hub; it is started if the fleet is running."""
        if hub.agent_id in self._hubs:
            raise ValueError(f"duplicate agent id {hub.agent_id!r}")
        if hub.emulation_budget is not self.emulation_budget:
            # It would emulate on a budget of its own and its changes go unheard.
            raise ValueError(f"hub {hub.agent_id!r} was not made by this fleet's new_hub")
        self._hubs[hub.agent_id] = hub
        if self._running:
            await hub.start()
        self._notify(FleetChange.ADDED, hub)

    async def remove(self, agent_id: str, code: int = 1001) -> None:
        """Stop a hub and close its viewers with ``code``."""
        hub = self._hubs.pop(agent_id, None)
        if hub is None:
            return
        await hub.aclose(code)
        self._notify(FleetChange.REMOVED, hub)

    def get(self, agent_id: str) -> Hub:
        try:
            return self._hubs[agent_id]
        except KeyError:
            raise AgentNotFound(agent_id) from None

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._hubs

    def __iter__(self) -> Iterator[Hub]:
        return iter(sorted(self._hubs.values(), key=lambda hub: hub.agent_id))

    def __len__(self) -> int:
        return len(self._hubs)

    async def start(self) -> None:
        self._running = True
        for hub in list(self._hubs.values()):
            await hub.start()

    async def aclose(self, code: int = 1001) -> None:
        self._running = False
        await asyncio.gather(*(hub.aclose(code) for hub in self._hubs.values()))

    def _changed(self, hub: Hub) -> None:
        # Only hubs of the fleet are heard: one being removed says nothing more.
        if self._hubs.get(hub.agent_id) is hub:
            self._notify(FleetChange.CHANGED, hub)

    def _notify(self, change: FleetChange, hub: Hub) -> None:
        for listener in self.listeners:
            listener(change, hub)
