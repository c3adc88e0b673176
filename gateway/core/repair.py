"""History repair, sans I/O: when tmux drew less than it scrolled, take its own history.

tmux collects the lines a pane scrolls while it parses one read of the
program's output, then scrolls its client by that many lines, but by one
screen's height at most (``screen_write_collect_flush``): of a burst longer
than the screen (``seq 1 3000``, a file dumped, a long answer printed at
once) the client is sent the last screenful only, and the lines before
never leave tmux. The gateway's history, which is what tmux sent, then
misses them; tmux's own history (``capture-pane``) has them.

Such a scroll is visible in the stream: with no ``indn`` (see
``gateway/local.py``) tmux scrolls by printing that many line feeds in a
row, so a run of line feeds as long as the screen is tall is the sign.
:class:`ScrollWatch` looks for it; the hub then waits for the output to
settle, asks tmux for its history (a :class:`~gateway.core.seams.PaneHistory`)
and, if it differs, rebuilds its screen on it (:mod:`gateway.core.hub`).

What tmux returns is the agent's: a hostile agent (or, in a container, a
tmux of its own) can put anything there. :func:`history_from_capture` keeps
text and SGR only, so that the history can set nothing but colours.
"""

from __future__ import annotations

import re
from typing import Final

from ..screen.cells import plain

__all__ = ["ScrollWatch", "same_text", "split_capture"]

#: A history line may take this many bytes per column (coloured cells, wide
#: and combining characters); the rest of a longer one is cut.
LINE_BYTES_PER_COLUMN: Final = 32

# Text and SGR stay; every other control and escape goes (the parameters of
# a dropped escape sequence are left as the text they are).
_KEEP_SGR: Final = re.compile(rb"(\x1b\[[0-9;:]{0,64}m)|[\x00-\x1f\x7f]")
_C1: Final = re.compile("[\x80-\x9f]")
_SGR: Final = re.compile(rb"\x1b\[[0-9;:]{0,64}m")
#: The SGR sequences a line may carry over (a hostile history could pile them up).
_MAX_CARRIED: Final = 16


#: What tmux sends its client when the program cleared the whole screen. A
#: program that does (``clear``, Gemini CLI's redraws) often erases the
#: terminal's scrollback too (CSI 3 J): tmux erases its history, and passes
#: nothing of that on, so ours keeps what tmux no longer has.
CLEARS: Final = (b"\x1b[H\x1b[J", b"\x1b[2J")


class ScrollWatch:
    """Spots tmux scrolling its client by a whole screen at once, or clearing it.

    Either is when the gateway's history may no longer be tmux's: the hub
    then asks tmux (a clear split across two messages is missed; the next
    one is not).
    """

    def __init__(self, rows: int) -> None:
        self.resize(rows)

    def resize(self, rows: int) -> None:
        self.rows = rows
        self._needle = b"\n" * rows
        self._run = 0  # line feeds that ended the output so far

    def feed(self, data: bytes, start: int = 0) -> bool:
        """True if ``data[start:]`` holds (or ends) a run of ``rows`` line feeds, or a clear.

        On the hot path: no copy of ``data``, three ``find`` calls, and byte
        loops over the line feeds at its two ends only.
        """
        cleared = any(data.find(clear, start) >= 0 for clear in CLEARS)
        return self._scrolled(data, start) or cleared

    def _scrolled(self, data: bytes, start: int) -> bool:
        end, first = len(data), start
        while first < end and data[first] == 0x0A:
            first += 1
        if first == end:  # nothing but line feeds
            self._run += end - start
            return self._run >= self.rows
        hit = self._run + first - start >= self.rows or data.find(self._needle, first) >= 0
        last = end
        while data[last - 1] == 0x0A:
            last -= 1
        self._run = end - last
        return hit


def split_capture(captured: bytes, rows: int, limit: int, columns: int) -> tuple[bytes, str]:
    """``capture-pane -p -e -S -N`` output as (history, screen text).

    The history is the newest ``limit`` lines above the last ``rows``, in
    the form of :meth:`~gateway.screen.base.TerminalScreen.history` (each
    line its text and SGR, the pen reset, CRLF), cleaned of every other
    control; the screen is those last rows as plain text, trailing spaces
    cut, as :meth:`~gateway.screen.base.TerminalScreen.text` writes it.
    """
    lines = captured.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    screen, history = lines[len(lines) - rows :], lines[: max(0, len(lines) - rows)]
    cap = columns * LINE_BYTES_PER_COLUMN
    out = []
    # tmux writes changes of attributes only: a line starts in the state the
    # one before it ended in, and each of ours starts from a reset.
    carried: list[bytes] = []
    for i, line in enumerate(history):
        clean = _KEEP_SGR.sub(lambda m: m.group(1) or b"", line[:cap])
        if limit and i >= len(history) - limit:
            text = _C1.sub("", (b"".join(carried) + clean).decode("utf-8", "replace"))
            out.append(text.encode() + b"\x1b[0m\r\n")
        for sgr in _SGR.findall(clean):
            reset = sgr in (b"\x1b[m", b"\x1b[0m") or sgr.startswith(b"\x1b[0;")
            carried = [sgr] if reset else [*carried[-_MAX_CARRIED + 1 :], sgr]
    screen_text = "".join(plain(line).rstrip(" ") + "\n" for line in screen)
    screen_text += "\n" * (rows - len(screen))
    return b"".join(out), screen_text


def same_text(ours: bytes, theirs: bytes) -> bool:
    """Whether two histories (CRLF-ended lines) hold the same text, colours aside."""
    return _lines(ours) == _lines(theirs)


def _lines(history: bytes) -> list[str]:
    return [plain(line).rstrip(" ") for line in history.split(b"\r\n")[:-1]]
