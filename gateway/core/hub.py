"""Per-agent hub: one source (ttyd), one screen, any number of viewers.

The hot path (DESIGN §2)::

    source message ──► Hub.upstream_output ──► Relay.output (coalesce) ──► viewers' sockets
                                          └──► Backlog ──► screen.feed
                                               (a task per hub, one budget per turn)

* Relay first, emulate second: viewers get a chunk before the emulator sees it.
* What each viewer gets and when is the :class:`~gateway.core.relay.Relay`'s
  decision, sans I/O; the hub is its asyncio driver: it gives it the time,
  runs the one timer for held output, writes the frame a delivery names
  straight to the sockets that keep up (encoded once as a WebSocket frame
  for all of them) and wakes the senders of the others.
* The read loop awaits only the emulator, and only when its backlog passes a
  high-water mark: that bounds memory when an agent outruns the emulator
  (tmux then skips output for its slow client, which the screen tolerates).
* Joining is a resync: the first batch of a viewer is the snapshot of the
  emulated screen at offset M plus the raw output bytes M..N still waiting
  for the emulator, taken synchronously at offset N; every chunk published
  after that follows. No gap, no duplicate, and no waiting for the emulator.

Nothing here knows about HTTP, Docker or auth: handlers drive a
:class:`~gateway.core.viewer.Viewer` through its batches and the hub's methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import PaneUnavailable, UpstreamUnavailable
from ..limits import DEFAULT_VIEWER_QUEUE_BYTES
from ..screen.base import TerminalScreen
from ..screen.reference import PyteScreen
from ..tasks import cancel
from . import ttyd
from .backlog import Backlog, ResizeMark
from .backoff import Backoff
from .budget import EmulationBudget
from .relay import Delivery, Relay
from .repair import ScrollWatch, same_text, split_capture
from .seams import PaneHistory, Source, SourceFactory, ttyd_source
from .state import AgentState, allowed
from .target import Target
from .upstream import UpstreamStatistics
from .viewer import RESYNC_HISTORY, Viewer

log = logging.getLogger(__name__)

# Emulation may lag this much before the source's read loop waits for it.
BACKLOG_HIGH = 1024 * 1024
BACKLOG_LOW = 256 * 1024

# After tmux scrolled a screenful at once, its history is compared with the
# screen's once the output has been quiet this long (REPAIR_ATTEMPTS times
# at most, if the agent keeps printing), and tmux asked once per interval.
REPAIR_QUIET = 0.3
REPAIR_ATTEMPTS = 5
REPAIR_INTERVAL = 5.0

# history_frames gives up after this many resizes in its way, and writes
# RESYNC_HISTORY lines at once instead (a few milliseconds of work).
HISTORY_ATTEMPTS = 3

# Who resized the agent is told to its other viewers once a resize has
# settled: a dragged window or a pinch sends one per step, and the others
# want one notice, not a flood. At most one per RESIZE_NOTICE_MAX_WAIT even
# for a resize that never stops.
RESIZE_QUIET = 0.5
RESIZE_NOTICE_MAX_WAIT = 2.0


@dataclass(slots=True)
class _ResizeBurst:
    """Resizes close together, told as one: the size before the first, the last asked."""

    before: tuple[int, int]
    started: float
    after: tuple[int, int]
    who: str
    viewer_id: str


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
    # ttyd message bytes handed to viewers' sockets, all viewers together.
    bytes_to_viewers: int
    upstream: UpstreamStatistics | None
    presence: dict[str, int]


class Hub:
    """One agent: its source, its screen, its viewers.

    ``target`` None means "no terminal to connect to right now" (a stopped
    container): the screen and its viewers stay, :meth:`set_target` connects
    later. ``on_change`` is called when the status or the viewers change;
    ``budget`` is shared by the hubs of a fleet (:meth:`Fleet.new_hub`).
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
        budget: EmulationBudget | None = None,
        on_change: Callable[[Hub], None] | None = None,
        source: SourceFactory = ttyd_source,
        clock: Callable[[], float] = time.monotonic,
        pane: PaneHistory | None = None,
    ) -> None:
        self.agent_id = agent_id
        # The relay's time; timers only wait out the difference, so a test's
        # frozen clock holds output for exactly one window.
        self._clock = clock
        self._size = ttyd.clamp_size(columns, rows)
        self._new_screen = screen
        self.screen: TerminalScreen = screen(*self._size)
        # tmux, asked for the history it did not draw (see gateway.core.repair).
        self._pane = pane
        self._scroll_watch = ScrollWatch(self._size[1])
        self._repair_task: asyncio.Task[None] | None = None
        self._repaired_at = -REPAIR_INTERVAL  # loop time tmux was last asked
        self._backoff = backoff
        self._source_factory = source
        self._on_change = on_change
        #: Inputs sent so far, by anyone (see gateway.awareness).
        self.inputs = 0
        self.emulation_budget = budget or EmulationBudget()
        self.upstream = self._new_source(target)
        self._relay: Relay[Viewer] = Relay(viewer_queue_bytes)
        self._offset = 0
        self._backlog = Backlog()
        self._backlog_ready = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        self._progress = asyncio.Event()
        initial = AgentState.CONNECTING if target else AgentState.STOPPED
        self._status = ttyd.Status(initial, *self._size)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._emulator: asyncio.Task[None] | None = None
        self._connection: asyncio.Task[None] | None = None
        # Set by aclose: a viewer that joins afterwards is closed at once.
        self._closed: int | None = None
        self._resize_burst: _ResizeBurst | None = None
        self._resize_timer: asyncio.TimerHandle | None = None
        # Pieces of output (and resizes) fed to the screen: a history written
        # at one count is the screen's while the count stays.
        self._fed = 0
        # Tasks that need the screen to stand still (history_frames): no
        # emulation while there is one.
        self._held = 0
        self._history_job: tuple[int, asyncio.Task[bytes | None]] | None = None

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Connect upstream and start emulating; returns at once."""
        self._emulator = asyncio.create_task(self._emulate(), name=f"emulate:{self.agent_id}")
        self._connect()

    async def aclose(self, code: int = 1001) -> None:
        """Stop the source and emulator, close every viewer with ``code``."""
        self._closed = code
        self._on_change = None
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._resize_timer is not None:
            self._resize_timer.cancel()
            self._resize_timer = None
        for viewer in list(self._relay):
            viewer.close(code)
        await self._disconnect()
        if self._history_job is not None:
            await cancel(self._history_job[1])
            self._history_job = None
        if self._repair_task is not None:
            await cancel(self._repair_task)
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
        self.upstream = self._new_source(target)
        if target is None:
            self._set_status(state, None, message)
        elif self._emulator is not None:
            self._connect()

    def _new_source(self, target: Target | None) -> Source | None:
        if target is None:
            return None
        return self._source_factory(self.agent_id, target, self, lambda: self._size, self._backoff)

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
        """A new viewer; its first batch is the current screen.

        A handler may join after a slow handshake; if the hub was removed
        meanwhile (a recreated container), the viewer is closed at once with
        the hub's code instead of watching a screen nobody feeds.
        """
        viewer = Viewer(self, self._relay, who)
        if self._closed is not None:
            viewer.close_code = self._closed
            return viewer
        self._relay.join(viewer)
        self._changed()
        return viewer

    def leave(self, viewer: Viewer) -> None:
        if self._relay.leave(viewer):
            self._changed()

    @property
    def presence(self) -> dict[str, int]:
        """Who watches, and through how many connections."""
        return dict(Counter(viewer.who for viewer in self._relay if viewer.who))

    @property
    def viewers(self) -> frozenset[Viewer]:
        return frozenset(self._relay)

    def join_frames(self, history: int = 0) -> list[bytes]:
        """Status plus one output frame repainting the screen at the current offset.

        The frame starts with the newest ``history`` lines of the screen's
        history, so that they fill the viewer's scrollback; they are written
        here and now, so keep them few (:meth:`history_frames` writes them all).
        """
        self._settle_resizes()
        return self._frames(self.screen.history(history) if history else b"")

    async def history_frames(self) -> list[bytes]:
        """:meth:`join_frames` with all the history the screen keeps, for a joining viewer.

        libghostty-vt takes tens of milliseconds to write 10,000 lines: they
        are written a piece at a time, other tasks running in between, while
        the screen is not fed (output waits in the backlog, which the frame
        then carries). Viewers joining while the screen stands still share
        one writing. A resize meanwhile (a viewer's, or ttyd's) starts over;
        a screen resized every time gets :data:`~gateway.core.viewer.RESYNC_HISTORY` lines.
        """
        for _ in range(HISTORY_ATTEMPTS):
            self._settle_resizes()
            fed = self._fed
            self._held += 1
            try:
                history = await asyncio.shield(self._history_job_for(fed))
                if history is not None and self._fed == fed and not self._backlog.resize_pending:
                    return self._frames(history)
            finally:
                self._release()
        return self.join_frames(RESYNC_HISTORY)

    def _history_job_for(self, fed: int) -> asyncio.Future[bytes | None]:
        job = self._history_job
        if job is None or job[0] != fed:
            task = asyncio.create_task(self._write_history(fed), name=f"history:{self.agent_id}")
            self._history_job = job = (fed, task)
        return job[1]

    async def _write_history(self, fed: int) -> bytes | None:
        """All the history, or None if the screen changed before it was written."""
        self._held += 1
        try:
            pieces: list[bytes] = []
            for piece in self.screen.history_pieces():
                if self._fed != fed:
                    return None
                pieces.append(piece)
                await asyncio.sleep(0)
            return b"".join(pieces) if self._fed == fed else None
        finally:
            self._release()

    def _release(self) -> None:
        """One holder of the screen is done; the emulator goes on when the last one is."""
        self._held -= 1
        if not self._held and self._backlog:
            self._backlog_ready.set()

    def _settle_resizes(self) -> None:
        # A snapshot must be taken at the size the tail bytes were written
        # for; resizes are rare, so emulate up to the last pending one now.
        while self._backlog.resize_pending:
            self._feed_one()

    def _frames(self, history: bytes) -> list[bytes]:
        # Output held for coalescing goes to the others first: the snapshot
        # below covers it, and this viewer takes frames from here on.
        self._flush()
        return [
            self._status.serialize(),
            b"0" + self.screen.snapshot(history) + self._backlog.tail(),
        ]

    # --- operator actions ------------------------------------------------------

    async def send_input(self, data: bytes) -> None:
        """Type into the agent's terminal; raises UpstreamUnavailable when down."""
        if self.upstream is None:
            raise UpstreamUnavailable(f"agent terminal is {self._status.state}")
        self.inputs += 1  # a prompt's answer is refused after input it did not see
        await self.upstream.send(ttyd.Input(data))

    async def resize(
        self,
        columns: int,
        rows: int,
        *,
        who: str = "",
        viewer: Viewer | None = None,
        viewer_id: str = "",
    ) -> None:
        """Give the agent's one terminal a new (clamped) size.

        ``who`` (a user's name) resized it from ``viewer``'s connection (or,
        forwarded by another replica, connection ``viewer_id``): the other
        viewers are told, once the resizes settle (see RESIZE_QUIET), with
        the size before so that they can put it back.
        """
        if viewer is not None:
            viewer_id = viewer.id
        message = self._take_size(columns, rows, who, viewer_id)
        if message is not None:
            await self._send_resize(message)

    def resize_soon(self, columns: int, rows: int, *, who: str = "") -> asyncio.Task[None] | None:
        """:meth:`resize`, the hub's size changed now and ttyd told from a task.

        For a joining viewer: its first screen is at the new size, and a ttyd
        that does not take the resize (frozen) does not keep the screen from it.
        """
        message = self._take_size(columns, rows, who, "")
        if message is None:
            return None
        return asyncio.create_task(self._send_resize(message), name=f"resize:{self.agent_id}")

    def _take_size(self, columns: int, rows: int, who: str, viewer_id: str) -> ttyd.Resize | None:
        """The hub's half of a resize; returns what is left to send, if anything."""
        size = ttyd.clamp_size(columns, rows)
        message = ttyd.Resize(*size, by=who, viewer=viewer_id)
        if self.upstream is not None and self.upstream.mirrors:
            # The replica holding the terminal resizes it, and its stream says
            # so, with who asked: every replica's viewers are told from there.
            return message
        if who:
            self._note_resize(size, who, viewer_id)
        if size == self._size:
            return None
        self.upstream_resized(*size)
        # When down, the next handshake carries the new size.
        return None if self.upstream is None else message

    async def _send_resize(self, message: ttyd.Resize) -> None:
        if self.upstream is not None:
            with contextlib.suppress(UpstreamUnavailable):
                await self.upstream.send(message)

    def _note_resize(self, size: tuple[int, int], who: str, viewer_id: str) -> None:
        now = asyncio.get_running_loop().time()
        burst = self._resize_burst
        if burst is None:
            burst = self._resize_burst = _ResizeBurst(self._size, now, size, who, viewer_id)
        burst.after, burst.who, burst.viewer_id = size, who, viewer_id
        if self._resize_timer is not None:
            self._resize_timer.cancel()
        delay = min(RESIZE_QUIET, burst.started + RESIZE_NOTICE_MAX_WAIT - now)
        self._resize_timer = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._announce_resize
        )

    def _announce_resize(self) -> None:
        self._resize_timer = None
        burst, self._resize_burst = self._resize_burst, None
        if burst is None or burst.after == burst.before:
            return
        (columns, rows), (was_columns, was_rows) = burst.after, burst.before
        message = (
            f"{burst.who} resized the agent to {columns}x{rows} (was {was_columns}x{was_rows})"
        )
        details = {
            "by": burst.who,
            "columns": columns,
            "rows": rows,
            "previous": {"columns": was_columns, "rows": was_rows},
        }
        for viewer in self._relay:
            if viewer.id != burst.viewer_id:
                viewer.notice("resized", message, details)

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

    @property
    def coalescing(self) -> tuple[float, int]:
        """How long and how much output may be held back now, for this many viewers."""
        return self._relay.coalescing()

    def statistics(self) -> HubStatistics:
        return HubStatistics(
            agent_id=self.agent_id,
            state=self._status.state,
            message=self._status.message,
            columns=self._size[0],
            rows=self._size[1],
            title=self.title,
            viewers=len(self._relay),
            offset=self._offset,
            emulated_offset=self.screen.offset,
            resyncs=self._relay.resyncs,
            bytes_to_viewers=self._relay.bytes_to_viewers,
            upstream=None if self.upstream is None else self.upstream.statistics(),
            presence=self.presence,
        )

    async def wait_emulated(self, offset: int | None = None) -> None:
        """Wait until the screen has seen all output up to ``offset`` (default: now)."""
        target = self._offset if offset is None else offset
        while self.screen.offset < target or self._backlog.resize_pending:
            await self._progress.wait()

    # --- UpstreamSink ----------------------------------------------------------

    async def upstream_output(self, message: bytes) -> None:
        self._offset += len(message) - 1
        now = self._clock()
        delivery = self._relay.output(message, now)
        if delivery is not None:
            self._deliver(delivery)
        elif self._flush_timer is None and self._relay.deadline is not None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                self._relay.deadline - now, self._flush
            )
        self._backlog.output(message)
        self._backlog_ready.set()
        if self._pane is not None and self._scroll_watch.feed(message, 1):
            self._repair_soon()
        if self._backlog.bytes > BACKLOG_HIGH:
            self._caught_up.clear()
            await self._caught_up.wait()

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        if state is AgentState.STOPPED:
            return  # only ever on the way out of set_target/aclose, which say why
        self._set_status(state, retry_in, message)

    def upstream_resized(
        self, columns: int, rows: int, *, who: str = "", viewer_id: str = ""
    ) -> None:
        size = ttyd.clamp_size(columns, rows)
        if who:
            # The holder's stream names who resized (replica mode).
            self._note_resize(size, who, viewer_id)
        if size == self._size:
            return
        self._size = size
        self._scroll_watch.resize(size[1])
        self._backlog.resize(*size)
        self._backlog_ready.set()
        self._set_status(self._status.state, self._status.retry_in, self._status.message)

    def _flush(self) -> None:
        """Offer the output held back to every viewer now."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self._deliver(self._relay.flush(self._clock()))

    def _deliver(self, delivery: Delivery[Viewer] | None) -> None:
        if delivery is None:
            return
        if self._flush_timer is not None and self._relay.deadline is None:
            self._flush_timer.cancel()
            self._flush_timer = None
        frame = delivery.frame
        if delivery.direct:
            # The fast path: no task wake-up and no copy per viewer.
            wire = ttyd.websocket_frame(frame)
            written = 0
            for viewer in delivery.direct:
                if viewer.write(wire):
                    written += 1
                elif self._relay.refused(viewer, frame):
                    viewer.wake()
            self._relay.written(written, frame)
        for viewer in delivery.woken:
            viewer.wake()

    def _set_status(self, state: AgentState, retry_in: float | None, message: str) -> None:
        self._flush()  # output before the status reaches viewers before it
        previous = self._status
        if not allowed(previous.state, state):
            log.error("%s: %s -> %s is not a transition", self.agent_id, previous.state, state)
        self._status = ttyd.Status(state, *self._size, retry_in=retry_in, message=message)
        for viewer in self._relay.broadcast(self._status.serialize()):
            viewer.wake()
        if (previous.state, previous.message) != (state, message):
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    # --- history repair (gateway.core.repair) --------------------------------

    def _repair_soon(self) -> None:
        if self._repair_task is None:
            self._repair_task = asyncio.create_task(
                self._repair(), name=f"history-repair:{self.agent_id}"
            )

    async def _repair(self) -> None:
        """Once the output settles, take tmux's history if it is not the screen's.

        At most once per REPAIR_INTERVAL: an agent that floods and pauses on
        purpose must not have the gateway rebuild its screen, and send every
        viewer its whole history, several times a second.
        """
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self._repaired_at + REPAIR_INTERVAL - loop.time())
            for _ in range(REPAIR_ATTEMPTS):
                offset = -1
                while offset != self._offset:
                    offset = self._offset
                    await asyncio.sleep(REPAIR_QUIET)
                self._repaired_at = loop.time()
                if await self._take_pane_history():
                    return
            log.info("%s: tmux's history kept changing; not taken", self.agent_id)
        except PaneUnavailable as exc:
            log.debug("%s: tmux's history could not be read: %s", self.agent_id, exc)
        finally:
            self._repair_task = None

    async def _take_pane_history(self) -> bool:
        """False if the agent moved on meanwhile (try at the next quiet)."""
        assert self._pane is not None
        await self.wait_emulated()
        offset, fed, screen = self._offset, self._fed, self.screen
        limit = screen.scrollback_limit
        if not limit:
            return True
        captured = await self._pane.history(limit)
        columns, rows = self._size
        theirs, their_screen = split_capture(captured, rows, limit, columns)
        # The capture is of this very moment of the agent only if tmux's
        # screen is ours (no output in flight either way).
        if (self._offset, self._fed) != (offset, fed) or their_screen != screen.text():
            return False
        self._held += 1
        try:
            ours = await asyncio.shield(self._history_job_for(fed))
            if ours is None or self._fed != fed:
                return False
            if same_text(ours, theirs):
                return True
            fresh = self._new_screen(columns, rows)
            repaint = screen.snapshot(theirs)
            for start in range(0, len(repaint), fresh.FEED_PIECE):
                fresh.feed(repaint[start : start + fresh.FEED_PIECE])
                await asyncio.sleep(0)
                if self._fed != fed:
                    return False
            fresh.offset = screen.offset
            self.screen = fresh
            self._fed += 1
            self._history_job = None
        finally:
            self._release()
        log.info("%s: history taken from tmux (%d lines)", self.agent_id, fresh.scrollback)
        # Every viewer's scrollback is the old one: repaint them, whole.
        for viewer in self._relay.repaint_all():
            viewer.owe_full_repaint()
        return True

    # --- emulation -----------------------------------------------------------

    def _feed_one(self) -> None:
        self._fed += 1
        self._history_job = None  # written for a screen that is no more
        piece = self._backlog.take(self.screen.FEED_PIECE)
        if isinstance(piece, ResizeMark):
            self.screen.resize(piece.columns, piece.rows)
        else:
            self.screen.feed(piece)

    async def _emulate(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._backlog_ready.wait()
            if self._held:
                # A viewer's history is being written; _release wakes us.
                self._backlog_ready.clear()
                continue
            deadline = self.emulation_budget.deadline()
            if deadline is not None:
                started = loop.time()
                while self._backlog and loop.time() < deadline:
                    self._feed_one()
                self.emulation_budget.spend(loop.time() - started)
            if not self._backlog:
                self._backlog_ready.clear()
            if self._backlog.bytes <= BACKLOG_LOW:
                self._caught_up.set()
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
            # Let the relay and the viewers run before the next slice.
            await asyncio.sleep(0)
