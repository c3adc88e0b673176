"""Where a hub's output comes from, and where it goes besides local viewers.

Two seams, each with today's in-process implementation as the default:

* a :class:`Source` feeds a hub: :class:`~gateway.core.upstream.Upstream`, a
  ttyd client, is the one there is. A replica that does not own an agent
  will feed its hub from a stream of the owner's output instead.
* an :class:`OutputBus` hears everything a hub relays, in order: output with
  its offset, resizes and status. :data:`NO_BUS` does nothing; a replicated
  gateway publishes it for the other replicas.
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

    def join_frames(self) -> list[bytes]:
        """Status and one output frame that repaints the screen at the current offset."""

    async def resize(self, columns: int, rows: int) -> None: ...


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


class OutputBus(Protocol):
    """Hears what a hub relays, in the order its viewers get it."""

    def output(self, agent_id: str, offset: int, message: bytes) -> None:
        """A ttyd output message; ``offset`` is the output offset after it."""

    def resized(self, agent_id: str, columns: int, rows: int) -> None: ...

    def status(self, agent_id: str, status: ttyd.Status) -> None: ...


class _NoBus:
    def output(self, agent_id: str, offset: int, message: bytes) -> None:
        pass

    def resized(self, agent_id: str, columns: int, rows: int) -> None:
        pass

    def status(self, agent_id: str, status: ttyd.Status) -> None:
        pass


#: The default bus: a single gateway has nobody else to tell.
NO_BUS: OutputBus = _NoBus()
