"""The fan-out policy of one agent, sans I/O: coalescing, viewer queues, resyncs.

:class:`Relay` decides what each viewer gets and when; it owns no socket,
no timer and no clock. The hub (:mod:`gateway.core.hub`) drives it: it hands
in output with the time it arrived, asks :attr:`Relay.deadline` when held
output must go, writes the frames a :class:`Delivery` names straight to the
sockets that keep up, and runs each viewer's sender when the relay says so.

* Under load, output is coalesced: what arrives within a window of the last
  frame sent waits for the window to end and goes out as one frame, the same
  bytes for every viewer. The window grows with the audience
  (:meth:`Relay.coalescing`): sending costs per frame and viewer. After a
  quiet spell output goes out at once, so a keystroke's echo is never delayed.
* Each viewer is in one :class:`ViewerState`. Only a ``DIRECT`` viewer is
  written to straight away; one whose socket could not take a frame, or
  whose sender holds a batch, is ``QUEUED`` and its queue keeps the order; a
  queue that would pass its bound is dropped and the viewer owes a
  ``RESYNC``: its next batch is a fresh snapshot, which contains everything
  it missed. So a slow or paused viewer costs at most its bound in memory.
* Frames are ttyd messages kept whole (command byte included): one lone
  output message is relayed as it came, with no copy; runs of them are
  joined by :func:`join_output`, the one place that merges output.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from . import ttyd

# Output arriving within this long of the last frame sent to viewers waits
# for the rest of the window and goes out as one frame: per-message cost
# dominates under load.
COALESCE_SECONDS = 0.004
# ... or until this much is held: frames stay far below any viewer's bound.
COALESCE_BYTES = 16 * 1024
# Sending a frame costs about the same per viewer whatever its size, so the
# window grows with the audience: one step per this many viewers, up to
# MAX_COALESCE_STEPS times (32 ms, a frame at 30 Hz) and 64 KiB.
VIEWERS_PER_COALESCE_STEP = 8
MAX_COALESCE_STEPS = 8
MAX_COALESCE_BYTES = 64 * 1024
# Notices waiting for a viewer; older ones are dropped past this.
MAX_PENDING_NOTICES = 16

_OUTPUT = ttyd.ServerCommand.OUTPUT

K = TypeVar("K", bound=Hashable)


def join_output(messages: list[bytes]) -> bytes:
    """One ttyd output message carrying a run of them, in order.

    A lone message is returned as it is: the common case costs no copy.
    """
    if len(messages) == 1:
        return messages[0]
    return b"0" + b"".join(memoryview(message)[1:] for message in messages)


def coalesce(frames: Iterable[bytes]) -> list[bytes]:
    """Frames in order, with each run of consecutive output messages joined."""
    batch: list[bytes] = []
    run: list[bytes] = []
    for frame in frames:
        if frame[0] == _OUTPUT:
            run.append(frame)
            continue
        if run:
            batch.append(join_output(run))
            run = []
        batch.append(frame)
    if run:
        batch.append(join_output(run))
    return batch


class ViewerState(enum.Enum):
    """Where one viewer stands; the relay's single answer to "may I write now"."""

    #: Owes a snapshot: its next batch repaints it, so output is not kept for it.
    RESYNC = "resync"
    #: Nothing waits for it: frames go straight to its socket.
    DIRECT = "direct"
    #: Frames or notices wait in its queue, or its sender holds a batch.
    QUEUED = "queued"
    #: ttyd's ``'2'``: nothing is sent until ``'3'``; its queue stays bounded.
    PAUSED = "paused"
    #: Gone; its sender ends.
    CLOSED = "closed"


@dataclass(slots=True)
class _Seat:
    state: ViewerState = ViewerState.RESYNC
    queue: deque[bytes] = field(default_factory=deque)
    queued_bytes: int = 0
    notices: deque[bytes] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_NOTICES))
    # While PAUSED: whether it owes a snapshot when resumed.
    behind: bool = False
    # A batch is out with the sender (QUEUED until it says it is sent).
    sending: bool = False
    resyncs: int = 0


@dataclass(frozen=True, slots=True)
class Delivery(Generic[K]):
    """One frame for every viewer: ``direct`` ones are written to at once.

    The others already have it queued (or will be repainted); ``woken``
    viewers' senders must run. A direct write the socket refuses goes back
    through :meth:`Relay.refused`.
    """

    frame: bytes
    direct: list[K]
    woken: list[K]


class Relay(Generic[K]):
    """Viewers of one agent, keyed by whatever the driver uses for them."""

    def __init__(self, max_queue_bytes: int) -> None:
        self._max_queue_bytes = max_queue_bytes
        self._seats: dict[K, _Seat] = {}
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._last_flush = -COALESCE_SECONDS * MAX_COALESCE_STEPS
        self._resyncs_of_departed = 0
        self._window, self._limit = self.coalescing()
        #: When held output must go (the driver's timer), or None.
        self.deadline: float | None = None
        #: ttyd message bytes handed to viewers' sockets, all viewers together.
        self.bytes_to_viewers = 0

    # --- viewers -----------------------------------------------------------------

    def join(self, key: K) -> None:
        """A new viewer; it starts owing a snapshot."""
        self._seats[key] = _Seat()
        self._window, self._limit = self.coalescing()

    def leave(self, key: K) -> bool:
        """Forget a viewer; False if it was not here."""
        seat = self._seats.pop(key, None)
        if seat is None:
            return False
        seat.state = ViewerState.CLOSED
        self._resyncs_of_departed += seat.resyncs
        self._window, self._limit = self.coalescing()
        return True

    def __len__(self) -> int:
        return len(self._seats)

    def __iter__(self) -> Iterator[K]:
        return iter(self._seats)

    def state(self, key: K) -> ViewerState:
        seat = self._seats.get(key)
        return ViewerState.CLOSED if seat is None else seat.state

    def queued_bytes(self, key: K) -> int:
        seat = self._seats.get(key)
        return 0 if seat is None else seat.queued_bytes

    def resyncs_of(self, key: K) -> int:
        seat = self._seats.get(key)
        return 0 if seat is None else seat.resyncs

    @property
    def resyncs(self) -> int:
        """Resyncs of every viewer this relay has had."""
        return self._resyncs_of_departed + sum(seat.resyncs for seat in self._seats.values())

    # --- output ------------------------------------------------------------------

    def coalescing(self) -> tuple[float, int]:
        """How long and how much output may be held back now, for this many viewers."""
        steps = min(MAX_COALESCE_STEPS, 1 + len(self._seats) // VIEWERS_PER_COALESCE_STEP)
        return COALESCE_SECONDS * steps, min(MAX_COALESCE_BYTES, COALESCE_BYTES * steps)

    def output(self, message: bytes, now: float) -> Delivery[K] | None:
        """A ttyd output message arrived at ``now``: what goes out at once, if anything."""
        self._held.append(message)
        self._held_bytes += len(message) - 1
        if self._held_bytes >= self._limit:
            return self.flush(now)
        if self.deadline is None:
            due = self._last_flush + self._window
            if now >= due:
                return self.flush(now)
            self.deadline = due
        return None

    def flush(self, now: float) -> Delivery[K] | None:
        """Offer the output held back to every viewer: one frame, shared by all.

        Called at :attr:`deadline`, and before anything that must come after
        the output (a status, a snapshot).
        """
        self.deadline = None
        self._last_flush = now
        if not self._held:
            return None
        frame = join_output(self._held)
        self._held = []
        self._held_bytes = 0
        direct: list[K] = []
        woken: list[K] = []
        for key, seat in self._seats.items():
            state = seat.state
            if state is ViewerState.DIRECT:
                direct.append(key)
            elif state is not ViewerState.RESYNC and self._enqueue(seat, frame):
                woken.append(key)
        return Delivery(frame, direct, woken)

    def broadcast(self, frame: bytes) -> list[K]:
        """Queue a non-output frame (a status) for every viewer; returns whom to wake."""
        return [
            key
            for key, seat in self._seats.items()
            if seat.state is not ViewerState.RESYNC and self._enqueue(seat, frame)
        ]

    def refused(self, key: K, frame: bytes) -> bool:
        """A direct write the socket could not take: queue it instead (wake if True)."""
        seat = self._seats.get(key)
        return seat is not None and self._enqueue(seat, frame)

    def written(self, count: int, frame: bytes) -> None:
        """``count`` viewers' sockets took ``frame`` directly."""
        self.bytes_to_viewers += count * len(frame)

    def notice(self, key: K, frame: bytes) -> bool:
        """A message for one viewer, kept apart so a resync never swallows it."""
        seat = self._seats.get(key)
        if seat is None:
            return False
        seat.notices.append(frame)
        if seat.state is ViewerState.DIRECT:
            seat.state = ViewerState.QUEUED
        return True

    def _enqueue(self, seat: _Seat, frame: bytes) -> bool:
        """Queue ``frame`` within the bound, or drop the queue and owe a snapshot."""
        if seat.behind:
            return False  # paused, and the snapshot it is owed will hold this
        if seat.queued_bytes + len(frame) > self._max_queue_bytes:
            seat.queue.clear()
            seat.queued_bytes = 0
            seat.resyncs += 1
            if seat.state is ViewerState.PAUSED:
                seat.behind = True
            else:
                seat.state = ViewerState.RESYNC
        else:
            seat.queue.append(frame)
            seat.queued_bytes += len(frame)
            if seat.state is ViewerState.DIRECT:
                seat.state = ViewerState.QUEUED
        return seat.state is not ViewerState.PAUSED

    def repaint_all(self) -> list[K]:
        """Owe every viewer a snapshot (the screen was rebuilt); returns whom to wake."""
        woken = []
        for key, seat in self._seats.items():
            seat.queue.clear()
            seat.queued_bytes = 0
            if seat.state is ViewerState.PAUSED:
                seat.behind = True
            else:
                seat.state = ViewerState.RESYNC
                woken.append(key)
        return woken

    # --- a viewer's sender -------------------------------------------------------

    def pause(self, key: K) -> None:
        seat = self._seats.get(key)
        if seat is not None and seat.state is not ViewerState.PAUSED:
            seat.behind = seat.state is ViewerState.RESYNC
            seat.state = ViewerState.PAUSED

    def resume(self, key: K) -> bool:
        """Leave the pause; True if the sender has something to do."""
        seat = self._seats.get(key)
        if seat is None or seat.state is not ViewerState.PAUSED:
            return False
        if seat.behind:
            seat.state = ViewerState.RESYNC
        elif seat.queue or seat.notices or seat.sending:
            seat.state = ViewerState.QUEUED
        else:
            seat.state = ViewerState.DIRECT
        seat.behind = False
        return True

    def take(self, key: K, snapshot: list[bytes] | None = None) -> list[bytes]:
        """The next batch for a viewer's sender, and it is then out with it.

        A viewer that owes a resync must be given ``snapshot`` (the frames
        that repaint it, taken after :meth:`flush`); its queue is dropped.
        Call :meth:`sent` once the batch is on its way.
        """
        seat = self._seats.get(key)
        if seat is None or seat.state in (ViewerState.PAUSED, ViewerState.CLOSED):
            return []
        if seat.state is ViewerState.RESYNC:
            if snapshot is None:
                raise ValueError("a viewer that owes a resync needs a snapshot")
            batch = list(snapshot)
            seat.queue.clear()
        else:
            batch = coalesce(seat.queue)
            seat.queue = deque()
        seat.queued_bytes = 0
        if seat.notices:
            batch.extend(seat.notices)
            seat.notices.clear()
        if batch:
            seat.state = ViewerState.QUEUED
            seat.sending = True
            self.bytes_to_viewers += sum(map(len, batch))
        elif seat.state is not ViewerState.RESYNC:
            seat.state = ViewerState.DIRECT
        return batch

    def sent(self, key: K) -> bool:
        """The batch from :meth:`take` is sent; True if more waits for the sender."""
        seat = self._seats.get(key)
        if seat is None:
            return False
        seat.sending = False
        if seat.state is ViewerState.QUEUED and not (seat.queue or seat.notices):
            seat.state = ViewerState.DIRECT
        return seat.state in (ViewerState.QUEUED, ViewerState.RESYNC)
