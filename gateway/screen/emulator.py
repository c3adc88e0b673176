"""pyte's screen with the xterm behaviour a viewer's xterm.js shows.

pyte's ``Screen`` keeps the character grid; :class:`Emulator` changes it
where pyte and xterm disagree visibly for a viewer running xterm.js: the
alternate screen (pyte has none), wide and zero-width characters (pyte drops
the rest of a text run after a variation selector or a zero-width joiner,
and leaves half characters behind), erasing with the background colour only,
DECSCNM as a display mode rather than a rewrite of every cell, the
pending-wrap state, line feeds below the scroll region, SU/SD/REP,
DECSC/DECRC, and colours and attributes (kept as :class:`~.cells.Cell`).
It never answers the agent: :class:`~.parser.Parser` only calls its methods.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import pyte
import pyte.screens

from .cells import BLANK, Cell
from .history import History

__all__ = [
    "ANSI_MODES",
    "DECOM",
    "DEFAULT_MODES",
    "DEFAULT_SAVED",
    "Buffer",
    "Emulator",
    "Line",
    "SavedCursor",
    "cell_rows",
    "private_mode",
]

# Zero-width characters one cell accepts (combining marks, variation selectors).
_MAX_CELL_CHARS: Final = 32

_wcwidth = pyte.screens.wcwidth  # lru-cached by pyte


# Half the cost of Cell(...), which matters once per character printed.
_new_cell: Final = tuple.__new__


class SavedCursor(NamedTuple):
    """What DECSC saves (one slot per screen buffer, as in xterm)."""

    x: int
    y: int
    pen: Cell
    g0: str
    g1: str
    shift: int
    origin: bool


DEFAULT_SAVED: Final = SavedCursor(0, 0, BLANK, "B", "B", 0, False)

# A row of cells: pyte's StaticDefaultDict, where missing columns read as the
# row's default cell (blank, or blank in a background colour after an erase).
Line = dict[int, Cell]
Buffer = dict[int, Line]


def _new_line(fill: Cell) -> Line:
    return pyte.screens.StaticDefaultDict[int, Cell](fill)


def _new_buffer() -> Buffer:
    return defaultdict(lambda: _new_line(BLANK))


class _MainScreen(NamedTuple):
    """The main screen's own state, put aside while the alternate screen is shown."""

    buffer: Buffer
    margins: tuple[int, int] | None
    saved: SavedCursor


class _Cursor:
    """The cursor as pyte's methods use it; ``x == columns`` is the pending-wrap state."""

    __slots__ = ("attrs", "hidden", "x", "y")

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.attrs = BLANK
        self.hidden = False


# pyte keeps DEC private modes shifted left by 5 in the same set as ANSI modes.
def private_mode(number: int) -> int:
    return number << 5


_IRM: Final = 4
_LNM: Final = 20
ANSI_MODES: Final = frozenset({_IRM, _LNM})  # the ANSI modes xterm.js knows
DECOM: Final = private_mode(6)
_DECAWM: Final = private_mode(7)
_DECTCEM: Final = private_mode(25)
DEFAULT_MODES: Final = frozenset({_DECAWM, _DECTCEM})
_ALTERNATE_SCREEN_MODES: Final = frozenset({47, 1047, 1049})

# DEC special graphics (ESC ( 0), as xterm.js draws it.
_DEC_GRAPHICS: Final = str.maketrans(
    "`abcdefghijklmnopqrstuvwxyz{|}~",
    "\u25c6\u2592\u2409\u240c\u240d\u240a\u00b0\u00b1\u2424\u240b\u2518\u2510\u250c\u2514"
    "\u253c\u23ba\u23bb\u2500\u23bc\u23bd\u251c\u2524\u2534\u252c\u2502\u2264\u2265\u03c0"
    "\u2260\u00a3\u00b7",
)


def _is_wide(cell: Cell) -> bool:
    return bool(cell.data) and _wcwidth(cell.data[0]) == 2


def _repair(line: Line, x: int, columns: int) -> None:
    """Blank what is left of a wide character an edit split at column ``x``.

    xterm.js and tmux never show half a wide character; keeping every wide
    character next to its right half also lets a repaint print them whole.
    """
    if 0 < x < columns:
        left, right = line[x - 1], line[x]
        if right.data == "":
            if not _is_wide(left):
                line[x] = right._replace(data=" ")
        elif _is_wide(left):
            line[x - 1] = left._replace(data=" ")
    elif x == columns > 0:
        left = line[x - 1]
        if _is_wide(left):
            line[x - 1] = left._replace(data=" ")
    elif x == 0 < columns and line[0].data == "":
        line[0] = line[0]._replace(data=" ")


class Emulator(pyte.Screen):
    """pyte's screen with the xterm behaviour a viewer's xterm.js shows.

    Methods take the parameters of their control function, already parsed;
    a zero count means one, as on the wire.
    """

    # Richer than pyte's own types, and used the same way by the pyte methods
    # kept (tab, backspace, cursor_forward, cursor_to_column, ...).
    buffer: Buffer  # type: ignore[assignment]  # of Cell, not pyte's Char
    cursor: _Cursor  # type: ignore[assignment]  # its attrs are a Cell
    margins: tuple[int, int] | None  # type: ignore[assignment]  # a plain pair

    def __init__(self, columns: int, rows: int, scrollback: int = 0) -> None:
        #: Rows scrolled off the top of the main screen (the alternate one has none).
        self.history = History(scrollback)
        super().__init__(columns, rows)  # calls reset()

    @property
    def default_char(self) -> Cell:  # type: ignore[override]  # a Cell, not a Char
        # pyte reverses every cell for DECSCNM; here it is a display mode only.
        return BLANK

    def reset(self) -> None:
        """RIS: power-on state, title, both screens and the history included."""
        self.history.clear()
        self.buffer = _new_buffer()
        self.margins = None
        self.mode = set(DEFAULT_MODES)
        self.title = ""
        self.icon_name = ""
        self.tabstops = set(range(8, self.columns, 8))
        self.cursor = _Cursor()
        self.charsets = ("B", "B")
        self.shift = 0
        self.saved = DEFAULT_SAVED
        self.main: _MainScreen | None = None  # set while the alternate screen is shown
        self.keypad_application = False
        self.cursor_style = 0
        self.last_char = ""  # what REP repeats; only text right before REP sets it

    def soft_reset(self) -> None:
        """DECSTR, as xterm.js does it: modes, margins, pen and saved cursor."""
        self.mode -= {
            DECOM,
            _IRM,
            private_mode(1),
            private_mode(45),
            private_mode(1004),
            private_mode(2004),
        }
        self.mode |= DEFAULT_MODES
        self.cursor.hidden = False
        self.keypad_application = False
        self.margins = None
        self.cursor.attrs = BLANK
        self.charsets = ("B", "B")
        self.shift = 0
        self.saved = DEFAULT_SAVED

    def write_process_input(self, data: str) -> None:
        """Never answer the agent: a gateway's screen is not the agent's terminal."""

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        """Resize like xterm.js: rows below the cursor go first, then rows at the top."""
        old_columns, old_rows = self.columns, self.lines
        rows, columns = lines or old_rows, columns or old_columns
        if (columns, rows) == (old_columns, old_rows):
            return
        cursor = self.cursor
        excess = old_rows - rows
        drop_top = max(0, excess - max(0, old_rows - 1 - cursor.y))
        self._keep_history(drop_top)  # as xterm.js and libghostty-vt do
        self.buffer = self._resized(self.buffer, drop_top, columns, rows)
        if self.main is not None:
            self.main = _MainScreen(
                self._resized(self.main.buffer, drop_top, columns, rows),
                None,
                self._clamped(self.main.saved, columns, rows),
            )
        self.saved = self._clamped(self.saved, columns, rows)
        self.columns, self.lines = columns, rows
        self.margins = None
        cursor.y = min(max(0, cursor.y - drop_top), rows - 1)
        if columns != old_columns:
            cursor.x = min(cursor.x, columns - 1)
        self.tabstops = {t for t in self.tabstops if t < columns}
        self.tabstops |= {t for t in range(8, columns, 8) if t >= old_columns}

    def _resized(self, buffer: Buffer, drop_top: int, columns: int, rows: int) -> Buffer:
        resized = _new_buffer()
        for y, line in buffer.items():
            if 0 <= y - drop_top < rows:
                for x in [x for x in line if x >= columns]:
                    del line[x]
                _repair(line, columns, columns)
                resized[y - drop_top] = line
        return resized

    def _clamped(self, saved: SavedCursor, columns: int, rows: int) -> SavedCursor:
        x = saved.x if columns == self.columns else min(saved.x, columns - 1)
        return saved._replace(x=x, y=min(saved.y, rows - 1))

    # --- text ---------------------------------------------------------------

    def draw(self, text: str) -> None:
        """Print text at the cursor, wrapping, inserting and combining as xterm does."""
        if self.charsets[self.shift] == "0":
            text = text.translate(_DEC_GRAPHICS)
        insert = _IRM in self.mode
        if not insert and text.isascii():
            self._draw_ascii(text)
            return
        cursor = self.cursor
        columns = self.columns
        autowrap = _DECAWM in self.mode
        pen = cursor.attrs
        attrs = pen[1:]
        stub = pen._replace(data="")
        line = self.buffer[cursor.y]
        x = cursor.x
        last = ""
        for char in text:
            width = _wcwidth(char)
            if width <= 0:
                if width == 0 and x > 0:
                    self._combine(line, x, char)
                continue
            if x + width > columns:
                if width > columns:
                    continue
                if autowrap:
                    self.index()
                    line = self.buffer[cursor.y]
                    x = 0
                elif width == 2:
                    continue  # xterm.js drops a wide character that cannot fit
                else:
                    x = columns - 1
            if insert:
                self._shift_right(line, x, width, BLANK)
            elif x and line[x].data == "" and _is_wide(line[x - 1]):
                line[x - 1] = line[x - 1]._replace(data=" ")
            line[x] = _new_cell(Cell, (char, *attrs))
            if width == 2:
                line[x + 1] = stub
            x += width
            if x < columns and line[x].data == "":
                line[x] = line[x]._replace(data=" ")
            last = char
        cursor.x = x
        if last:
            self.last_char = last

    def _draw_ascii(self, text: str) -> None:
        """:meth:`draw` for the common case, a line's worth of cells at a time.

        Printable ASCII is one cell per character, so only the two ends of each
        run can split a wide character.
        """
        cursor = self.cursor
        columns = self.columns
        autowrap = _DECAWM in self.mode
        attrs = cursor.attrs[1:]
        line = self.buffer[cursor.y]
        x = cursor.x
        start, end = 0, len(text)
        while start < end:
            if x >= columns:
                if not autowrap:  # each character overwrites the last column
                    start, x = end - 1, columns - 1
                else:
                    self.index()
                    line = self.buffer[cursor.y]
                    x = 0
            stop = min(end, start + columns - x)
            if x and line[x].data == "" and _is_wide(line[x - 1]):
                line[x - 1] = line[x - 1]._replace(data=" ")
            cells = [_new_cell(Cell, (char, *attrs)) for char in text[start:stop]]
            line.update(zip(range(x, x + len(cells)), cells, strict=True))
            x += len(cells)
            start = stop
            if x < columns and line[x].data == "":
                line[x] = line[x]._replace(data=" ")
        cursor.x = x
        self.last_char = text[-1]

    def _combine(self, line: Line, x: int, char: str) -> None:
        """Add a zero-width character to the cell before the cursor."""
        if line[x - 1].data == "" and x > 1:
            x -= 1
        cell = line[x - 1]
        if cell.data and len(cell.data) < _MAX_CELL_CHARS:
            line[x - 1] = cell._replace(data=cell.data + char)

    def repeat(self, count: int) -> None:
        """REP: print the character printed just before, ``count`` times."""
        if self.last_char:
            self.draw(self.last_char * min(count or 1, self.columns * self.lines))

    def alignment_display(self) -> None:
        """DECALN: fill the screen with E, reset the margins, home the cursor."""
        self.buffer = _new_buffer()
        for y in range(self.lines):
            self.buffer[y] = _new_line(Cell("E"))
        self.margins = None
        self.cursor.x = self.cursor.y = 0

    # --- erasing and moving cells -------------------------------------------

    def _settle(self) -> None:
        # Everything but printing ends the pending wrap (xterm's restrictCursor).
        if self.cursor.x >= self.columns:
            self.cursor.x = self.columns - 1

    def _fill(self) -> Cell:
        """The cell an erase leaves: blank, in the pen's background colour (BCE)."""
        bg = self.cursor.attrs.bg
        return BLANK if bg == "default" else BLANK._replace(bg=bg)

    def _blank_lines(self, start: int, end: int) -> None:
        fill = self._fill()
        for y in range(start, end):
            if fill == BLANK:
                self.buffer.pop(y, None)
            else:
                self.buffer[y] = _new_line(fill)

    def _blank_cells(self, start: int, end: int) -> None:
        line = self.buffer[self.cursor.y]
        fill = self._fill()
        for x in range(start, end):
            line[x] = fill
        _repair(line, start, self.columns)
        _repair(line, end, self.columns)

    def _shift_right(self, line: Line, x: int, count: int, fill: Cell) -> None:
        columns = self.columns
        count = min(count, columns - x)
        for i in range(columns - 1, x + count - 1, -1):
            line[i] = line[i - count]
        for i in range(x, x + count):
            line[i] = fill
        _repair(line, x, columns)
        _repair(line, x + count, columns)
        _repair(line, columns, columns)

    def insert_characters(self, count: int | None = None) -> None:
        """ICH: insert blanks at the cursor; cells pushed past the edge are lost."""
        self._settle()
        x = self.cursor.x
        self._shift_right(self.buffer[self.cursor.y], x, count or 1, self._fill())

    def delete_characters(self, count: int | None = None) -> None:
        """DCH: delete cells at the cursor, pulling the rest of the line left."""
        self._settle()
        columns = self.columns
        x = self.cursor.x
        line = self.buffer[self.cursor.y]
        count = min(count or 1, columns - x)
        for i in range(x, columns - count):
            line[i] = line[i + count]
        fill = self._fill()
        for i in range(columns - count, columns):
            line[i] = fill
        _repair(line, x, columns)
        _repair(line, columns - count, columns)

    def erase_characters(self, count: int | None = None) -> None:
        """ECH: blank cells from the cursor on."""
        self._settle()
        x = self.cursor.x
        self._blank_cells(x, min(x + (count or 1), self.columns))

    def erase_in_line(self, how: int = 0, private: bool = False) -> None:
        """EL: erase to the end (0), from the start (1) or all (2) of the line."""
        self._settle()
        x, y = self.cursor.x, self.cursor.y
        if how == 0:
            self._blank_cells(x, self.columns)
        elif how == 1:
            self._blank_cells(0, x + 1)
        elif how == 2:
            self._blank_lines(y, y + 1)

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        """ED: erase below (0), above (1), all (2), or the history (3)."""
        self._settle()
        y = self.cursor.y
        if how == 0:
            self.erase_in_line(0)
            self._blank_lines(y + 1, self.lines)
        elif how == 1:
            self._blank_lines(0, y)
            self.erase_in_line(1)
        elif how == 2:
            self._blank_lines(0, self.lines)
        elif how == 3:
            self.history.clear()

    def _scroll(self, top: int, bottom: int, count: int) -> None:
        """Move rows top..bottom up by ``count`` (down if negative); new rows are blank."""
        height = bottom - top + 1
        count = max(-height, min(count, height))
        buffer = self.buffer
        moved = [buffer.pop(y, None) for y in range(top, bottom + 1)]
        entering: list[Line | None] = [None] * abs(count)
        moved = moved[count:] + entering if count > 0 else entering + moved[:count]
        fill = self._fill()
        for y, line in enumerate(moved, top):
            if line is not None:
                buffer[y] = line
            elif fill != BLANK:
                buffer[y] = _new_line(fill)

    def _region(self) -> tuple[int, int]:
        return self.margins or (0, self.lines - 1)

    def _keep_history(self, count: int) -> None:
        """Keep the top ``count`` rows, about to scroll off, if they are the main screen's."""
        if self.main is not None or not self.history.limit:
            return
        columns = range(self.columns)
        for y in range(count):
            line = self.buffer.get(y)
            self.history.push(
                (BLANK,) * self.columns if line is None else tuple(map(line.__getitem__, columns))
            )

    def scroll_up(self, count: int) -> None:
        """SU: scroll the region up; the cursor stays."""
        top, bottom = self._region()
        count = count or 1
        if top == 0:  # into the history, as libghostty-vt does (xterm.js drops them)
            self._keep_history(min(count, bottom + 1))
        self._scroll(top, bottom, count)

    def scroll_down(self, count: int) -> None:
        """SD: scroll the region down; the cursor stays."""
        self._scroll(*self._region(), -(count or 1))

    def insert_lines(self, count: int | None = None) -> None:
        """IL: insert blank rows at the cursor row, inside the scroll region only."""
        top, bottom = self._region()
        if top <= self.cursor.y <= bottom:
            self._scroll(self.cursor.y, bottom, -(count or 1))
            self.cursor.x = 0

    def delete_lines(self, count: int | None = None) -> None:
        """DL: delete rows at the cursor row, inside the scroll region only."""
        top, bottom = self._region()
        if top <= self.cursor.y <= bottom:
            self._scroll(self.cursor.y, bottom, count or 1)
            self.cursor.x = 0

    def index(self) -> None:
        """IND: down one row, scrolling at the bottom margin (and only there)."""
        self._settle()
        top, bottom = self._region()
        if self.cursor.y == bottom:
            if top == 0:  # a region from the top feeds the history, as in xterm
                self._keep_history(1)
            self._scroll(top, bottom, 1)
        elif self.cursor.y < self.lines - 1:
            self.cursor.y += 1

    def reverse_index(self) -> None:
        """RI: up one row, scrolling down at the top margin (and only there)."""
        self._settle()
        top, bottom = self._region()
        if self.cursor.y == top:
            self._scroll(top, bottom, -1)
        elif self.cursor.y > 0:
            self.cursor.y -= 1

    def linefeed(self) -> None:
        """LF, VT, FF: index, and a carriage return too in LNM."""
        self.index()
        if _LNM in self.mode:
            self.cursor.x = 0

    def next_line(self) -> None:
        """NEL: carriage return and index."""
        self.index()
        self.cursor.x = 0

    # --- cursor --------------------------------------------------------------

    def cursor_up(self, count: int | None = None) -> None:
        """CUU: up, stopping at the top margin if the cursor is below it."""
        self._settle()
        top = self.margins[0] if self.margins and self.cursor.y >= self.margins[0] else 0
        self.cursor.y = max(self.cursor.y - (count or 1), top)

    def cursor_down(self, count: int | None = None) -> None:
        """CUD: down, stopping at the bottom margin if the cursor is above it."""
        self._settle()
        last = self.lines - 1
        bottom = self.margins[1] if self.margins and self.cursor.y <= self.margins[1] else last
        self.cursor.y = min(self.cursor.y + (count or 1), bottom)

    def _row(self, line: int | None) -> int:
        row = (line or 1) - 1
        if self.margins is not None and DECOM in self.mode:
            top, bottom = self.margins
            return min(row + top, bottom)
        return min(row, self.lines - 1)

    def cursor_position(self, line: int | None = None, column: int | None = None) -> None:
        """CUP: go to a 1-based position, relative to the scroll region in origin mode."""
        self.cursor.y = self._row(line)
        self.cursor.x = min((column or 1) - 1, self.columns - 1)

    def cursor_to_line(self, line: int | None = None) -> None:
        """VPA: go to a row, keeping the column."""
        self._settle()
        self.cursor.y = self._row(line)

    def set_tab_stop(self) -> None:
        """HTS: a tab stop at the cursor column."""
        if self.cursor.x < self.columns:
            self.tabstops.add(self.cursor.x)

    def forward_tab(self, count: int) -> None:
        """CHT: ``count`` tab stops forward."""
        for _ in range(min(count or 1, self.columns)):
            self.tab()

    def back_tab(self, count: int) -> None:
        """CBT: ``count`` tab stops back, stopping at the first column."""
        self._settle()
        for _ in range(min(count or 1, self.columns)):
            self.cursor.x = max((t for t in self.tabstops if t < self.cursor.x), default=0)

    def set_margins(self, top: int | None = None, bottom: int | None = None) -> None:
        """DECSTBM: set the scroll region (ignored unless top < bottom) and home the cursor."""
        top = top or 1
        bottom = min(bottom or self.lines, self.lines)
        if top < bottom:
            self.margins = None if (top, bottom) == (1, self.lines) else (top - 1, bottom - 1)
            self.cursor_position()

    def _keep_in_region(self) -> None:
        # In origin mode the cursor never leaves the region, so a repaint can place it.
        if self.margins is not None and DECOM in self.mode:
            top, bottom = self.margins
            self.cursor.y = min(max(self.cursor.y, top), bottom)

    def save_cursor(self) -> None:
        """DECSC: position, pen, charsets and origin mode, into this screen's slot."""
        cursor = self.cursor
        g0, g1 = self.charsets
        origin = DECOM in self.mode
        self.saved = SavedCursor(cursor.x, cursor.y, cursor.attrs, g0, g1, self.shift, origin)

    def restore_cursor(self) -> None:
        """DECRC: back to what DECSC saved (home and defaults if nothing was)."""
        saved = self.saved
        self.cursor.x = min(saved.x, self.columns)
        self.cursor.y = min(saved.y, self.lines - 1)
        self.cursor.attrs = saved.pen
        self.charsets = (saved.g0, saved.g1)
        self.shift = saved.shift
        if saved.origin:
            self.mode.add(DECOM)
        else:
            self.mode.discard(DECOM)
        self._keep_in_region()

    def define_charset(self, code: str, mode: str) -> None:
        """Designate G0 (``mode`` "(") or G1 (")"): US ASCII (B) or DEC graphics (0)."""
        if code in ("B", "0"):
            g0, g1 = self.charsets
            self.charsets = (code, g1) if mode == "(" else (g0, code)

    # --- modes ---------------------------------------------------------------

    def set_ansi_modes(self, numbers: tuple[int, ...], on: bool) -> None:
        """SM/RM: insert mode (4) and automatic newline (20); xterm.js has no others."""
        for number in numbers:
            if number in ANSI_MODES:
                if on:
                    self.mode.add(number)
                else:
                    self.mode.discard(number)

    def set_private_mode(self, number: int, on: bool) -> None:
        """DECSET/DECRST: any mode is recorded, so a repaint passes it on."""
        if number in _ALTERNATE_SCREEN_MODES:
            if on:
                if number == 1049:
                    self.save_cursor()
                self._enter_alternate()
            else:
                self._leave_alternate()
                if number == 1049:
                    self.restore_cursor()
        elif number == 1048:
            if on:
                self.save_cursor()
            else:
                self.restore_cursor()
        elif number == 66:
            # DECNKM is the keypad mode ESC = and ESC > set (so xterm.js reads it).
            self.keypad_application = on
        elif number != 3:  # DECCOLM would resize the screen: only the caller sizes it
            if on:
                self.mode.add(private_mode(number))
            else:
                self.mode.discard(private_mode(number))
            if number == 6:
                self.cursor_position()
            elif number == 25:
                self.cursor.hidden = not on

    def _enter_alternate(self) -> None:
        # As xterm.js: the alternate screen starts blank with its own margins and
        # saved cursor; the cursor position carries over both ways.
        if self.main is None:
            self.main = _MainScreen(self.buffer, self.margins, self.saved)
            self.buffer = _new_buffer()
            self.margins = None
            self.saved = DEFAULT_SAVED

    def _leave_alternate(self) -> None:
        if self.main is not None:
            self.buffer, self.margins, self.saved = self.main
            self.main = None
            self._keep_in_region()


def cell_rows(screen: Emulator, buffer: Buffer) -> Iterator[tuple[Cell, ...]]:
    """Every row of ``buffer`` (one of ``screen``'s), every cell of it filled in."""
    columns = range(screen.columns)
    blank = (BLANK,) * screen.columns
    for y in range(screen.lines):
        line = buffer.get(y)
        yield blank if line is None else tuple(map(line.__getitem__, columns))
