"""A blocking Docker stream, consumed in a thread that retries it.

The docker SDK blocks, so each endless stream (Docker's event feed, one
container's log) gets a thread of its own. What that thread does around its
stream is the same for all of them and lives here, once: open the stream and
read it, and when it ends or fails, wait (with
:class:`~gateway.core.backoff.Backoff`, cut short by a cancel) and open it
again, until cancelled. Results reach the event loop only through
``call_soon_threadsafe`` (:meth:`RetryingStream.call`), never by touching
loop objects from the thread. Cancelling closes the stream that is open,
which is what unblocks a thread stuck in a read.

What a stream means, what an end or a failure says, and when the backoff
starts over belong to the subclass: :class:`~gateway.docker.discovery.Discovery`'s
event watcher and :mod:`gateway.docker.logs`' followers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, TypeVar

from docker.errors import DockerException
from requests.exceptions import RequestException

from ..core.backoff import Backoff

# Calls to the Docker API (not the streams themselves) give up after this long.
API_TIMEOUT = 10
# What a daemon going away, a dropped connection or a garbled answer raises: worth a retry.
RETRYABLE: tuple[type[Exception], ...] = (DockerException, RequestException, OSError, ValueError)


class Finished(Exception):
    """Raised from :meth:`RetryingStream.session`: nothing more to follow, the thread ends."""


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


class RetryingStream(ABC):
    """One thread following one blocking Docker stream, reopening it until cancelled.

    :meth:`session` opens the stream and reads it: returning means the
    stream ended, raising one of :attr:`retry_on` that it failed. Either
    way, unless cancelled meanwhile, :meth:`retrying` is told (``None`` for
    an end) and the next session starts after the backoff's delay. Any
    other exception, :class:`Finished` or :meth:`cancel` ends the thread.
    """

    # Exceptions from a session that mean "open it again".
    retry_on: ClassVar[tuple[type[Exception], ...]] = RETRYABLE
    # A session that lasted this long proved the connection stable: the
    # backoff starts over. None: the subclass resets it itself.
    stable_after: ClassVar[float | None] = None

    def __init__(self, name: str, backoff: Backoff) -> None:
        self.name = name
        self.backoff = backoff
        self._stopped = threading.Event()
        self._stream: Closable | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- on the event loop ----------------------------------------------------------

    def start(self) -> None:
        """Start the thread; the running loop is where :meth:`call` sends results."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """No session after this one, and the open stream is closed (ending a blocked read)."""
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def join(self, timeout: float) -> None:
        """Wait (blocking: run it in a thread) for the thread to end, ``timeout`` at most."""
        if self._thread is not None:
            self._thread.join(timeout)

    # --- in the thread ---------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def call(self, callback: Callable[..., None], *args: Any) -> bool:
        """Have ``callback(*args)`` run on the event loop; False if the loop is closed."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed meanwhile: the gateway is shutting down
            return False
        return True

    @contextlib.contextmanager
    def holding(self, stream: S) -> Iterator[S]:
        """While inside, ``stream`` is the one :meth:`cancel` closes."""
        self._stream = stream
        try:
            yield stream
        finally:
            self._stream = None

    @abstractmethod
    def session(self) -> None:
        """Open the stream and read it to its end (blocking)."""

    @abstractmethod
    def retrying(self, error: Exception | None, delay: float) -> None:
        """The stream ended (``error`` None) or failed; the next try is in ``delay`` seconds."""

    def _run(self) -> None:
        while not self._stopped.is_set():
            started = time.monotonic()
            error: Exception | None = None
            try:
                self.session()
            except Finished:
                return
            except self.retry_on as exc:
                error = exc
            if self._stopped.is_set():
                return
            if self.stable_after is not None and time.monotonic() - started > self.stable_after:
                self.backoff.reset()
            delay = self.backoff.next_delay()
            self.retrying(error, delay)
            self._stopped.wait(delay)
