"""Scrollback: what tmux scrolls off reaches every backend's history, in order, with colours.

The proof is tmux's own: ``capture-pane -p -e -S -`` of the same pane, its
history part (every line above the screen), against the gateway's history
for the retained range.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.core.backoff import Backoff
from gateway.core.hub import REPAIR_QUIET, Hub
from gateway.core.seams import PaneHistory
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.local import LocalAgent
from gateway.screen import ghostty
from gateway.screen.base import HISTORY_PIECE_ROWS, MAX_SCROLLBACK
from gateway.screen.cells import Cell
from gateway.screen.history import CHARS_PER_LINE
from gateway.screen.reference import PyteScreen

from .conftest import AgentFactory, eventually, timeout
from .test_screen import SGR, palette
from .test_screen_backends import assert_same_cells_seen, seen_as_tmux

BACKENDS: list[Any] = [PyteScreen]
if ghostty.UNAVAILABLE is None:
    BACKENDS.append(ghostty.GhosttyScreen)

# Coloured lines with wide characters, as an agent prints a diff or a table,
# a line at a time (an agent streams; a flood is tested apart).
AGENT_LIKE = (
    r"for i in $(seq 1 150); do "
    r"printf '\033[1;3%dm%04d\033[0m \033[48;5;%dmdiff\033[0m 中文 %s\n' "
    r"$((i % 8)) $i $((i % 200)) $(printf 'x%.0s' $(seq 1 $((i % 90)))); sleep 0.01; done"
)


def cells_of(line: str, columns: int = 512, *, seen: bool = False) -> tuple[Cell, ...]:
    """One line of SGR text as cells, blanks cut at the end, colours in one form.

    ``seen``: only what a viewer sees, for real programs' output. Nothing is
    drawn in a blank cell's foreground (libghostty-vt's formatter keeps a
    word's style over the space after it), and tmux's capture leaves out the
    cells a program erased in a colour (CSI K with a background, as Claude
    Code's prompt rows), so trailing blanks are cut whatever their background.
    """
    screen = PyteScreen(columns, 1)
    screen.feed(line.encode())
    row = screen.state().lines[0]
    end = len(row)
    while end and row[end - 1].data == " " and (seen or row[end - 1].bg == "default"):
        end -= 1
    if seen:
        return tuple(map(seen_as_tmux, row[:end]))
    return tuple(c._replace(fg=palette(c.fg), bg=palette(c.bg)) for c in row[:end])


def history_lines(history: bytes) -> list[str]:
    text = history.decode()
    assert not text or text.endswith("\r\n")
    return text.split("\r\n")[:-1]


def standalone(lines: list[str]) -> list[str]:
    """tmux's capture lines, each with the SGR state it starts in.

    ``capture-pane -e`` writes a change of attributes only: a line starts in
    the state the line before ended in (it says nothing when both are green).
    """
    out, carried = [], ""
    for line in lines:
        out.append(carried + line)
        for sgr in SGR.findall(line):
            reset = sgr in ("\x1b[m", "\x1b[0m") or sgr.startswith("\x1b[0;")
            carried = sgr if reset else carried + sgr
    return out


async def tmux_history(agent: LocalAgent) -> list[str]:
    """The pane's history as tmux keeps it: capture-pane -e -S - without the screen."""
    rows = (await agent.pane_size())[1]
    captured = await agent.tmux("capture-pane", "-p", "-e", "-S", "-", "-t", agent.name)
    lines = standalone(captured.split("\n")[:-1])
    return lines[: len(lines) - rows]


async def same_history(agent: LocalAgent, hub: Hub, *, seen: bool = False) -> bool:
    await hub.wait_emulated()
    ours = history_lines(hub.screen.history())
    theirs = (await tmux_history(agent))[-len(ours) :] if ours else []
    return len(ours) > 0 and [cells_of(line, seen=seen) for line in ours] == [
        cells_of(line, seen=seen) for line in theirs
    ]


def subsequence(ours: list[str], theirs: list[str]) -> bool:
    """Every line of ``ours`` starts one of ``theirs``, in the same order.

    Starts: a redraw can catch a line half printed (``155`` of ``1550``).
    """
    remaining = iter([cells_of(line) for line in theirs])
    return all(
        any(line == other[: len(line)] for other in remaining) for line in map(cells_of, ours)
    )


async def hub_for(
    agent: LocalAgent,
    backend: Any,
    scrollback: int = 5000,
    pane: PaneHistory | None = None,
    size: tuple[int, int] = (80, 24),
) -> Hub:
    hub = Hub(
        agent.name,
        Target(agent.url),
        columns=size[0],
        rows=size[1],
        backoff=Backoff(0.05, 0.2),
        screen=lambda c, r: backend(c, r, scrollback),
        pane=pane,
    )
    await hub.start()
    await eventually(lambda: hub.upstream.state is AgentState.CONNECTED, message="connect")
    return hub


async def run(hub: Hub, command: str) -> None:
    await hub.send_input(command.encode() + b"; echo DONE-$((6*7))\r")
    await eventually(lambda: "DONE-42" in hub.screen.text(), within=timeout(30), message="done")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_agents_stream_is_tmuxs_history(make_agent: AgentFactory, backend: Any) -> None:
    agent = await make_agent()
    hub = await hub_for(agent, backend)
    try:
        await run(hub, AGENT_LIKE)
        await eventually(lambda: same_history(agent, hub), message="history equals tmux")
        # All of it: the command line, 150 lines, and nothing else.
        assert hub.screen.scrollback == len(await tmux_history(agent))
    finally:
        await hub.aclose()


class Asked:
    """The agent's tmux as the hub's pane, counting how often it is asked."""

    def __init__(self, agent: LocalAgent) -> None:
        self.agent = agent
        self.asked = 0

    async def history(self, lines: int) -> bytes:
        self.asked += 1
        return await self.agent.history(lines)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_flood_is_tmuxs_history_once_taken_from_tmux(
    make_agent: AgentFactory, backend: Any
) -> None:
    """What tmux never drew (it scrolls a screenful at most per read) comes from tmux itself.

    A viewer that watched the flood is repainted with it, whole; a stream
    that never scrolls a screenful at once (nor clears it) asks tmux only
    once, when it connects.
    """
    agent = await make_agent()
    pane = Asked(agent)
    hub = await hub_for(agent, backend, pane=pane)
    try:
        # tmux's first redraw for a new client is a clear (output the gateway
        # missed while it was away is in tmux's history): that asks, once it
        # settles (again if the prompt was still being drawn); then never.
        await eventually(lambda: pane.asked >= 1 and hub._repair_task is None, message="asked")
        asked = pane.asked
        await run(hub, AGENT_LIKE)
        await eventually(lambda: same_history(agent, hub), message="history equals tmux")
        await asyncio.sleep(REPAIR_QUIET * 2)
        assert pane.asked == asked
        watching = hub.join()
        batches = watching.batches()
        frames = await asyncio.wait_for(anext(batches), timeout(10))
        await run(hub, "seq 1 3000")
        await eventually(lambda: same_history(agent, hub), message="history equals tmux")
        assert hub.screen.scrollback == len(await tmux_history(agent)) > 3000
        assert pane.asked >= 1
        while True:  # the viewer's frames until it has the whole history
            frames += await asyncio.wait_for(anext(batches), timeout(10))
            viewer = backend(80, 24, 5000)
            viewer.feed(b"".join(f[1:] for f in frames if f[:1] == b"0"))
            if viewer.history() == hub.screen.history():
                break
        assert viewer.text() == hub.screen.text()
    finally:
        await hub.aclose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_flood_keeps_what_tmux_drew_in_order(
    make_agent: AgentFactory, backend: Any
) -> None:
    """Without a way to ask tmux (a bare ttyd URL), lines it never drew never reach us.

    It scrolls the whole screen away before each redraw, blank rows and a
    line caught half printed too; every other line is tmux's, in its order.
    """
    agent = await make_agent()
    hub = await hub_for(agent, backend)
    try:
        await run(hub, "seq 1 3000")
        await hub.wait_emulated()
        ours = history_lines(hub.screen.history())
        theirs = await tmux_history(agent)
        assert len(ours) >= 2 * 24  # at least the screens tmux drew
        assert subsequence([line for line in ours if line], theirs)
    finally:
        await hub.aclose()


# --- the real agent CLIs --------------------------------------------------------

# What Claude Code, Gemini CLI and Codex CLI wrote to their terminal, recorded
# by `python -m capture` (capture/, tests/fixtures/agents/README.md); the
# scenarios whose history is longer than a screen.
AGENT_STREAMS = Path(__file__).resolve().parent / "fixtures" / "agents"
WITH_HISTORY = sorted(
    p.name.removesuffix(".pane.bin")
    for p in AGENT_STREAMS.glob("*.pane.bin")
    if len(p.with_name(p.name.replace(".pane.bin", ".history.ansi")).read_text().splitlines())
    > 2 * 40
)


async def same_screen(agent: LocalAgent, hub: Hub) -> bool:
    """A viewer painted with our screen sees every cell tmux's screen has."""
    await hub.wait_emulated()
    captured = await agent.tmux("capture-pane", "-p", "-e", "-t", agent.name)
    viewer = PyteScreen(hub.screen.columns, hub.screen.rows)
    viewer.feed(hub.screen.snapshot())
    try:
        assert_same_cells_seen(viewer, captured)
    except AssertionError:
        return False
    return hub.screen.text() == SGR.sub("", captured)


@pytest.mark.parametrize("name", WITH_HISTORY)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_real_agents_stream_is_tmuxs_history(
    make_agent: AgentFactory, workdir: Path, backend: Any, name: str
) -> None:
    """A real CLI's own output, played into a pane: our history and screen are tmux's.

    Claude Code and Gemini CLI draw inline and scroll a long answer off the
    top; Codex CLI inserts its history above its live area with scroll
    regions. Whatever each does, the gateway's scrollback must be what tmux
    keeps, line for line and colour for colour, and the screen below it too.
    """
    go, done = workdir / f"{name}.go", workdir / f"{name}.done"
    command = [
        sys.executable, "-m", "tests.replay",
        str(AGENT_STREAMS / f"{name}.pane.bin"), str(AGENT_STREAMS / f"{name}.pane.times.json"),
        str(go), str(done),
    ]  # fmt: skip
    agent = await make_agent(name="replay", command=command, columns=120, rows=40)
    hub = await hub_for(agent, backend, pane=Asked(agent), size=(120, 40))
    try:
        go.touch()
        await eventually(done.exists, within=timeout(60), message="replayed")
        # A clear (Gemini CLI's redraws) erased tmux's history: ours follows
        # at the next repair, at most REPAIR_INTERVAL after the one before.
        await eventually(
            lambda: same_history(agent, hub, seen=True),
            within=timeout(30),
            message="history equals tmux",
        )
        assert hub.screen.scrollback == len(await tmux_history(agent)) > 40
        await eventually(lambda: same_screen(agent, hub), message="screen equals tmux")
    finally:
        await hub.aclose()


# --- hostile output: bounded, no crash ------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_is_bounded_and_erased_by_csi_3j(backend: Any) -> None:
    screen = backend(40, 5, 100)
    screen.feed(b"".join(b"\x1b[31m%d\x1b[0m\r\n" % i for i in range(1000)))
    assert screen.scrollback == 100
    assert cells_of(history_lines(screen.history())[-1]) == cells_of("\x1b[31m995")
    screen.feed(b"\x1b[3J")
    assert (screen.scrollback, screen.history()) == (0, b"")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("columns", [80, 200])
def test_the_whole_limit_is_kept_at_any_width(backend: Any, columns: int) -> None:
    # libghostty-vt's own byte limit once kept a single page (~600 rows at 80 columns).
    screen = backend(columns, 24, 3000)
    screen.feed(
        b"".join(
            b"\x1b[3%dm%05d\x1b[0m %s\r\n" % (i % 8, i, b"x" * (i % (columns - 6)))
            for i in range(4000)
        )
    )
    assert screen.scrollback == 3000
    assert cells_of(history_lines(screen.history())[0])[:5] == cells_of("\x1b[31m00977")
    screen.resize(columns // 2, 24)  # narrower: the slack and the byte limit follow
    screen.feed(b"".join(b"%05d\r\n" % i for i in range(4000, 8000)))
    assert history_lines(screen.history())[-1] == "07976"
    assert screen.scrollback == 3000


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_lines_stay_bounded(backend: Any) -> None:
    screen = backend(200, 5, 50)
    # Huge lines (wrapping), wide and combining characters, a flood.
    screen.feed(("中\u0301" * 5000 + "\r\n").encode() * 20)
    screen.feed(("e" + "\u0301" * 40 + "\r\n").encode() * 200)
    screen.feed(b"\x1b[44m" + b"x" * 100_000 + b"\r\n")
    assert screen.scrollback <= 50
    assert len(screen.history()) < 50 * CHARS_PER_LINE * 4
    repainted = backend(200, 5, 50)
    repainted.feed(screen.snapshot(screen.history()))
    assert repainted.history() == screen.history()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_repaint_carries_the_history_and_then_the_screen(backend: Any) -> None:
    screen = backend(20, 4, 1000)
    screen.feed(b"".join(b"\x1b[3%dmline %d\x1b[0m\r\n" % (i % 8, i) for i in range(30)))
    viewer = backend(20, 4, 1000)
    viewer.feed(screen.snapshot(screen.history()))
    assert viewer.history() == screen.history()
    assert viewer.snapshot() == screen.snapshot()
    assert history_lines(viewer.history(3)) == history_lines(screen.history())[-3:]
    # In pieces, as a joining viewer gets it, it is the same history.
    assert b"".join(screen.history_pieces()) == screen.history()


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_in_pieces_is_the_history(backend: Any) -> None:
    screen = backend(30, 5, 5000)
    lines = b"".join(b"\x1b[1;3%dm%05d\x1b[0m tail\r\n" % (i % 8, i) for i in range(4321))
    screen.feed(lines + b"\r\n\r\n\r\n\r\n\r\n\r\nlast")  # blank lines end the history
    pieces = list(screen.history_pieces())
    assert len(pieces) == -(-screen.scrollback // HISTORY_PIECE_ROWS) > 4
    assert all(piece.count(b"\r\n") == HISTORY_PIECE_ROWS for piece in pieces[:-1])
    assert b"".join(pieces) == screen.history()
    assert history_lines(screen.history())[-1] == ""
    assert "m02823\x1b[0m tail" in history_lines(b"".join(screen.history_pieces(1500)))[0]


def test_the_limit_is_checked() -> None:
    with pytest.raises(ValueError, match="lines of history"):
        PyteScreen(10, 4, MAX_SCROLLBACK + 1)
