"""Per-agent hub: one upstream ttyd connection, any number of viewers.

The hot path (DESIGN §2)::

    upstream frame ──► Hub.upstream_output ──► (coalesce) ──► every Viewer.offer (sync, bounded)
                                          └──► emulation backlog ──► screen.feed
                                               (a task per hub, one budget per turn)

* Relay first, emulate second: viewers get a chunk before the emulator sees it.
* Under load, output is coalesced: what arrives within a few milliseconds of
  the last frame sent (more with more viewers: :attr:`Hub.coalescing`) waits
  for the window to end and goes out as one frame, encoded once as a
  WebSocket frame for every viewer. After a quiet spell output goes out at
  once, so a keystroke's echo is never delayed.
* The upstream read loop never awaits a viewer. :meth:`Viewer.offer` writes
  the encoded frame straight to the viewer's socket when nothing waits for
  it and the socket keeps up (:meth:`Viewer.attach`), and otherwise appends
  to a bounded queue that the viewer's sender drains; a viewer whose queue
  would overflow drops its backlog and is *resynced*: its next batch is a
  fresh snapshot. So a slow or paused viewer costs at most its bound in
  memory and never slows the agent.
* The read loop awaits only the emulator, and only when its backlog passes a
  high-water mark: that bounds memory when an agent outruns the emulator
  (tmux then skips output for its slow client, which the screen tolerates).
* Joining is a resync: the first batch of a viewer is the snapshot of the
  emulated screen at offset M plus the raw output bytes M..N still waiting
  for the emulator, taken synchronously at offset N; every chunk published
  after that is queued. No gap, no duplicate, and no waiting for the emulator.

Nothing here knows about HTTP, Docker or auth: handlers drive a
:class:`Viewer` through :meth:`Viewer.batches` and the hub's methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from ..errors import AgentNotFound, UpstreamUnavailable
from ..limits import DEFAULT_VIEWER_QUEUE_BYTES
from ..screen.base import TerminalScreen
from ..screen.reference import PyteScreen
from ..tasks import cancel
from . import ttyd
from .backoff import Backoff
from .state import AgentState, allowed
from .target import Target
from .upstream import Upstream, UpstreamStatistics

log = logging.getLogger(__name__)

# Notices waiting for a viewer; older ones are dropped past this.
MAX_PENDING_NOTICES = 16
# Emulation may lag this much before the upstream read loop waits for it.
BACKLOG_HIGH = 1024 * 1024
BACKLOG_LOW = 256 * 1024
# Output arriving within this long of the last frame sent to viewers waits
# for the rest of the window and goes out as one frame: per-message cost
# dominates under load. Output after a quiet spell (a keystroke's echo) goes
# out at once.
COALESCE_SECONDS = 0.004
# ... or until this much is held: frames stay far below any viewer's bound.
COALESCE_BYTES = 16 * 1024
# Sending a frame costs about the same per viewer whatever its size, so the
# window grows with the audience: one step per this many viewers, up to
# MAX_COALESCE_STEPS times (32 ms, a frame at 30 Hz) and 64 KiB.
VIEWERS_PER_COALESCE_STEP = 8
MAX_COALESCE_STEPS = 8
MAX_COALESCE_BYTES = 64 * 1024
# Time all the hubs of a fleet together may spend emulating per turn of the
# event loop; each feeds slices of its backend's FEED_PIECE (about a
# millisecond of work each).
EMULATION_BUDGET = 0.005


class EmulationBudget:
    """One emulation budget per turn of the event loop, shared by many hubs.

    A budget per hub would let fifty busy agents hold the loop for fifty
    budgets in one turn. The turn is told by a ``call_soon`` callback: it runs
    at the start of the next turn, after every hub that ran in this one.
    """

    def __init__(self, seconds: float = EMULATION_BUDGET) -> None:
        self.seconds = seconds
        self._spent = 0.0
        self._armed = False

    def deadline(self) -> float | None:
        """Until when the caller may emulate now, or None: wait for the next turn."""
        loop = asyncio.get_running_loop()
        if not self._armed:
            self._armed = True
            loop.call_soon(self._next_turn)
        remaining = self.seconds - self._spent
        return loop.time() + remaining if remaining > 0 else None

    def spend(self, seconds: float) -> None:
        self._spent += seconds

    def _next_turn(self) -> None:
        self._spent = 0.0
        self._armed = False


@dataclass(frozen=True, slots=True)
class _ResizeMark:
    """A resize, kept in order with the output bytes the emulator has to feed."""

    columns: int
    rows: int


def _coalesce(frames: Iterator[bytes]) -> list[bytes]:
    """Merge runs of consecutive output frames: per-message cost dominates."""
    batch: list[bytes] = []
    run: list[bytes] = []
    for frame in frames:
        if frame[0] == ttyd.ServerCommand.OUTPUT:
            run.append(frame)
            continue
        if run:
            batch.append(_join_output(run))
            run = []
        batch.append(frame)
    if run:
        batch.append(_join_output(run))
    return batch


def _join_output(run: list[bytes]) -> bytes:
    if len(run) == 1:
        return run[0]
    return b"0" + b"".join(memoryview(frame)[1:] for frame in run)


class Viewer:
    """The outbound side of one browser connection to an agent.

    Created by :meth:`Hub.join`; drive it with ``async for batch in
    viewer.batches()`` and send each frame of a batch. It ends when the
    viewer is closed (:attr:`close_code` says why).
    """

    def __init__(self, hub: Hub, max_queue_bytes: int, who: str = "") -> None:
        self._hub = hub
        # Who is watching (a user name), for presence.
        self.who = who
        self._max_queue_bytes = max_queue_bytes
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._notices: deque[bytes] = deque(maxlen=MAX_PENDING_NOTICES)
        self._wakeup = asyncio.Event()
        self._wakeup.set()
        # A new viewer starts "behind": its first batch is the snapshot.
        self._resync = True
        self.paused = False
        self.resyncs = 0
        # Writes refused because this viewer is read-only (counted by the handler).
        self.refused = 0
        self.close_code: int | None = None
        # Writes a whole WebSocket frame to the socket now, or says it cannot.
        self._write: Callable[[bytes], bool] | None = None
        # A batch is out with the sender: frames offered now must queue behind it.
        self._sending = False

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    def attach(self, write: Callable[[bytes], bool]) -> None:
        """Let :meth:`offer` write straight to the socket while nothing waits.

        ``write`` takes a whole WebSocket frame and returns False when the
        socket cannot take it now (closing, or its buffer is full): the frame
        then queues as usual and the sender takes over, in order.
        """
        self._write = write

    def offer(self, frame: bytes, wire: bytes | None = None) -> None:
        """Send or queue one frame (``wire``: it as a WebSocket frame); never blocks.

        The queue never grows past the bound.
        """
        if self.close_code is not None or self._resync:
            # Closed, or a snapshot taken later will already contain this frame.
            return
        if (
            wire is not None
            and self._write is not None
            and not self._queue
            and not self._sending
            and not self._notices
            and not self.paused
            and self._write(wire)
        ):
            # The fast path: no task wake-up, no copy, the same bytes for all.
            self._hub.bytes_to_viewers += len(frame)
            return
        if self._queued_bytes + len(frame) > self._max_queue_bytes:
            self._queue.clear()
            self._queued_bytes = 0
            self._resync = True
            self.resyncs += 1
        else:
            self._queue.append(frame)
            self._queued_bytes += len(frame)
        self._wakeup.set()

    def pause(self) -> None:
        """ttyd's ``'2'``: stop sending to this viewer only (its queue stays bounded)."""
        self.paused = True

    def resume(self) -> None:
        """ttyd's ``'3'``."""
        self.paused = False
        self._wakeup.set()

    def notice(self, code: str, message: str) -> None:
        """Tell this viewer something (input refused, ...).

        Notices travel apart from the output queue, so a resync (which drops
        that queue) never swallows one; only the latest few are kept.
        """
        if self.close_code is None:
            self._notices.append(ttyd.Notice(code, message).serialize())
            self._wakeup.set()

    def close(self, code: int) -> None:
        """End :meth:`batches`; the handler closes the socket with ``code``."""
        if self.close_code is None:
            self.close_code = code
            self._queue.clear()
            self._queued_bytes = 0
            self._wakeup.set()
            self._hub.leave(self)

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """Yield lists of encoded frames to send, in order, until closed."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self.close_code is not None:
                return
            if self.paused:
                continue
            batch: list[bytes] = []
            if self._resync:
                # Still resyncing while the hub flushes output it held back:
                # the snapshot covers it, so this viewer must not get it again.
                batch = self._hub.join_frames()
                self._resync = False
                self._queue.clear()
                self._queued_bytes = 0
            elif self._queue:
                frames = self._queue
                self._queue = deque()
                self._queued_bytes = 0
                batch = _coalesce(iter(frames))
            if self._notices:
                batch.extend(self._notices)
                self._notices.clear()
            if batch:
                self._hub.bytes_to_viewers += sum(map(len, batch))
                self._sending = True
                try:
                    yield batch
                finally:
                    self._sending = False


@dataclass(frozen=True, slots=True)
class HubStatistics:
    """A point-in-time view of one agent's hub."""

    agent_id: str
    state: AgentState
    message: str
    columns: int
    rows: int
    title: str
    viewers: int
    offset: int
    emulated_offset: int
    resyncs: int
    # Bytes handed to viewers' sockets, all viewers together (frames included).
    bytes_to_viewers: int
    upstream: UpstreamStatistics | None
    presence: dict[str, int]


class Hub:
    """One agent: its upstream, its screen, its viewers.

    ``target`` None means "no terminal to connect to right now" (a stopped
    container): the screen and its viewers stay, :meth:`set_target` connects
    later. ``on_change`` is called when the status or the viewers change.
    """

    def __init__(
        self,
        agent_id: str,
        target: Target | None,
        *,
        columns: int = 120,
        rows: int = 40,
        viewer_queue_bytes: int = DEFAULT_VIEWER_QUEUE_BYTES,
        backoff: Backoff | None = None,
        screen: Callable[[int, int], TerminalScreen] = PyteScreen,
    ) -> None:
        self.agent_id = agent_id
        self._size = ttyd.clamp_size(columns, rows)
        self.screen: TerminalScreen = screen(*self._size)
        self._backoff = backoff
        self.upstream = self._new_upstream(target)
        self.on_change: Callable[[Hub], None] | None = None
        self._viewer_queue_bytes = viewer_queue_bytes
        self._viewers: set[Viewer] = set()
        self._offset = 0
        self._backlog: deque[bytes | _ResizeMark] = deque()
        self._backlog_bytes = 0
        self._backlog_ready = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        self._progress = asyncio.Event()
        initial = AgentState.CONNECTING if target else AgentState.STOPPED
        self._status = ttyd.Status(initial, *self._size)
        self._resyncs_of_departed = 0
        self.bytes_to_viewers = 0
        # Output not yet offered to viewers (coalescing), and when it last was.
        self._outgoing: list[bytes] = []
        self._outgoing_bytes = 0
        self._last_flush = -COALESCE_SECONDS
        self._flush_timer: asyncio.TimerHandle | None = None
        self._emulator: asyncio.Task[None] | None = None
        #: Shared with the other hubs of a fleet (Fleet.add).
        self.emulation_budget = EmulationBudget()
        self._connection: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect upstream and start emulating; returns at once."""
        self._emulator = asyncio.create_task(self._emulate(), name=f"emulate:{self.agent_id}")
        self._connect()

    async def aclose(self, code: int = 1001) -> None:
        """Stop the upstream and emulator, close every viewer with ``code``."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        for viewer in list(self._viewers):
            viewer.close(code)
        await self._disconnect()
        if self._emulator is not None:
            await cancel(self._emulator)
            self._emulator = None

    async def set_target(
        self,
        target: Target | None,
        *,
        state: AgentState = AgentState.STOPPED,
        message: str = "",
    ) -> None:
        """Connect to ``target`` instead (reconnecting at once), or to nothing.

        With no target the status becomes ``state`` (stopped, conflict,
        unreachable, ...) and ``message``; the screen stays as it was last
        seen and viewers stay connected, read-only in effect.
        """
        await self._disconnect()
        self.upstream = self._new_upstream(target)
        if target is None:
            self._set_status(state, None, message)
        elif self._emulator is not None:
            self._connect()

    def _new_upstream(self, target: Target | None) -> Upstream | None:
        if target is None:
            return None
        return Upstream(target, self, lambda: self._size, backoff=self._backoff)

    def _connect(self) -> None:
        if self.upstream is not None:
            self._set_status(AgentState.CONNECTING, None, "")
            self._connection = asyncio.create_task(
                self.upstream.run(), name=f"upstream:{self.agent_id}"
            )

    async def _disconnect(self) -> None:
        if self._connection is not None:
            await cancel(self._connection)
            self._connection = None

    # --- viewers -------------------------------------------------------------

    def join(self, who: str = "") -> Viewer:
        """A new viewer; its first batch is the current screen."""
        viewer = Viewer(self, self._viewer_queue_bytes, who)
        self._viewers.add(viewer)
        self._changed()
        return viewer

    def leave(self, viewer: Viewer) -> None:
        if viewer in self._viewers:
            self._viewers.discard(viewer)
            self._resyncs_of_departed += viewer.resyncs
            self._changed()

    @property
    def presence(self) -> dict[str, int]:
        """Who watches, and through how many connections."""
        return dict(Counter(viewer.who for viewer in self._viewers if viewer.who))

    @property
    def viewers(self) -> frozenset[Viewer]:
        return frozenset(self._viewers)

    def join_frames(self) -> list[bytes]:
        """Status plus one output frame repainting the screen at the current offset."""
        # The snapshot must be taken at the size the tail bytes were written
        # for; resizes are rare, so emulate up to the last pending one now.
        while self._resize_pending():
            self._feed_one()
        # Output held for coalescing goes to the others first: the snapshot
        # below covers it, and this viewer takes frames from here on.
        self._flush()
        tail = b"".join(item for item in self._backlog if isinstance(item, bytes))
        return [self._status.serialize(), b"0" + self.screen.snapshot() + tail]

    # --- operator actions ------------------------------------------------------

    async def send_input(self, data: bytes) -> None:
        """Type into the agent's terminal; raises UpstreamUnavailable when down."""
        if self.upstream is None:
            raise UpstreamUnavailable(f"agent terminal is {self._status.state}")
        await self.upstream.send(ttyd.Input(data))

    async def resize(self, columns: int, rows: int) -> None:
        """Give the agent's one terminal a new (clamped) size."""
        size = ttyd.clamp_size(columns, rows)
        if size == self._size:
            return
        self._size = size
        self._backlog.append(_ResizeMark(*size))
        self._backlog_ready.set()
        self._set_status(self._status.state, self._status.retry_in, self._status.message)
        # When down, the next handshake carries the new size.
        if self.upstream is not None:
            with contextlib.suppress(UpstreamUnavailable):
                await self.upstream.send(ttyd.Resize(*size))

    # --- introspection -------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def offset(self) -> int:
        """Bytes of output published so far."""
        return self._offset

    @property
    def title(self) -> str:
        return self.screen.title or self.agent_id

    @property
    def status(self) -> ttyd.Status:
        """What viewers were last told about the connection."""
        return self._status

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            agent_id=self.agent_id,
            state=self._status.state,
            message=self._status.message,
            columns=self._size[0],
            rows=self._size[1],
            title=self.title,
            viewers=len(self._viewers),
            offset=self._offset,
            emulated_offset=self.screen.offset,
            resyncs=self._resyncs_of_departed + sum(v.resyncs for v in self._viewers),
            bytes_to_viewers=self.bytes_to_viewers,
            upstream=None if self.upstream is None else self.upstream.statistics(),
            presence=self.presence,
        )

    async def wait_emulated(self, offset: int | None = None) -> None:
        """Wait until the screen has seen all output up to ``offset`` (default: now)."""
        target = self._offset if offset is None else offset
        while self.screen.offset < target or self._resize_pending():
            await self._progress.wait()

    def _resize_pending(self) -> bool:
        return any(isinstance(item, _ResizeMark) for item in self._backlog)

    # --- UpstreamSink ----------------------------------------------------------

    async def upstream_output(self, data: bytes) -> None:
        self._offset += len(data)
        self._outgoing.append(data)
        self._outgoing_bytes += len(data)
        window, limit = self.coalescing
        if self._outgoing_bytes >= limit:
            self._flush()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            due = self._last_flush + window
            if loop.time() >= due:
                self._flush()
            else:
                self._flush_timer = loop.call_at(due, self._flush)
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        self._backlog_ready.set()
        if self._backlog_bytes > BACKLOG_HIGH:
            self._caught_up.clear()
            await self._caught_up.wait()

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        if state is AgentState.STOPPED:
            return  # only ever on the way out of set_target/aclose, which say why
        self._set_status(state, retry_in, message)

    @property
    def coalescing(self) -> tuple[float, int]:
        """How long and how much output may be held back now, for this many viewers."""
        steps = min(MAX_COALESCE_STEPS, 1 + len(self._viewers) // VIEWERS_PER_COALESCE_STEP)
        return COALESCE_SECONDS * steps, min(MAX_COALESCE_BYTES, COALESCE_BYTES * steps)

    def _flush(self) -> None:
        """Offer the output held back to every viewer: one frame, shared by all."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._last_flush = asyncio.get_running_loop().time()
        if not self._outgoing:
            return
        frame = b"".join([b"0", *self._outgoing])
        self._outgoing.clear()
        self._outgoing_bytes = 0
        wire = ttyd.websocket_frame(frame) if self._viewers else None
        for viewer in self._viewers:
            viewer.offer(frame, wire)

    def _set_status(self, state: AgentState, retry_in: float | None, message: str) -> None:
        self._flush()  # output before the status reaches viewers before it
        previous = self._status
        if not allowed(previous.state, state):
            log.error("%s: %s -> %s is not a transition", self.agent_id, previous.state, state)
        self._status = ttyd.Status(state, *self._size, retry_in=retry_in, message=message)
        frame = self._status.serialize()
        for viewer in self._viewers:
            viewer.offer(frame)
        if (previous.state, previous.message) != (state, message):
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    # --- emulation -----------------------------------------------------------

    def _feed_one(self) -> None:
        item = self._backlog[0]
        if isinstance(item, _ResizeMark):
            self._backlog.popleft()
            self.screen.resize(item.columns, item.rows)
            return
        size = self.screen.FEED_PIECE
        if len(item) > size:
            piece, self._backlog[0] = item[:size], item[size:]
        else:
            piece = item
            self._backlog.popleft()
        self._backlog_bytes -= len(piece)
        self.screen.feed(piece)

    async def _emulate(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._backlog_ready.wait()
            deadline = self.emulation_budget.deadline()
            if deadline is not None:
                started = loop.time()
                while self._backlog and loop.time() < deadline:
                    self._feed_one()
                self.emulation_budget.spend(loop.time() - started)
            if not self._backlog:
                self._backlog_ready.clear()
            if self._backlog_bytes <= BACKLOG_LOW:
                self._caught_up.set()
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
            # Let the relay and the viewers run before the next slice.
            await asyncio.sleep(0)


class FleetChange(enum.StrEnum):
    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


FleetListener = Callable[[FleetChange, Hub], None]


class Fleet:
    """Every agent hub of this gateway, by id.

    Hubs come and go at run time (Docker discovery); listeners hear of every
    addition, removal and change of status or viewers, synchronously, so an
    event stream sees them in the order they happened.
    """

    def __init__(self) -> None:
        self._hubs: dict[str, Hub] = {}
        self._running = False
        self.emulation_budget = EmulationBudget()
        self.listeners: list[FleetListener] = []

    async def add(self, hub: Hub) -> None:
        """Add a hub; it is started if the fleet is running."""
        if hub.agent_id in self._hubs:
            raise ValueError(f"duplicate agent id {hub.agent_id!r}")
        self._hubs[hub.agent_id] = hub
        hub.emulation_budget = self.emulation_budget
        hub.on_change = lambda changed: self._notify(FleetChange.CHANGED, changed)
        if self._running:
            await hub.start()
        self._notify(FleetChange.ADDED, hub)

    async def remove(self, agent_id: str, code: int = 1001) -> None:
        """Stop a hub and close its viewers with ``code``."""
        hub = self._hubs.pop(agent_id, None)
        if hub is None:
            return
        hub.on_change = None
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

    def _notify(self, change: FleetChange, hub: Hub) -> None:
        for listener in self.listeners:
            listener(change, hub)
