"""The reference screen backend: pyte underneath, an exact repaint on top.

The hub feeds every byte an agent prints into a :class:`PyteScreen` and,
whenever a viewer joins, sends :meth:`PyteScreen.snapshot`: bytes that repaint
any terminal to exactly the state the screen is in at
:attr:`PyteScreen.offset`, so the viewer can follow the live output from that
offset on. :meth:`PyteScreen.state` lists everything a repaint reproduces; the
tests hold ``A.state() == B.state()`` after ``B.feed(A.snapshot())``.

pyte's ``Screen`` keeps the character grid. Two things around it are ours:
the parser (:mod:`.parser`), bounded, which never answers the agent, and the
behaviour where pyte and xterm disagree visibly for a viewer running xterm.js
(:mod:`.emulator`). :mod:`.cells` holds the cells and their SGR, and
:mod:`.painter` writes the repaint.

A snapshot starts with RIS, so it also repairs a terminal that saw garbage, and
ends with whatever escape sequence or UTF-8 character the output was in the
middle of at :attr:`PyteScreen.offset`, so the raw bytes after the offset
continue it on the viewer exactly as they do here.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from .base import (
    HISTORY_PIECE_ROWS,
    JSON_MODES,
    check_scrollback,
    check_size,
    scrollback_prelude,
)
from .cells import BLANK, Cell, tmux_codes
from .emulator import Buffer, Emulator, SavedCursor, cell_rows, private_mode
from .painter import Painter
from .parser import Parser

__all__ = ["PyteScreen", "ScreenState"]

log = logging.getLogger(__name__)

# base.JSON_MODES as bits of pyte's mode set (see emulator.private_mode).
_JSON_MODES: Final = {
    name: number if ansi else private_mode(number) for name, (number, ansi) in JSON_MODES.items()
}


@dataclass(frozen=True)
class ScreenState:
    """Everything a snapshot reproduces: equal states look and behave the same.

    ``lines`` are the shown screen's cells; the ``main_*`` fields hold the main
    screen while the alternate one is shown. ``pending`` is the escape sequence
    and ``pending_bytes`` the UTF-8 character the output stopped in the middle of.
    """

    columns: int
    rows: int
    lines: tuple[tuple[Cell, ...], ...]
    cursor: tuple[int, int]
    cursor_hidden: bool
    pen: Cell
    margins: tuple[int, int] | None
    modes: frozenset[int]
    saved_cursor: SavedCursor
    charsets: tuple[str, str, int]
    tabstops: frozenset[int]
    keypad_application: bool
    cursor_style: int
    title: str
    icon_name: str
    alternate_screen: bool
    main_lines: tuple[tuple[Cell, ...], ...] | None
    main_margins: tuple[int, int] | None
    main_saved_cursor: SavedCursor | None
    pending: tuple[object, ...]
    pending_bytes: bytes


class PyteScreen:
    """One agent's terminal: feed it output, read it as text, or repaint it exactly.

    Sans-I/O and synchronous; every method is cheap except :meth:`feed`, which
    costs about a microsecond per byte.
    """

    FEED_PIECE: ClassVar[int] = 4096

    def __init__(self, columns: int = 80, rows: int = 24, scrollback: int = 0) -> None:
        check_size(columns, rows)
        check_scrollback(scrollback)
        self._screen = Emulator(columns, rows, scrollback)
        self._parser = Parser(self._screen)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._failed = False
        #: Bytes fed so far: the stream position :meth:`snapshot` is exact for.
        self.offset = 0

    @property
    def columns(self) -> int:
        """Width in cells."""
        return self._screen.columns

    @property
    def rows(self) -> int:
        """Height in cells."""
        return self._screen.lines

    @property
    def title(self) -> str:
        """The window title the agent set with OSC 0 or OSC 2 (cut to :data:`~.base.MAX_TITLE`)."""
        return self._screen.title

    def feed(self, data: bytes) -> None:
        """Emulate ``data``, the next bytes of output; never raises, never answers.

        UTF-8 characters and escape sequences may be split anywhere between calls.
        """
        self.offset += len(data)
        try:
            text = self._decoder.decode(data)
            if text:
                self._parser.feed(text)
        except Exception:
            # Our bug, not the agent's: keep the screen usable and say so once.
            if not self._failed:
                self._failed = True
                log.debug("terminal emulation failed; parser reset", exc_info=True)
            self._parser.reset()
            self._decoder.reset()

    def resize(self, columns: int, rows: int) -> None:
        """Change the size as a terminal would (the caller bounds it)."""
        check_size(columns, rows)
        self._screen.resize(lines=rows, columns=columns)

    @property
    def scrollback_limit(self) -> int:
        """The most lines of history kept (``server.scrollback``)."""
        return self._screen.history.limit

    @property
    def scrollback(self) -> int:
        """Lines of history kept."""
        return len(self._screen.history)

    def snapshot(self, history: bytes = b"") -> bytes:
        """Bytes that repaint any terminal to exactly this state (they start with RIS).

        ``history`` (from :meth:`history`) comes right after the RIS, so that
        it lands in the terminal's own scrollback.
        """
        painter = Painter(self._screen)
        painter.paint_all(self._parser.pending())
        pending_bytes, _ = self._decoder.getstate()
        repaint = painter.text().encode("utf-8", "replace")
        prelude = scrollback_prelude(history, self._screen.lines)
        return repaint[:2] + prelude + repaint[2:] + pending_bytes

    def history(self, limit: int | None = None) -> bytes:
        """The newest ``limit`` lines of history (None: all kept), oldest first.

        Each line is its cells with SGR, the pen reset at its end, and CRLF,
        in the width it had when it scrolled off (no reflow).
        """
        return b"".join(self.history_pieces(limit))

    def history_pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """:meth:`history`, :data:`HISTORY_PIECE_ROWS` lines at a time."""
        lines = self._screen.history.lines(limit)
        for start in range(0, len(lines), HISTORY_PIECE_ROWS):
            piece = lines[start : start + HISTORY_PIECE_ROWS]
            yield "".join(line + "\r\n" for line in piece).encode("utf-8", "replace")

    @property
    def cursor(self) -> tuple[int, int, bool]:
        """``(x, y, visible)``; a cursor waiting to wrap is drawn in the last column."""
        cursor = self._screen.cursor
        return min(cursor.x, self._screen.columns - 1), cursor.y, not cursor.hidden

    def text(self) -> str:
        """The screen as ``tmux capture-pane -p`` prints it: every row, trailing spaces cut."""
        return "".join(_row_text(row).rstrip(" ") + "\n" for row in self._rows())

    def ansi(self) -> str:
        """The screen as ``tmux capture-pane -p -e`` prints it: text with SGR changes."""
        out: list[str] = []
        last = BLANK
        for row in self._rows():
            end = len(row)
            while end and row[end - 1] == BLANK:
                end -= 1
            line: list[str] = []
            for cell in row[:end]:
                if cell.data:
                    line.append(tmux_codes(last, cell))
                    line.append(cell.data)
                    last = cell
            out.append("".join(line).rstrip(" ") + "\n")
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        """The screen for the HTTP API: size, title, cursor, modes and text rows."""
        screen = self._screen
        x, y, visible = self.cursor
        modes = {name: bit in screen.mode for name, bit in _JSON_MODES.items()}
        modes["application_keypad"] = screen.keypad_application
        return {
            "columns": screen.columns,
            "rows": screen.lines,
            "title": screen.title,
            "cursor": {"x": x, "y": y, "visible": visible},
            "modes": modes,
            "alternate_screen": screen.main is not None,
            "lines": [_row_text(row).rstrip(" ") for row in self._rows()],
        }

    def state(self) -> ScreenState:
        """Everything :meth:`snapshot` reproduces, comparable with ``==``."""
        screen = self._screen
        main = screen.main
        return ScreenState(
            columns=screen.columns,
            rows=screen.lines,
            lines=tuple(self._rows()),
            cursor=(screen.cursor.x, screen.cursor.y),
            cursor_hidden=screen.cursor.hidden,
            pen=screen.cursor.attrs,
            margins=screen.margins,
            modes=frozenset(screen.mode),
            saved_cursor=screen.saved,
            charsets=(*screen.charsets, screen.shift),
            tabstops=frozenset(screen.tabstops),
            keypad_application=screen.keypad_application,
            cursor_style=screen.cursor_style,
            title=screen.title,
            icon_name=screen.icon_name,
            alternate_screen=main is not None,
            main_lines=None if main is None else tuple(self._rows(main.buffer)),
            main_margins=None if main is None else main.margins,
            main_saved_cursor=None if main is None else main.saved,
            pending=tuple(self._parser.pending()),
            pending_bytes=self._decoder.getstate()[0],
        )

    def _rows(self, buffer: Buffer | None = None) -> Iterator[tuple[Cell, ...]]:
        return cell_rows(self._screen, self._screen.buffer if buffer is None else buffer)


def _row_text(row: tuple[Cell, ...]) -> str:
    return "".join(cell.data for cell in row)
