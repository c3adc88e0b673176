"""History repair: spotting tmux's screenful scrolls, and taking its history safely.

The real flood against real tmux is in ``tests/test_screen_history.py``;
here the sans-I/O parts, and the hub with a pane that answers what a
hostile tmux (one a container runs for itself) could.
"""

from __future__ import annotations

import asyncio
import functools
import re

import pytest

from gateway.core import hub as hub_module
from gateway.core.hub import Hub
from gateway.core.repair import ScrollWatch, same_text, split_capture
from gateway.core.target import Target
from gateway.errors import PaneUnavailable
from gateway.screen import screen_backend
from gateway.screen.cells import plain

from .conftest import eventually, timeout
from .test_hub import output

BACKENDS = [screen_backend("pyte"), screen_backend("ghostty")]


# --- ScrollWatch ---------------------------------------------------------------


def test_a_screenful_of_line_feeds_is_seen_and_less_is_not() -> None:
    watch = ScrollWatch(24)
    assert not watch.feed(b"0" + b"x\n" * 100, 1)  # line by line: tmux drew each
    assert not watch.feed(b"0\x1b[24;1H" + b"\n" * 23 + b"last", 1)
    assert watch.feed(b"0\x1b[24;1H" + b"\n" * 24 + b"last", 1)


def test_a_run_split_across_messages_counts_whole() -> None:
    watch = ScrollWatch(24)
    assert not watch.feed(b"0text" + b"\n" * 10, 1)
    assert not watch.feed(b"0" + b"\n" * 10, 1)
    assert watch.feed(b"0" + b"\n" * 4 + b"more", 1)
    # The run was broken: it starts again.
    assert not watch.feed(b"0" + b"\n" * 20, 1)
    assert not watch.feed(b"0x" + b"\n" * 23, 1)


def test_the_type_byte_is_not_a_line_feed_and_a_resize_resets() -> None:
    watch = ScrollWatch(3)
    assert not watch.feed(b"\n\n\n", 1)  # two after the type byte
    watch.resize(40)
    assert not watch.feed(b"0" + b"\n" * 39, 1)
    assert watch.feed(b"0\n", 1)


def test_a_whole_screen_clear_is_seen() -> None:
    """tmux's answer to a program's CSI 2 J, which often came with a CSI 3 J it kept."""
    watch = ScrollWatch(24)
    assert watch.feed(b"0text\x1b[H\x1b[J redrawn", 1)
    assert watch.feed(b"0\x1b[2J", 1)
    assert not watch.feed(b"0\x1b[J\x1b[K\x1b[1;1H", 1)  # clearing below, a line: no
    assert not watch.feed(b"\x1b[2J", 1)  # the type byte is not part of it


# --- what tmux returns -----------------------------------------------------------

HOSTILE = [
    b"\x1b[?1000h\x1b[?1049hmouse and alternate screen",
    b"\x1b]52;c;cm0gLXJmIC8=\x07clipboard",
    b"\x1b]0;title\x07\x1b[2J\x1b[Hclear",
    "\u009b31mC1 CSI\u0090DCS\u009c".encode(),
    b"\x1bPq#0;2;0;0;0~-\x1b\\sixel",
    b"\x1b[31mred\x1b[0m \x1b[38;2;1;2;3mtrue colour\x1b[m",
    b"\x07\x08\x0d\x7ftext",
    b"\xff\xfe\xc3 broken UTF-8 \xe2\x80",
    "\u202eright-to-left\u200b\ufeff zero widths".encode(),
    b"x" * 100_000,
]


def test_only_text_and_sgr_are_kept_of_the_history() -> None:
    screen = [b"$ prompt", b""]
    history, text = split_capture(b"\n".join(HOSTILE + screen) + b"\n", 2, 100, 80)
    lines = history.split(b"\r\n")[:-1]
    assert len(lines) == len(HOSTILE)
    for line in lines:
        body = line.removesuffix(b"\x1b[0m")
        # Every ESC left starts an SGR sequence, and no other control is left.
        for piece in body.split(b"\x1b")[1:]:
            assert re.match(rb"\[[0-9;:]*m", piece)
        assert not any((c < 0x20 and c != 0x1B) or c == 0x7F for c in body)
        assert not any(0x80 <= ord(c) <= 0x9F for c in body.decode())
    assert b"\x1b[31mred\x1b[0m \x1b[38;2;1;2;3mtrue colour" in lines[5]
    assert "\ufffd broken UTF-8 \ufffd" in lines[7].decode()  # bad UTF-8 is replaced
    assert len(lines[-1]) <= 80 * 32 + 10
    assert text == "$ prompt\n\n"


def test_the_capture_splits_into_the_newest_history_and_the_screen() -> None:
    captured = b"".join(b"line %d\n" % i for i in range(10)) + b"screen 1  \nscreen 2\n"
    history, text = split_capture(captured, 2, 4, 80)
    assert [plain(line) for line in history.split(b"\r\n")[:-1]] == [
        f"line {i}\x1b[0m".replace("\x1b[0m", "") for i in range(6, 10)
    ]
    assert text == "screen 1\nscreen 2\n"
    # A shorter capture than the screen: blank rows; no history.
    assert split_capture(b"only\n", 3, 4, 80) == (b"", "only\n\n\n")
    assert split_capture(captured, 2, 0, 80)[0] == b""


def test_a_line_keeps_the_colours_the_line_before_left_it_in() -> None:
    """capture-pane -e writes changes only: two green lines are one SGR."""
    captured = b"\x1b[32mgreen\nstill green\x1b[1m bold\n\x1b[0mplain\nx\n"
    history, _ = split_capture(captured, 1, 10, 80)
    lines = history.split(b"\r\n")[:-1]
    assert lines[1] == b"\x1b[32mstill green\x1b[1m bold\x1b[0m"
    assert lines[2] == b"\x1b[32m\x1b[1m\x1b[0mplain\x1b[0m"
    # Only the history's newest lines are kept, with the state they start in.
    assert split_capture(captured, 1, 1, 80)[0] == b"\x1b[32m\x1b[1m\x1b[0mplain\x1b[0m\r\n"
    # A hostile history piling up attributes carries a bounded few.
    piled = b"\x1b[1m" * 10_000 + b"\nnext\nx\n"
    assert len(split_capture(piled, 1, 10, 80)[0].split(b"\r\n")[1]) < 16 * 8


def test_same_text_ignores_colours_and_trailing_blanks_only() -> None:
    assert same_text(b"\x1b[31mred\x1b[0m  \r\nx\r\n", b"red\r\n\x1b[1mx\r\n")
    assert not same_text(b"red\r\nx\r\n", b"red\r\ny\r\n")
    assert not same_text(b"red\r\n", b"red\r\nred\r\n")


# --- the hub, with a pane answering like a hostile tmux ----------------------------


class Pane:
    """Answers with ``history`` above whatever the hub's screen shows now."""

    def __init__(self, hub_of: list[Hub], history: list[bytes]) -> None:
        self.hub_of = hub_of
        self.history_lines = history
        self.asked = 0
        self.fail = False

    async def history(self, lines: int) -> bytes:
        self.asked += 1
        if self.fail:
            raise PaneUnavailable("tmux is gone")
        screen = self.hub_of[0].screen.text().encode()
        return b"\n".join(self.history_lines) + b"\n" + screen


def pane_hub(backend: object, pane: Pane) -> Hub:
    hub = Hub(
        "t",
        Target("unix:/nonexistent.sock"),
        columns=80,
        rows=24,
        screen=functools.partial(backend, scrollback=1000),  # type: ignore[call-overload]
        pane=pane,
    )
    pane.hub_of.append(hub)
    return hub


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_hostile_tmux_history_sets_nothing_but_colours(
    backend: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "REPAIR_QUIET", 0.01)
    monkeypatch.setattr(hub_module, "REPAIR_INTERVAL", 0.0)
    pane = Pane([], HOSTILE)
    hub = pane_hub(backend, pane)
    await hub.start()
    try:
        await output(hub, b"before\r\n" + b"\n" * 24 + b"$ ")
        await eventually(lambda: pane.asked > 0 and b"clipboard" in hub.screen.history())
        await hub.wait_emulated()
        state = hub.screen.to_json()
        assert state["modes"] == backend(80, 24).to_json()["modes"]  # type: ignore[operator]
        assert hub.screen.title == ""
        assert hub.screen.text() == "\n" * 23 + "$\n"  # the screen is as it was
        assert re.search(rb"\x1b\[(?:0;)?(?:31|38;5;1)mred", hub.screen.history())  # colours stay
    finally:
        await hub.aclose()


async def test_an_unreadable_or_inconsistent_tmux_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "REPAIR_QUIET", 0.01)
    monkeypatch.setattr(hub_module, "REPAIR_INTERVAL", 0.0)
    pane = Pane([], [b"theirs"])
    pane.fail = True
    hub = pane_hub(screen_backend("ghostty"), pane)
    await hub.start()
    try:
        await output(hub, b"ours\r\n" + b"\n" * 30)
        await eventually(lambda: pane.asked == 1)
        await asyncio.sleep(0.05)
        await hub.wait_emulated()
        history = hub.screen.history()
        assert b"ours" in history
        # tmux's screen is not ours (output in flight): not taken, asked again.
        pane.fail = False
        real = pane.history

        async def elsewhere(lines: int) -> bytes:
            return (await real(lines)).replace(b"\n\n", b"\nnot ours\n", 1)

        pane.history = elsewhere  # type: ignore[method-assign]
        await output(hub, b"\n" * 30)
        await eventually(lambda: pane.asked >= 3, within=timeout(5))
        assert b"theirs" not in hub.screen.history()
    finally:
        await hub.aclose()


async def test_an_agent_that_floods_and_pauses_on_purpose_is_repaired_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "REPAIR_QUIET", 0.01)
    monkeypatch.setattr(hub_module, "REPAIR_INTERVAL", 60.0)
    pane = Pane([], [b"theirs"])
    hub = pane_hub(screen_backend("ghostty"), pane)
    await hub.start()
    try:
        for n in range(10):
            await output(hub, b"%d\r\n" % n + b"\n" * 30)
            await asyncio.sleep(0.05)  # quiet for longer than REPAIR_QUIET
        await eventually(lambda: b"theirs" in hub.screen.history())
        assert pane.asked == 1
    finally:
        await hub.aclose()
