"""Container logs: Docker's log stream, in a ring shared by SSE listeners.

:class:`ContainerLogs` keeps one container's last lines in a
:class:`~gateway.ring.Ring`. While somebody listens, one thread (a
:class:`~gateway.docker.stream.RetryingStream`) follows the Docker stream
(the SDK blocks) and hands lines to the event loop, at most a few batches
ahead, so a log flood paces itself to the loop instead of queueing without
bound. When the last listener leaves, the stream is closed;
the ring stays, and the next listener's stream resumes from the last
timestamp taken (skipping the lines already held at that very timestamp), so
nothing is lost or doubled across the pause. The first stream loads the
history (``tail`` = the ring's size) before following, so ``?tail=N`` on a
first connect has something to show. The bytes are decoded by
:mod:`gateway.docker.logdecode`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from docker.errors import NotFound
from docker.types import CancellableStream

from ..core.backoff import Backoff
from ..ring import Ring
from ..tasks import Signal
from .discovery import Discovery
from .logdecode import LogDecoder, LogLine, Numbering, Position, Seen, since_param
from .planner import Container
from .stream import API_TIMEOUT, Finished, RetryingStream

log = logging.getLogger(__name__)

# Bytes one ring may hold besides its line count, so long lines cannot pile up.
MAX_RING_BYTES = 16 * 1024 * 1024
# Batches handed to the event loop and not yet taken: the follower waits past this.
MAX_IN_FLIGHT = 4
# Lines per batch from the follower thread.
BATCH_LINES = 256
# A follower whose stream ended reopens it after this long at the latest.
RECHECK_SECONDS = 10.0


class ContainerLogs:
    """One container's recent log lines, and the follower that fills them."""

    def __init__(
        self,
        container_id: str,
        tty: bool,
        client: Callable[[], Any],
        capacity: int,
    ) -> None:
        self.container_id = container_id
        self._tty = tty
        self._client = client
        self.ring: Ring[LogLine] = Ring(
            capacity, max_bytes=MAX_RING_BYTES, size=lambda line: len(line.text) + 64
        )
        self.signal = Signal()
        # What names each line on the wire: the source's own position, not the ring's.
        self.numbering = Numbering(container_id)
        self._history_lines = 0
        # Set once the history is in the ring: listeners pick their start after it.
        self.loaded = asyncio.Event()
        self._capacity = capacity
        self.listeners = 0
        # Where the ring stands: the next follower resumes from here.
        self._position = Position()
        self._generation = 0
        self._follower: _Follower | None = None

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Hold the Docker stream open while inside."""
        self.listeners += 1
        if self._follower is None:
            self._start()
        try:
            yield
        finally:
            self.listeners -= 1
            if self.listeners == 0:
                self.stop()

    def event_id(self, line: LogLine) -> str:
        return self.numbering.event_id(line)

    def resume(self, last_event_id: str | None) -> tuple[int, tuple[int, int]] | None:
        """Where a client that last saw ``last_event_id`` continues: a ring position,
        and the key of its line (lines up to it are not sent again); None: no position.

        The id names a line by its source, so one read on another gateway (or
        before a restart) resumes here too; a line this gateway has not read
        yet is waited for, through the key.
        """
        key = self.numbering.parse(last_event_id, time.time_ns())
        if key is None:
            return None
        items = self.ring.since(self.ring.first_seq)
        if items and key < items[0][1].key:
            return None  # what followed it has left the ring
        for seq, line in items:
            if line.key > key:
                return seq, key
        return self.ring.next_seq, key

    def container_started(self) -> None:
        """The container runs again: a follower waiting at the end of its logs goes on."""
        if self._follower is not None:
            self._follower.wake.set()

    def stop(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()

    def _start(self) -> None:
        self._generation += 1
        follower = _Follower(
            self,
            self._generation,
            history=not self.loaded.is_set(),
            position=Position(self._position.ns, self._position.count),
        )
        self._follower = follower
        follower.start()

    # Called on the event loop by the follower thread (through call_soon_threadsafe).
    def _take(self, generation: int, lines: list[LogLine], history_done: bool) -> None:
        if generation != self._generation:
            return  # a stopped follower's last words: the current one reads them again
        for line in lines:
            self._position.advance(line)
            self.ring.append(self.numbering.number(line))
        if not self.loaded.is_set():
            self._history_lines += len(lines)
        if history_done:
            self.numbering.history_loaded(self._history_lines, self._capacity)
            self.loaded.set()
        if lines or history_done:
            self.signal.fire()


class _Follower(RetryingStream):
    """A thread following one container's log stream for a :class:`ContainerLogs`.

    The first session loads the history (if the ring has none yet), then
    each one follows from where the ring stands. A stream that ends is not a
    failure: the container stopped, so the follower waits for it to start
    again (or a recheck) and follows on without a backoff; a failure backs
    off, and a container that is gone ends the thread.
    """

    def __init__(
        self, logs: ContainerLogs, generation: int, *, history: bool, position: Position
    ) -> None:
        super().__init__(f"logs:{logs.container_id[:12]}", Backoff(base=0.5, cap=10.0))
        self._logs = logs
        self._generation = generation
        self._history = history
        self._position = position
        self.wake = threading.Event()
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    def cancel(self) -> None:
        super().cancel()
        self.wake.set()

    def session(self) -> None:
        try:
            if self._history:
                self._read(follow=False)
                self._history = False
                self._hand_over([], history_done=True)
            while True:
                self.wake.clear()
                self._read(follow=True)
                self.backoff.reset()
                # The stream ends when the container stops: wait for it to start
                # again. Now and then look anyway: a daemon restart ends it too.
                self.wake.wait(RECHECK_SECONDS)
                if self.stopped:
                    return
        except NotFound:
            log.info("logs: container %s is gone", self._logs.container_id[:12])
            raise Finished from None

    def retrying(self, error: Exception | None, delay: float) -> None:
        # Only failures get here: a session returns only once cancelled.
        log.info("logs of %s: %s", self._logs.container_id[:12], error)

    def _read(self, *, follow: bool) -> None:
        client = self._logs._client()
        try:
            api = client.api
            params: dict[str, Any] = {
                "stdout": 1,
                "stderr": 1,
                "timestamps": 1,
                "follow": int(follow),
            }
            if self._history:
                params["tail"] = str(self._logs._capacity)
            elif self._position.ns:
                params["since"] = since_param(self._position.ns)
            url = f"{api.base_url}/v{api.api_version}/containers/{self._logs.container_id}/logs"
            response = api.get(url, params=params, stream=True, timeout=(API_TIMEOUT, None))
            if response.status_code == 404:
                raise NotFound(f"no container {self._logs.container_id}")
            response.raise_for_status()
            stream = CancellableStream(response.iter_content(chunk_size=None), response)
            with self.holding(stream):
                if self.stopped:
                    return
                decoder = LogDecoder(self._logs._tty)
                seen = Seen(self._position)
                for chunk in self._chunks(stream):
                    fresh = [line for line in decoder.feed(chunk) if seen.fresh(line)]
                    for start in range(0, len(fresh), BATCH_LINES):
                        self._hand_over(fresh[start : start + BATCH_LINES])
        finally:
            client.close()

    def _chunks(self, stream: CancellableStream[bytes]) -> Iterator[bytes]:
        for chunk in stream:
            if self.stopped:
                return
            yield chunk

    def _hand_over(self, lines: list[LogLine], *, history_done: bool = False) -> None:
        # Wait (in this thread) until the loop has taken earlier batches.
        while not self._in_flight.acquire(timeout=0.5):
            if self.stopped:
                return
        take = self._logs._take

        def deliver() -> None:
            self._in_flight.release()
            take(self._generation, lines, history_done)

        if not self.call(deliver):  # the loop is closed: the gateway is shutting down
            self._stopped.set()


class LogHub:
    """Every followed container's logs, by container id, for one gateway."""

    def __init__(self, discovery: Discovery, capacity: int) -> None:
        self._discovery = discovery
        self.capacity = capacity
        self._logs: dict[str, ContainerLogs] = {}
        discovery.container_listeners.append(self._container_changed)

    def of(self, container: Container) -> ContainerLogs:
        logs = self._logs.get(container.id)
        if logs is None:
            client = self._discovery.client
            logs = ContainerLogs(container.id, container.tty, client, self.capacity)
            self._logs[container.id] = logs
        return logs

    def _container_changed(self, agent_id: str, container: Container | None) -> None:
        if container is not None and container.running and container.id in self._logs:
            self._logs[container.id].container_started()
        # Forget containers no agent stands for any more, once nobody reads them.
        current = self._discovery.container_ids()
        for container_id, logs in list(self._logs.items()):
            if container_id in current:
                continue
            logs.signal.fire()  # its listeners look again, see the change, and end
            if logs.listeners == 0:
                logs.stop()
                del self._logs[container_id]

    def aclose(self) -> None:
        for logs in self._logs.values():
            logs.stop()
