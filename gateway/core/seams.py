"""Where a hub's output comes from: its :class:`Source`.

:class:`~gateway.core.upstream.Upstream`, a ttyd client, is the default. In
replica mode :class:`~gateway.replica.source.ReplicaSource` is ttyd while
its replica holds the agent and the agent's Redis stream otherwise; it
publishes what the holder relays itself, so the hub needs no other seam.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from . import ttyd
from .backoff import Backoff
from .state import AgentState
from .target import Target
from .upstream import Upstream, UpstreamSink, UpstreamStatistics


class Source(Protocol):
    """The one connection that feeds a hub (reports to its :class:`UpstreamSink`)."""

    @property
    def state(self) -> AgentState: ...

    @property
    def mirrors(self) -> bool:
        """True while it only mirrors a terminal another replica holds.

        The size is then the holder's: the hub asks for a resize through
        :meth:`send` and applies it when the source reports it
        (:meth:`UpstreamSink.upstream_resized`), never on its own.
        """

    def statistics(self) -> UpstreamStatistics: ...

    async def send(self, message: ttyd.ClientMessage) -> None:
        """Input or a resize for the agent; raises UpstreamUnavailable when down."""

    async def run(self) -> None:
        """Connect and keep connected until cancelled."""


class SourceSink(UpstreamSink, Protocol):
    """What a source reports to, and may ask of, its hub (the hub is one)."""

    @property
    def status(self) -> ttyd.Status: ...

    def join_frames(self, history: int = 0) -> list[bytes]:
        """Status and one output frame: ``history`` lines of history, then the screen."""

    async def resize(
        self, columns: int, rows: int, *, who: str = "", viewer_id: str = ""
    ) -> None: ...


class PaneHistory(Protocol):
    """The agent's tmux pane, asked directly (see :mod:`gateway.core.repair`)."""

    async def history(self, lines: int) -> bytes:
        """What ``tmux capture-pane -p -e -S -<lines>`` prints: history, then the screen.

        Raises :class:`~gateway.errors.PaneUnavailable` when tmux cannot be asked.
        """


#: The terminal size a source puts in its handshake, asked at every connect.
Size = Callable[[], tuple[int, int]]
#: Makes a hub's source: (agent id, target, sink, current size, backoff) -> source.
SourceFactory = Callable[[str, Target, SourceSink, Size, Backoff | None], Source]


def ttyd_source(
    agent_id: str,
    target: Target,
    sink: SourceSink,
    size: Size,
    backoff: Backoff | None,
) -> Source:
    return Upstream(target, sink, size, backoff=backoff)
