"""What every screen backend shares: the interface, the limits, the mode names.

Light on purpose: no emulator is loaded here (no pyte, no pyghostty/cffi),
so :mod:`gateway.config` can check ``server.screen`` against
:data:`BACKENDS` without loading one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Final, Protocol

__all__ = [
    "BACKENDS",
    "DEFAULT_SCROLLBACK",
    "HISTORY_PIECE_ROWS",
    "JSON_MODES",
    "MAX_OSC",
    "MAX_SCROLLBACK",
    "MAX_TITLE",
    "ScreenClass",
    "TerminalScreen",
    "check_scrollback",
    "check_size",
    "scrollback_prelude",
]

#: The names ``server.screen`` accepts.
BACKENDS: Final = ("auto", "ghostty", "pyte")

#: Lines of history a screen keeps unless ``server.scrollback`` says otherwise.
DEFAULT_SCROLLBACK: Final = 10_000
#: Lines of history written at once for a joining viewer: a few milliseconds.
HISTORY_PIECE_ROWS: Final = 1000

#: The most ``server.scrollback`` accepts: a line costs a screen its columns'
#: cells (libghostty-vt keeps whole rows), and every viewer's xterm.js as much.
MAX_SCROLLBACK: Final = 100_000

#: An unterminated OSC string is kept up to this many characters; the rest is dropped.
MAX_OSC: Final = 4096
#: Window titles are cut to this many characters.
MAX_TITLE: Final = 1024

#: The modes /api/agents/{id}/screen?format=json reports: (number, is an ANSI mode).
#: Every other number is a DEC private mode (``CSI ? n h``). Both backends add
#: ``application_keypad``, which each keeps in its own way.
JSON_MODES: Final = {
    "application_cursor_keys": (1, False),
    "reverse_video": (5, False),
    "origin": (6, False),
    "autowrap": (7, False),
    "mouse_x10": (9, False),
    "cursor_blink": (12, False),
    "cursor_visible": (25, False),
    "mouse_normal": (1000, False),
    "mouse_button_event": (1002, False),
    "mouse_any_event": (1003, False),
    "focus_events": (1004, False),
    "mouse_utf8": (1005, False),
    "mouse_sgr": (1006, False),
    "mouse_urxvt": (1015, False),
    "bracketed_paste": (2004, False),
    "synchronized_output": (2026, False),
    "insert": (4, True),
    "linefeed_newline": (20, True),
}


class TerminalScreen(Protocol):
    """What the hub needs of a screen backend (the pyte reference, or libghostty-vt's)."""

    #: How many bytes to feed at once: about a millisecond of this backend's work.
    FEED_PIECE: ClassVar[int]
    offset: int

    @property
    def columns(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def cursor(self) -> tuple[int, int, bool]:
        """``(x, y, visible)``, x within the screen (a pending wrap is the last column)."""
        ...

    def feed(self, data: bytes) -> None: ...
    def resize(self, columns: int, rows: int) -> None: ...
    @property
    def scrollback_limit(self) -> int:
        """The most lines of history the screen keeps (``server.scrollback``)."""
        ...

    @property
    def scrollback(self) -> int:
        """Lines of history kept now (at most :attr:`scrollback_limit`)."""
        ...

    def snapshot(self, history: bytes = b"") -> bytes:
        """The repaint (it starts with RIS), ``history`` put in the terminal's scrollback first.

        ``history`` is what :meth:`history` returned while the screen stood still.
        """
        ...

    def history(self, limit: int | None = None) -> bytes:
        """The newest ``limit`` lines of history, oldest first, each reset and ending in CRLF."""
        ...

    def history_pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """:meth:`history` in pieces of about :data:`HISTORY_PIECE_ROWS` lines.

        Only while the screen is neither fed nor resized between pieces: the
        hub writes a joining viewer's history a piece at a time, so that 10,000
        lines do not hold the event loop for tens of milliseconds.
        """
        ...

    def text(self) -> str: ...
    def ansi(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...


def check_size(columns: int, rows: int) -> None:
    if columns < 1 or rows < 1:
        raise ValueError(f"a screen needs at least one column and one row, not {columns}x{rows}")


class ScreenClass(Protocol):
    """A backend's class: what :func:`gateway.screen.screen_backend` returns."""

    def __call__(self, columns: int, rows: int, scrollback: int = 0) -> TerminalScreen: ...


def check_scrollback(lines: int) -> None:
    if not 0 <= lines <= MAX_SCROLLBACK:
        raise ValueError(f"a screen keeps 0 to {MAX_SCROLLBACK} lines of history, not {lines}")


def scrollback_prelude(history: bytes, rows: int) -> bytes:
    """What a repaint prints right after its RIS so the terminal's scrollback is ``history``.

    The lines are printed from the top; ``rows - 1`` more line feeds after
    the last one push every one of them off a screen that is blank again (the pen is
    reset first, so the new rows are default-coloured), whatever the lines
    wrapped into on a narrower terminal. The repaint then positions
    everything absolutely, as on a terminal just reset.
    """
    if not history:
        return b""
    return history + b"\x1b[0m" + b"\r\n" * (rows - 1)
