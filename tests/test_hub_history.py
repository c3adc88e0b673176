"""The hub's history for joining viewers: written in pieces, the screen held, shared.

A joining viewer gets every line the screen keeps, written a piece at a
time with the event loop free in between (libghostty-vt takes tens of
milliseconds for 10,000 lines). Meanwhile the screen is not fed, so the
pieces and the screen after them are one picture, and output that arrives
meanwhile reaches the viewer after it, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.core import viewer as viewer_module
from gateway.core.hub import Hub
from gateway.core.target import Target
from gateway.core.viewer import RESYNC_HISTORY, Viewer
from gateway.screen import screen_backend
from gateway.screen.base import HISTORY_PIECE_ROWS, TerminalScreen

from .conftest import timeout
from .test_hub import output, output_of

BACKENDS = [screen_backend("pyte"), screen_backend("ghostty")]
LINES = 4 * HISTORY_PIECE_ROWS + 321


class Watched:
    """A screen that notes what the hub does to it while it writes the history."""

    def __init__(self, inner: TerminalScreen) -> None:
        self.inner = inner
        self.writings = 0
        self.pieces = 0
        self.fed_while_writing = 0
        self._writing = False
        self.after_piece: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def feed(self, data: bytes) -> None:
        self.fed_while_writing += self._writing
        self.inner.feed(data)

    def resize(self, columns: int, rows: int) -> None:
        self.fed_while_writing += self._writing
        self.inner.resize(columns, rows)

    def history_pieces(self, limit: int | None = None) -> Iterator[bytes]:
        self.writings += 1
        self._writing = True
        try:
            for piece in self.inner.history_pieces(limit):
                self.pieces += 1
                yield piece
                if self.after_piece:
                    self.after_piece.pop(0)()
        finally:
            self._writing = False


def watched_hub(backend: Any, scrollback: int = 10_000) -> tuple[Hub, Watched]:
    screens: list[Watched] = []

    def make(columns: int, rows: int) -> Watched:
        screens.append(Watched(backend(columns, rows, scrollback)))
        return screens[-1]

    hub = Hub("t", Target("unix:/nonexistent.sock"), columns=80, rows=24, screen=make)  # type: ignore[arg-type]
    return hub, screens[0]


@contextlib.asynccontextmanager
async def filled(backend: Any) -> AsyncIterator[tuple[Hub, Watched]]:
    """A started hub whose screen has LINES lines, most of them history."""
    hub, screen = watched_hub(backend)
    await hub.start()
    try:
        await output(hub, numbered(0, LINES))
        await hub.wait_emulated()
        yield hub, screen
    finally:
        await hub.aclose()


async def first_batches(viewer: Viewer, count: int = 1) -> list[bytes]:
    frames: list[bytes] = []
    batches = viewer.batches()
    for _ in range(count):
        frames.extend(await asyncio.wait_for(anext(batches), timeout(10)))
    return frames


async def more(viewer: Viewer) -> list[bytes]:
    """Whatever else is ready for the viewer (its sender drained once more)."""
    frames: list[bytes] = []
    batches = viewer.batches()
    while True:
        try:
            frames.extend(await asyncio.wait_for(anext(batches), 0.05))
        except TimeoutError:
            return frames


def numbered(start: int, stop: int) -> bytes:
    return b"".join(b"\x1b[3%dm%06d\x1b[0m line\r\n" % (i % 8, i) for i in range(start, stop))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_joining_viewer_gets_all_the_history_with_the_loop_free_between_pieces(
    backend: Any,
) -> None:
    async with filled(backend) as (hub, screen):
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        marks: list[int] = []
        screen.after_piece.extend([lambda: marks.append(ticks)] * 5)
        task = asyncio.create_task(ticker())
        frames = await first_batches(hub.join())
        task.cancel()
        viewer = backend(80, 24, 10_000)
        viewer.feed(output_of(frames))
        assert viewer.history() == hub.screen.history()
        assert viewer.scrollback == LINES - 23
        assert viewer.snapshot() == hub.screen.snapshot()
        # Another task ran between every two pieces.
        assert screen.pieces == len(marks) == 5
        assert all(later > earlier for earlier, later in itertools.pairwise(marks))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_output_while_the_history_is_written_waits_and_follows_it_once(
    backend: Any,
) -> None:
    async with filled(backend) as (hub, screen):
        pending: list[asyncio.Task[None]] = []

        def publish(chunk: bytes) -> None:
            pending.append(asyncio.create_task(output(hub, chunk)))

        for n in range(4):
            chunk = numbered(LINES + 100 * n, LINES + 100 * (n + 1))
            screen.after_piece.append(functools.partial(publish, chunk))
        joined = hub.join()
        frames = await first_batches(joined)
        await asyncio.gather(*pending)
        frames += await more(joined)
        await hub.wait_emulated()
        assert screen.fed_while_writing == 0
        viewer = backend(80, 24, 10_000)
        viewer.feed(output_of(frames))
        assert viewer.history() == hub.screen.history()
        assert viewer.snapshot() == hub.screen.snapshot()
        assert b"%06d" % (LINES + 399) in hub.screen.snapshot()


async def test_viewers_joining_a_still_screen_share_one_writing() -> None:
    async with filled(screen_backend("ghostty")) as (hub, screen):
        first = await asyncio.gather(*(first_batches(hub.join()) for _ in range(5)))
        assert screen.writings == 1
        assert len({output_of(frames) for frames in first}) == 1
        # Later joins on the same screen write nothing again; new output does.
        await first_batches(hub.join())
        assert screen.writings == 1
        await output(hub, b"more\r\n")
        await hub.wait_emulated()
        await first_batches(hub.join())
        assert screen.writings == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_resize_while_the_history_is_written_starts_it_over(backend: Any) -> None:
    async with filled(backend) as (hub, screen):
        screen.after_piece.append(lambda: hub.upstream_resized(100, 30))
        frames = await first_batches(hub.join())
        assert screen.writings == 2
        assert hub.screen.columns == 100
        viewer = backend(100, 30, 10_000)
        viewer.feed(output_of(frames))
        assert viewer.history() == hub.screen.history()
        assert viewer.snapshot() == hub.screen.snapshot()


async def test_a_viewer_that_leaves_while_waiting_does_not_stop_the_others() -> None:
    async with filled(screen_backend("ghostty")) as (hub, screen):
        leaving, staying = hub.join(), hub.join()
        early = asyncio.create_task(first_batches(leaving))
        screen.after_piece.append(early.cancel)
        frames = await first_batches(staying)
        with pytest.raises(asyncio.CancelledError):
            await early
        viewer = screen_backend("ghostty")(80, 24, 10_000)
        viewer.feed(output_of(frames))
        assert viewer.history() == hub.screen.history()
        # The screen is fed again once nobody holds it.
        await output(hub, b"after\r\n")
        await asyncio.wait_for(hub.wait_emulated(), timeout(5))
        assert "after" in hub.screen.text()


async def test_a_slow_viewer_gets_the_whole_history_again_only_now_and_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # However slow the machine, the second repaint comes within the interval.
    monkeypatch.setattr(viewer_module, "FULL_REPAINT_INTERVAL", 3600.0)
    hub = Hub(
        "t",
        Target("unix:/nonexistent.sock"),
        columns=80,
        rows=24,
        viewer_queue_bytes=64 * 1024,
        screen=functools.partial(screen_backend("ghostty"), scrollback=10_000),
    )
    await hub.start()
    try:
        await output(hub, numbered(0, LINES))
        await hub.wait_emulated()
        slow = hub.join()
        batches = slow.batches()

        async def fall_behind_and_repaint() -> int:
            # Output that scrolls nothing, more than the viewer's queue holds.
            for _ in range(100):
                await output(hub, b"\x1b[H" + b"x" * 1000)
            frames = await asyncio.wait_for(anext(batches), timeout(10))
            viewer = screen_backend("ghostty")(80, 24, 10_000)
            viewer.feed(output_of(frames))
            return viewer.scrollback

        assert await fall_behind_and_repaint() == LINES - 23  # the join
        assert await fall_behind_and_repaint() == RESYNC_HISTORY
        monkeypatch.setattr(viewer_module, "FULL_REPAINT_INTERVAL", 0.0)
        assert await fall_behind_and_repaint() == LINES - 23
        assert slow.resyncs == 2
    finally:
        await hub.aclose()
