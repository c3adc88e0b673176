"""The retrying stream thread, with fake streams: retries, backoff, cancel, the loop hand-off."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import ClassVar

from gateway.core.backoff import Backoff
from gateway.docker.stream import Finished, RetryingStream

from .conftest import eventually, timeout


class FakeStream:
    """Blocks a reader until closed, as a Docker stream does until cancel closes it."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


class Scripted(RetryingStream):
    """Each session does the next step: raise it, or (None) hold a stream open until closed."""

    stable_after: ClassVar[float | None] = None

    def __init__(self, *steps: Exception | None) -> None:
        super().__init__("test-stream", Backoff(base=0.01, cap=0.02))
        self.steps = list(steps)
        self.retries: list[tuple[str | None, float]] = []
        self.sessions = 0
        self.held: list[FakeStream] = []
        self.taken: list[int] = []

    def session(self) -> None:
        self.sessions += 1
        self.call(self.taken.append, self.sessions)
        step = self.steps.pop(0) if self.steps else Finished()
        if step is not None:
            raise step
        with self.holding(FakeStream()) as stream:
            self.held.append(stream)
            stream.closed.wait(timeout(10))

    def retrying(self, error: Exception | None, delay: float) -> None:
        self.retries.append((None if error is None else str(error), delay))


async def test_failures_and_ends_are_retried_with_backoff_until_finished() -> None:
    stream = Scripted(OSError("refused"), ValueError("garbled"), Finished())
    stream.start()
    await asyncio.to_thread(stream.join, timeout(5))
    assert stream.sessions == 3
    assert [error for error, _ in stream.retries] == ["refused", "garbled"]
    assert all(0.005 <= delay <= 0.02 for _, delay in stream.retries)
    assert stream.backoff.attempt == 2
    # Results reach the loop through call_soon_threadsafe, in order.
    await eventually(lambda: stream.taken == [1, 2, 3], message="results on the loop")


async def test_cancel_closes_the_open_stream_and_ends_the_thread() -> None:
    stream = Scripted(None, None)
    stream.start()
    await eventually(lambda: len(stream.held) == 1, message="a stream open")
    stream.cancel()
    await asyncio.to_thread(stream.join, timeout(5))
    assert stream.held[0].closed.is_set()
    assert "test-stream" not in {thread.name for thread in threading.enumerate()}
    assert stream.sessions == 1
    assert stream.retries == []  # a cancelled session is not an end worth a retry


class Stable(Scripted):
    stable_after: ClassVar[float | None] = 0.001

    def session(self) -> None:
        time.sleep(0.005)  # longer than stable_after: every session counts as stable
        super().session()


async def test_a_session_that_held_long_enough_starts_the_backoff_over() -> None:
    stream = Stable(OSError("one"), OSError("two"), OSError("three"), Finished())
    stream.start()
    await asyncio.to_thread(stream.join, timeout(5))
    assert len(stream.retries) == 3
    assert stream.backoff.attempt == 1


def test_call_says_when_the_loop_is_gone() -> None:
    go, answered = threading.Event(), threading.Event()
    results: list[bool] = []

    class Late(RetryingStream):
        def session(self) -> None:
            go.wait(timeout(5))
            results.append(self.call(print, "never"))
            answered.set()
            raise Finished

        def retrying(self, error: Exception | None, delay: float) -> None:
            raise AssertionError("no retry expected")

    stream = Late("late", Backoff())

    async def start() -> None:
        stream.start()

    asyncio.run(start())  # returns with its loop closed
    go.set()
    assert answered.wait(timeout(5))
    stream.join(timeout(5))
    assert results == [False]
