"""The native screen backend: Ghostty's terminal core (libghostty-vt, via pyghostty).

Same interface as :class:`gateway.screen.reference.PyteScreen`, the pyte
reference, at 30-90 times its speed: the parser and the grid are Zig, so a busy
agent costs the event loop a few per cent of a core instead of all of it.
libghostty-vt was built for what a gateway needs: its VT formatter writes the
screen back as escape sequences (cells, pen, cursor, modes, scroll region, tab
stops, charsets), and its *continuation* is the escape sequence or UTF-8
character the output stopped in the middle of, so a snapshot taken anywhere
continues exactly with the raw bytes after :attr:`GhosttyScreen.offset`.

What a snapshot of this backend does not carry, and the reference does
(``tests/test_screen_backends.py`` pins each one): the main screen while the
alternate one is shown (tmux, where agents run, keeps its own), the DECSC
saved cursor, the icon name, and a sequence longer than
:data:`MAX_CONTINUATION` that the output stopped inside (its end is then
read as an unknown OSC, never printed).

pyghostty is young (0.1.x); this module reaches past its small Pythonic layer
to the generated C declarations, so its version is pinned below 0.2.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any, ClassVar, Final

from ..errors import EmulatorError
from .base import (
    HISTORY_PIECE_ROWS,
    JSON_MODES,
    MAX_OSC,
    MAX_TITLE,
    check_scrollback,
    check_size,
    scrollback_prelude,
)

try:
    from pyghostty._ffi import ffi, lib, union_fn
except (ImportError, OSError) as error:  # no wheel for this platform, or no library
    ffi = lib = None
    UNAVAILABLE: str | None = f"pyghostty cannot be loaded: {error}"
else:
    UNAVAILABLE = None
    # A C function taking a union by value, which cffi's ABI mode cannot call
    # directly; pyghostty declares a layout-identical twin.
    _grid_ref = union_fn(
        "ghostty_terminal_grid_ref",
        "GhosttyResult(*)(GhosttyTerminal, GhosttyPointS, GhosttyGridRef*)",
    )

__all__ = ["MAX_CONTINUATION", "UNAVAILABLE", "GhosttyScreen"]

#: The longest unfinished sequence a snapshot continues exactly.
MAX_CONTINUATION: Final = MAX_OSC + 64

_DECNKM: Final = 66  # the keypad mode ESC = / ESC > set; ghostty keeps it as a mode


def _data(name: str) -> int:
    return int(getattr(lib, f"GHOSTTY_TERMINAL_DATA_{name}"))


# More cells than one libghostty-vt page holds (about 46,000, measured at
# 20 to 1000 columns): the history's slack, see GhosttyScreen._size_history.
HISTORY_PAGE_CELLS: Final = 50_000
# A cell takes 8 bytes in a page, and its row, style and grapheme tables a
# few more; 32 is room for coloured text and a bound for hostile output.
HISTORY_CELL_BYTES: Final = 32


class GhosttyScreen:
    """One agent's terminal in libghostty-vt: feed it output, read or repaint it."""

    # libghostty-vt parses 50-150 MB/s: 64 KiB is about a millisecond.
    FEED_PIECE: ClassVar[int] = 64 * 1024

    def __init__(self, columns: int = 80, rows: int = 24, scrollback: int = 0) -> None:
        if lib is None:
            raise RuntimeError(UNAVAILABLE)
        check_size(columns, rows)
        check_scrollback(scrollback)
        handle = ffi.new("GhosttyTerminal*")
        _check(lib.ghostty_terminal_new(ffi.NULL, handle, columns, rows), "terminal_new")
        self._terminal = handle[0]
        weakref.finalize(self, lib.ghostty_terminal_free, self._terminal)
        self._scrollback_limit = scrollback
        self._set("CONTINUATION_MAX_BYTES", ffi.new("size_t*", MAX_CONTINUATION))
        # No WRITE_PTY callback is ever set: queries the agent sends get no answer.
        self._columns = columns
        self._rows = rows
        self._size_history()
        #: Bytes fed so far: the stream position :meth:`snapshot` is exact for.
        self.offset = 0

    # --- the TerminalScreen interface ----------------------------------------

    @property
    def columns(self) -> int:
        return self._columns

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def title(self) -> str:
        """The window title the agent set with OSC 0 or OSC 2 (cut to MAX_TITLE)."""
        value = ffi.new("GhosttyString*")
        if lib.ghostty_terminal_get(self._terminal, _data("TITLE"), value) or not value.len:
            return ""
        text = bytes(ffi.buffer(value.ptr, value.len)).decode("utf-8", "replace")
        return text[:MAX_TITLE]

    @property
    def cursor(self) -> tuple[int, int, bool]:
        """``(x, y, visible)``; a cursor waiting to wrap is in the last column."""
        x = min(self._get("CURSOR_X", "uint16_t"), self._columns - 1)
        return x, self._get("CURSOR_Y", "uint16_t"), bool(self._get("CURSOR_VISIBLE", "bool"))

    def feed(self, data: bytes) -> None:
        """Emulate ``data``; split anywhere, never raises, never answers."""
        self.offset += len(data)
        lib.ghostty_terminal_vt_write(self._terminal, data, len(data))

    def resize(self, columns: int, rows: int) -> None:
        check_size(columns, rows)
        _check(lib.ghostty_terminal_resize(self._terminal, columns, rows, 8, 16), "resize")
        self._columns, self._rows = columns, rows
        self._size_history()

    @property
    def scrollback_limit(self) -> int:
        """The most lines of history kept (``server.scrollback``)."""
        return self._scrollback_limit

    @property
    def scrollback(self) -> int:
        """Lines of history kept, as viewers get them (cut to the limit)."""
        if not self._scrollback_limit:
            return 0
        return min(self._get("SCROLLBACK_ROWS", "size_t"), self._scrollback_limit)

    def snapshot(self, history: bytes = b"") -> bytes:
        """Bytes that repaint any terminal to this state (they start with RIS).

        ``history`` (from :meth:`history`) comes first, so that it lands in
        the terminal's own scrollback.
        """
        parts = [
            b"\x1bc",
            scrollback_prelude(history, self._rows),
            self._format(lib.GHOSTTY_FORMATTER_FORMAT_VT, extras=True),
        ]
        title = self.title
        if title:
            parts.append(f"\x1b]2;{_printable(title)}\x07".encode())
        parts.append(self._continuation())
        return b"".join(parts)

    def history(self, limit: int | None = None) -> bytes:
        """The newest ``limit`` lines of history (None: all kept), oldest first.

        Each line is its cells with SGR, the pen reset at its end, and CRLF:
        ``capture-pane -p -e -S -`` without the screen, as libghostty-vt
        writes colours.
        """
        return b"".join(self.history_pieces(limit))

    def history_pieces(self, limit: int | None = None) -> Iterator[bytes]:
        """:meth:`history`, :data:`HISTORY_PIECE_ROWS` lines at a time (one formatter run each)."""
        kept = self.scrollback
        count = kept if limit is None else min(limit, kept)
        # Row numbers count from the oldest line libghostty-vt keeps, which
        # may be more than the limit (see _size_history).
        first = self._get("SCROLLBACK_ROWS", "size_t") - count
        guess = HISTORY_PIECE_ROWS * self._columns * 2
        for start in range(first, first + count, HISTORY_PIECE_ROWS):
            rows = min(HISTORY_PIECE_ROWS, first + count - start)
            selection = _new_sized("GhosttySelection")
            selection.start = self._cell(0, start, lib.GHOSTTY_POINT_TAG_HISTORY)
            selection.end = self._cell(
                self._columns - 1, start + rows - 1, lib.GHOSTTY_POINT_TAG_HISTORY
            )
            lines = self._format(
                lib.GHOSTTY_FORMATTER_FORMAT_VT, extras=False, selection=selection, guess=guess
            )
            # The next piece is likely as long; a longer one costs a second run.
            guess = max(guess, len(lines) + len(lines) // 4)
            # The formatter trims blank lines at the end: they are history too.
            yield lines + b"\r\n" * (rows - lines.count(b"\r\n"))

    def text(self) -> str:
        """The screen as ``tmux capture-pane -p`` prints it: every row, trailing spaces cut."""
        plain = self._format(lib.GHOSTTY_FORMATTER_FORMAT_PLAIN, extras=False)
        return _rows_of(plain.decode("utf-8", "replace"), self._rows)

    def ansi(self) -> str:
        """The screen as text with SGR changes, a line per row (``capture-pane -p -e``)."""
        vt = self._format(lib.GHOSTTY_FORMATTER_FORMAT_VT, extras=False)
        return _rows_of(vt.decode("utf-8", "replace").replace("\r\n", "\n"), self._rows)

    def to_json(self) -> dict[str, Any]:
        """The screen for the HTTP API: size, title, cursor, modes and text rows."""
        modes = {name: self._mode(*mode) for name, mode in JSON_MODES.items()}
        modes["application_keypad"] = self._mode(_DECNKM)
        x, y, visible = self.cursor
        return {
            "columns": self._columns,
            "rows": self._rows,
            "title": self.title,
            "cursor": {"x": x, "y": y, "visible": visible},
            "modes": modes,
            "alternate_screen": self._get("ACTIVE_SCREEN", "int")
            == lib.GHOSTTY_TERMINAL_SCREEN_ALTERNATE,
            "lines": self.text().splitlines(),
        }

    # --- libghostty-vt -------------------------------------------------------

    def _size_history(self) -> None:
        """Let libghostty-vt keep at least the limit's lines at this width.

        It drops history a whole page at a time (a page holds about 46,000
        cells: 577 rows at 80 columns), so it may hold a page less than its
        line limit: asking for a page more keeps at least the limit, and
        history() cuts to it. Its byte limit (10,000 bytes unless set, under
        one page) would keep one page whatever the lines; it is set to what
        those rows take at :data:`HISTORY_CELL_BYTES` a cell, so output
        heavy with graphemes or styles drops lines rather than growing past it.
        """
        lines = self._scrollback_limit
        if lines:
            lines += HISTORY_PAGE_CELLS // self._columns + 1
        self._set("SCROLLBACK_MAX_LINES", ffi.new("size_t*", lines))
        cap = lines * self._columns * HISTORY_CELL_BYTES
        self._set("SCROLLBACK_MAX_BYTES", ffi.new("size_t*", cap))

    def _set(self, option: str, value: Any) -> None:
        option_id = getattr(lib, f"GHOSTTY_TERMINAL_OPT_{option}")
        _check(lib.ghostty_terminal_set(self._terminal, option_id, value), option)

    def _get(self, name: str, ctype: str) -> int:
        out = ffi.new(f"{ctype}*")
        _check(lib.ghostty_terminal_get(self._terminal, _data(name), out), name)
        return int(out[0])

    def _mode(self, number: int, ansi: bool = False) -> bool:
        config = ffi.new("GhosttyTerminalModeConfig*")
        config.mode = (number & 0x7FFF) | (ansi << 15)  # ghostty_mode_new, a C inline
        _check(lib.ghostty_terminal_get(self._terminal, _data("MODE"), config), "mode")
        return bool(config.value)

    def _format(self, emit: int, *, extras: bool, selection: Any = None, guess: int = 0) -> bytes:
        options = _new_sized("GhosttyFormatterTerminalOptions")
        options.emit = emit
        options.unwrap = False
        options.trim = not extras
        if selection is None:
            # The active area only: the history is written apart (history()),
            # before the repaint, as lines for the viewer's scrollback.
            selection = _new_sized("GhosttySelection")
            selection.start = self._cell(0, 0)
            selection.end = self._cell(self._columns - 1, self._rows - 1)
        options.selection = selection
        if extras:
            # Everything a repaint needs but the palette: a palette the agent
            # never changed would overwrite the viewer's own theme.
            extra = options.extra
            extra.modes = extra.scrolling_region = extra.tabstops = True
            extra.pwd = extra.keyboard = True
            screen = extra.screen
            screen.cursor = screen.style = screen.hyperlink = True
            screen.protection = screen.kitty_keyboard = screen.charsets = True
        formatter = ffi.new("GhosttyFormatter*")
        _check(
            lib.ghostty_formatter_terminal_new(ffi.NULL, formatter, self._terminal, options[0]),
            "formatter",
        )
        try:
            return _read(
                lambda buf, size, n: lib.ghostty_formatter_format_buf(formatter[0], buf, size, n),
                guess,
            )
        finally:
            lib.ghostty_formatter_free(formatter[0])

    def _cell(self, x: int, y: int, tag: Any = None) -> Any:
        point = ffi.new("GhosttyPointS*")
        point.tag = lib.GHOSTTY_POINT_TAG_ACTIVE if tag is None else tag
        point.value.x, point.value.y = x, y
        ref = _new_sized("GhosttyGridRef")
        _check(_grid_ref(self._terminal, point[0], ref), "grid_ref")
        return ref[0]

    def _continuation(self) -> bytes:
        """The unfinished sequence or character the output stopped in, as received."""
        if self._get("VT_GROUND", "bool"):
            return b""
        try:
            return _read(
                lambda buf, size, n: lib.ghostty_terminal_continuation_buf(
                    self._terminal, buf, size, n
                )
            )
        except EmulatorError:
            # Longer than MAX_CONTINUATION: start a string the viewer ignores,
            # so the rest of it is swallowed there too rather than printed.
            return b"\x1b]"


def _uncleared(ctype: str, size: int) -> Any:
    """``ffi.new`` without zeroing: the buffer is written before it is read
    (megabytes for a history)."""
    return _ALLOCATE(ctype, size)


_ALLOCATE: Any = ffi.new_allocator(should_clear_after_alloc=False) if lib is not None else None


def _check(result: int, what: str) -> None:
    if result:
        raise EmulatorError(f"libghostty-vt: {what} failed ({result})")


def _new_sized(ctype: str) -> Any:
    """``ffi.new`` a struct whose ``size`` fields (nested ones too) say how big it is."""
    pointer = ffi.new(f"{ctype}*")
    _set_sizes(pointer)
    return pointer


def _set_sizes(pointer: Any) -> None:
    kind = ffi.typeof(pointer).item
    for name, field in kind.fields:
        if name == "size":
            pointer.size = ffi.sizeof(kind)
        elif field.type.kind == "struct":
            _set_sizes(ffi.addressof(pointer[0], name))


def _read(call: Any, guess: int = 0) -> bytes:
    """What one of libghostty-vt's ``*_buf`` functions writes.

    With a ``guess`` of the size, one call usually does: asking the size
    first formats everything twice, which is half the cost of a history.
    """
    needed = ffi.new("size_t*")
    if guess:
        buffer = _uncleared("uint8_t[]", guess)
        result = call(buffer, guess, needed)
        if result == 0:
            return bytes(ffi.buffer(buffer, needed[0]))
        if result != lib.GHOSTTY_OUT_OF_SPACE:
            _check(result, "format")
    else:
        call(ffi.NULL, 0, needed)
    buffer = _uncleared("uint8_t[]", max(needed[0], 1))
    _check(call(buffer, len(buffer), needed), "format")
    return bytes(ffi.buffer(buffer, needed[0]))


def _rows_of(text: str, rows: int) -> str:
    """Exactly ``rows`` lines, trailing spaces cut, each ending in a newline."""
    lines = text.split("\n")[:rows]
    lines += [""] * (rows - len(lines))
    return "".join(line.rstrip(" ") + "\n" for line in lines)


_CONTROLS: Final = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)])


def _printable(text: str) -> str:
    """``text`` without the control characters that would end an OSC string."""
    return text.translate(_CONTROLS)
