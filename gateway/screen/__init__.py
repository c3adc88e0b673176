"""One agent's terminal state: pyte underneath, an exact repaint on top.

The hub feeds every byte an agent prints into a :class:`Screen` and, whenever a
viewer joins, sends :meth:`Screen.snapshot`: bytes that repaint any terminal to
exactly the state the screen is in at :attr:`Screen.offset`, so the viewer can
follow the live output from that offset on. :meth:`Screen.state` lists
everything a repaint reproduces; the tests hold ``A.state() == B.state()``
after ``B.feed(A.snapshot())``.

pyte's ``Screen`` keeps the character grid. Two things around it are ours:

* The parser. pyte's ``Stream`` grows an unterminated OSC string or a run of CSI
  parameters without bound, prints DCS and APC payloads as text, reads
  ``CSI > 4 ; 1 m`` as SGR, ignores charset designations in UTF-8 mode and
  answers device queries. :class:`_Parser` is a bounded VT500-style state
  machine, the one xterm.js and tmux follow, that only calls screen methods:
  the screen has no way to answer the agent.
* The behaviour where pyte and xterm disagree visibly for a viewer running
  xterm.js: the alternate screen (pyte has none), wide and zero-width characters
  (pyte drops the rest of a text run after a variation selector or a zero-width
  joiner, and leaves half characters behind), erasing with the background
  colour only, DECSCNM as a display mode rather than a rewrite of every cell,
  the pending-wrap state, line feeds below the scroll region, SU/SD/REP,
  DECSC/DECRC, and colours and attributes (pyte turns 256-colour indexes into
  RGB and drops dim, conceal and overline).

A snapshot starts with RIS, so it also repairs a terminal that saw garbage, and
ends with whatever escape sequence or UTF-8 character the output was in the
middle of at :attr:`Screen.offset`, so the raw bytes after the offset continue
it on the viewer exactly as they do here.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Final, NamedTuple

import pyte
import pyte.screens

from .base import JSON_MODES, MAX_OSC, MAX_TITLE, TerminalScreen, check_size

__all__ = ["Cell", "SavedCursor", "Screen", "ScreenState", "TerminalScreen"]

log = logging.getLogger(__name__)

# CSI parameters: characters kept, parameters used (as xterm.js), largest value.
_MAX_PARAM_CHARS: Final = 256
_MAX_PARAMS: Final = 32
_MAX_PARAM: Final = 9999
# Zero-width characters one cell accepts (combining marks, variation selectors).
_MAX_CELL_CHARS: Final = 32

_wcwidth = pyte.screens.wcwidth  # lru-cached by pyte


class Cell(NamedTuple):
    """One character cell: its text and every attribute a repaint reproduces.

    The first nine fields are pyte's ``Char``. ``data`` is one printable
    character plus any zero-width ones after it; the right half of a wide
    character is a cell with empty ``data``. Colours are the SGR parameters
    that select them ("default", "31", "91", "38;5;174", "38;2;255;0;0"; "41",
    "48;5;..." for the background), so a repaint picks the very palette entry
    the agent chose.
    """

    data: str
    fg: str = "default"
    bg: str = "default"
    bold: bool = False
    italics: bool = False
    underscore: bool = False
    strikethrough: bool = False
    reverse: bool = False
    blink: bool = False
    dim: bool = False
    conceal: bool = False
    overline: bool = False


_BLANK: Final = Cell(" ")
# Half the cost of Cell(...), which matters once per character printed.
_new_cell: Final = tuple.__new__
_BLANK_ATTRS: Final = _BLANK[1:]


class SavedCursor(NamedTuple):
    """What DECSC saves (one slot per screen buffer, as in xterm)."""

    x: int
    y: int
    pen: Cell
    g0: str
    g1: str
    shift: int
    origin: bool


_DEFAULT_SAVED: Final = SavedCursor(0, 0, _BLANK, "B", "B", 0, False)

# A row of cells: pyte's StaticDefaultDict, where missing columns read as the
# row's default cell (blank, or blank in a background colour after an erase).
Line = dict[int, Cell]
Buffer = dict[int, Line]


def _new_line(fill: Cell) -> Line:
    return pyte.screens.StaticDefaultDict[int, Cell](fill)


def _new_buffer() -> Buffer:
    return defaultdict(lambda: _new_line(_BLANK))


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
        self.attrs = _BLANK
        self.hidden = False


# pyte keeps DEC private modes shifted left by 5 in the same set as ANSI modes.
def _private(number: int) -> int:
    return number << 5


_IRM: Final = 4
_LNM: Final = 20
_ANSI_MODES: Final = frozenset({_IRM, _LNM})  # the ANSI modes xterm.js knows
_DECOM: Final = _private(6)
_DECAWM: Final = _private(7)
_DECTCEM: Final = _private(25)
_DEFAULT_MODES: Final = frozenset({_DECAWM, _DECTCEM})
_ALTERNATE_SCREEN_MODES: Final = frozenset({47, 1047, 1049})

# JSON_MODES as pyte's screen keeps them.
_JSON_MODES: Final = {
    name: number if ansi else _private(number) for name, (number, ansi) in JSON_MODES.items()
}

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


# --- SGR ------------------------------------------------------------------------

_SGR_FLAGS: Final = {
    1: ("bold", True),
    2: ("dim", True),
    3: ("italics", True),
    4: ("underscore", True),
    5: ("blink", True),
    6: ("blink", True),
    7: ("reverse", True),
    8: ("conceal", True),
    9: ("strikethrough", True),
    21: ("underscore", True),  # double underline, drawn as an underline
    23: ("italics", False),
    24: ("underscore", False),
    25: ("blink", False),
    27: ("reverse", False),
    28: ("conceal", False),
    29: ("strikethrough", False),
    53: ("overline", True),
    55: ("overline", False),
}


def _number(text: str) -> int:
    return min(int(text or "0"), _MAX_PARAM)


def _extended_colour(values: list[str]) -> str | None:
    """``5;N`` or ``2;R;G;B`` (the part after 38/48) in canonical form, if valid."""
    if values and values[0] == "5" and len(values) >= 2:
        index = _number(values[1])
        return f"5;{index}" if index <= 255 else None
    if values and values[0] == "2" and len(values) >= 4:
        rgb = [_number(v) for v in values[1:4]]
        return "2;{};{};{}".format(*rgb) if max(rgb) <= 255 else None
    return None


@lru_cache(maxsize=1024)
def _apply_sgr(pen: Cell, params: str) -> Cell:
    """The pen after ``CSI params m``; cached, as agents repeat the same few."""
    if params in ("", "0"):
        return _BLANK
    attrs = pen._asdict()
    groups = params.split(";")
    i = 0
    while i < len(groups):
        parts = groups[i].split(":")
        code = _number(parts[0])
        i += 1
        if code == 0:
            attrs = _BLANK._asdict()
        elif code in _SGR_FLAGS:
            name, value = _SGR_FLAGS[code]
            # 4:0 is "no underline" in the sub-parameter form of underline styles.
            attrs[name] = value and not (code == 4 and parts[1:2] == ["0"])
        elif code == 22:
            attrs["bold"] = attrs["dim"] = False
        elif 30 <= code <= 37 or 90 <= code <= 97:
            attrs["fg"] = str(code)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            attrs["bg"] = str(code)
        elif code == 39:
            attrs["fg"] = "default"
        elif code == 49:
            attrs["bg"] = "default"
        elif code in (38, 48, 58):
            if len(parts) > 1:  # 38:5:N, 38:2:R:G:B or 38:2:CS:R:G:B
                values = parts[1:]
                if values[0] == "2" and len(values) >= 5:
                    values = ["2", *values[2:5]]
            else:  # 38;5;N or 38;2;R;G;B
                size = {"5": 2, "2": 4}.get(groups[i] if i < len(groups) else "", 1)
                values = groups[i : i + size]
                i += size
            colour = _extended_colour(values)
            if colour is not None and code != 58:  # 58: underline colour, not kept
                attrs["fg" if code == 38 else "bg"] = f"{code};{colour}"
    return Cell(**attrs)


@lru_cache(maxsize=1024)
def _sgr(attrs: tuple[Any, ...]) -> str:
    """The SGR sequence that sets exactly these attributes (``Cell[1:]``)."""
    cell = Cell(" ", *attrs)
    codes = ["0"]
    for on, code in (
        (cell.bold, "1"),
        (cell.dim, "2"),
        (cell.italics, "3"),
        (cell.underscore, "4"),
        (cell.blink, "5"),
        (cell.reverse, "7"),
        (cell.conceal, "8"),
        (cell.strikethrough, "9"),
        (cell.overline, "53"),
    ):
        if on:
            codes.append(code)
    if cell.fg != "default":
        codes.append(cell.fg)
    if cell.bg != "default":
        codes.append(cell.bg)
    return "\x1b[" + ";".join(codes) + "m"


# The attributes `tmux capture-pane -e` writes, in its order.
_TMUX_FLAGS: Final = (
    ("bold", 1),
    ("dim", 2),
    ("italics", 3),
    ("underscore", 4),
    ("blink", 5),
    ("reverse", 7),
    ("conceal", 8),
    ("strikethrough", 9),
    ("overline", 53),
)


def _tmux_codes(last: Cell, cell: Cell) -> str:
    """What ``tmux capture-pane -e`` writes between two cells (grid_string_cells_code)."""
    codes: list[int] = []
    last_flags = {name for name, _ in _TMUX_FLAGS if getattr(last, name)}
    flags = {name for name, _ in _TMUX_FLAGS if getattr(cell, name)}
    reset = bool(last_flags - flags)
    if reset:
        codes.append(0)
        last_flags = set()
    codes += [code for name, code in _TMUX_FLAGS if name in flags - last_flags]
    out = "\x1b[" + ";".join(map(str, codes)) + "m" if codes else ""
    if cell.fg != last.fg or reset:
        out += "\x1b[" + ("39" if cell.fg == "default" else cell.fg) + "m"
    if cell.bg != last.bg or reset:
        out += "\x1b[" + ("49" if cell.bg == "default" else cell.bg) + "m"
    return out


# --- the screen -------------------------------------------------------------------


class _Emulator(pyte.Screen):
    """pyte's screen with the xterm behaviour a viewer's xterm.js shows.

    Methods take the parameters of their control function, already parsed;
    a zero count means one, as on the wire.
    """

    # Richer than pyte's own types, and used the same way by the pyte methods
    # kept (tab, backspace, cursor_forward, cursor_to_column, ...).
    buffer: Buffer  # type: ignore[assignment]  # of Cell, not pyte's Char
    cursor: _Cursor  # type: ignore[assignment]  # its attrs are a Cell
    margins: tuple[int, int] | None  # type: ignore[assignment]  # a plain pair

    def __init__(self, columns: int, rows: int) -> None:
        super().__init__(columns, rows)  # calls reset()

    @property
    def default_char(self) -> Cell:  # type: ignore[override]  # a Cell, not a Char
        # pyte reverses every cell for DECSCNM; here it is a display mode only.
        return _BLANK

    def reset(self) -> None:
        """RIS: power-on state, title and both screens included."""
        self.buffer = _new_buffer()
        self.margins = None
        self.mode = set(_DEFAULT_MODES)
        self.title = ""
        self.icon_name = ""
        self.tabstops = set(range(8, self.columns, 8))
        self.cursor = _Cursor()
        self.charsets = ("B", "B")
        self.shift = 0
        self.saved = _DEFAULT_SAVED
        self.main: _MainScreen | None = None  # set while the alternate screen is shown
        self.keypad_application = False
        self.cursor_style = 0
        self.last_char = ""  # what REP repeats; only text right before REP sets it

    def soft_reset(self) -> None:
        """DECSTR, as xterm.js does it: modes, margins, pen and saved cursor."""
        self.mode -= {_DECOM, _IRM, _private(1), _private(45), _private(1004), _private(2004)}
        self.mode |= _DEFAULT_MODES
        self.cursor.hidden = False
        self.keypad_application = False
        self.margins = None
        self.cursor.attrs = _BLANK
        self.charsets = ("B", "B")
        self.shift = 0
        self.saved = _DEFAULT_SAVED

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
                self._shift_right(line, x, width, _BLANK)
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
        return _BLANK if bg == "default" else _BLANK._replace(bg=bg)

    def _blank_lines(self, start: int, end: int) -> None:
        fill = self._fill()
        for y in range(start, end):
            if fill == _BLANK:
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
        """ED: erase below (0), above (1) or all (2); 3 (scrollback) has nothing to erase."""
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
            elif fill != _BLANK:
                buffer[y] = _new_line(fill)

    def _region(self) -> tuple[int, int]:
        return self.margins or (0, self.lines - 1)

    def scroll_up(self, count: int) -> None:
        """SU: scroll the region up; the cursor stays."""
        self._scroll(*self._region(), count or 1)

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
        if self.margins is not None and _DECOM in self.mode:
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
        if self.margins is not None and _DECOM in self.mode:
            top, bottom = self.margins
            self.cursor.y = min(max(self.cursor.y, top), bottom)

    def save_cursor(self) -> None:
        """DECSC: position, pen, charsets and origin mode, into this screen's slot."""
        cursor = self.cursor
        g0, g1 = self.charsets
        origin = _DECOM in self.mode
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
            self.mode.add(_DECOM)
        else:
            self.mode.discard(_DECOM)
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
            if number in _ANSI_MODES:
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
                self.mode.add(_private(number))
            else:
                self.mode.discard(_private(number))
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
            self.saved = _DEFAULT_SAVED

    def _leave_alternate(self) -> None:
        if self.main is not None:
            self.buffer, self.margins, self.saved = self.main
            self.main = None
            self._keep_in_region()


# --- the parser -------------------------------------------------------------------

_GROUND, _ESCAPE, _CSI, _OSC, _STRING = range(5)

_TEXT: Final = re.compile(r"[^\x00-\x1f\x7f-\x9f]+")
# A whole CSI sequence in one piece, the common case; anything else (split
# across feeds, controls inside, too long) goes through the state machine.
_WHOLE_CSI: Final = re.compile(r"(?:\x1b\[|\x9b)([<-?]?)([0-;]{0,256})([ -/]{0,2})([@-~])")
_OSC_END: Final = re.compile(r"[\x07\x18\x1a\x1b\x9c]")
_STRING_END: Final = re.compile(r"[\x18\x1a\x1b\x9c]")
_UNPRINTABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@lru_cache(maxsize=512)
def _parse_params(params: str) -> tuple[int, ...]:
    if not params:
        return ()
    return tuple(_number(p.partition(":")[0]) for p in params.split(";")[:_MAX_PARAMS])


def _first(params: tuple[int, ...]) -> int:
    return params[0] if params else 0


_Handler = Callable[[_Emulator, tuple[int, ...]], None]

# CSI final bytes without prefix or intermediates. Device queries (c, n) and
# window operations (t) are left out on purpose: the screen never answers.
_CSI_HANDLERS: Final[dict[str, _Handler]] = {
    "@": lambda s, p: s.insert_characters(_first(p)),
    "A": lambda s, p: s.cursor_up(_first(p)),
    "B": lambda s, p: s.cursor_down(_first(p)),
    "C": lambda s, p: s.cursor_forward(_first(p)),
    "D": lambda s, p: s.cursor_back(_first(p)),
    "E": lambda s, p: s.cursor_down1(_first(p)),
    "F": lambda s, p: s.cursor_up1(_first(p)),
    "G": lambda s, p: s.cursor_to_column(_first(p)),
    "H": lambda s, p: s.cursor_position(*p[:2]),
    "I": lambda s, p: s.forward_tab(_first(p)),
    "J": lambda s, p: s.erase_in_display(_first(p)),
    "K": lambda s, p: s.erase_in_line(_first(p)),
    "L": lambda s, p: s.insert_lines(_first(p)),
    "M": lambda s, p: s.delete_lines(_first(p)),
    "P": lambda s, p: s.delete_characters(_first(p)),
    "S": lambda s, p: s.scroll_up(_first(p)),
    # With more parameters, T is xterm's mouse highlight tracking.
    "T": lambda s, p: s.scroll_down(_first(p)) if len(p) <= 1 else None,
    "X": lambda s, p: s.erase_characters(_first(p)),
    "Z": lambda s, p: s.back_tab(_first(p)),
    "`": lambda s, p: s.cursor_to_column(_first(p)),
    "a": lambda s, p: s.cursor_forward(_first(p)),
    "b": lambda s, p: s.repeat(_first(p)),
    "d": lambda s, p: s.cursor_to_line(_first(p)),
    "e": lambda s, p: s.cursor_down(_first(p)),
    "f": lambda s, p: s.cursor_position(*p[:2]),
    "g": lambda s, p: s.clear_tab_stop(_first(p)),
    "h": lambda s, p: s.set_ansi_modes(p, True),
    "l": lambda s, p: s.set_ansi_modes(p, False),
    "r": lambda s, p: s.set_margins(*p[:2]),
    "s": lambda s, p: s.save_cursor(),
    "u": lambda s, p: s.restore_cursor(),
}

_ESCAPE_HANDLERS: Final[dict[str, Callable[[_Emulator], None]]] = {
    "7": lambda s: s.save_cursor(),
    "8": lambda s: s.restore_cursor(),
    "D": lambda s: s.index(),
    "E": lambda s: s.next_line(),
    "H": lambda s: s.set_tab_stop(),
    "M": lambda s: s.reverse_index(),
    "c": lambda s: s.reset(),
}

_C0_HANDLERS: Final[dict[str, Callable[[_Emulator], None]]] = {
    "\x08": lambda s: s.backspace(),
    "\x09": lambda s: s.tab(),
    "\x0a": lambda s: s.linefeed(),
    "\x0b": lambda s: s.linefeed(),
    "\x0c": lambda s: s.linefeed(),
    "\x0d": lambda s: s.carriage_return(),
}

_C1_HANDLERS: Final[dict[str, Callable[[_Emulator], None]]] = {
    "\x84": lambda s: s.index(),
    "\x85": lambda s: s.next_line(),
    "\x88": lambda s: s.set_tab_stop(),
    "\x8d": lambda s: s.reverse_index(),
}


class _ParserState(NamedTuple):
    """Where the parser is inside a control sequence, in repaintable form."""

    state: int
    intermediates: str
    prefix: str
    params: str
    invalid: bool
    osc: str


class _Parser:
    """A VT500-style parser (ECMA-48 with xterm's and xterm.js's choices) for :class:`_Emulator`.

    Memory is bounded: OSC strings are cut at :data:`MAX_OSC`, CSI parameters
    at 256 characters, and DCS, SOS, PM and APC strings are skipped unread.
    """

    def __init__(self, screen: _Emulator) -> None:
        self._screen = screen
        self.reset()

    def reset(self) -> None:
        """Back to the ground state, dropping any sequence in progress."""
        self._state = _GROUND
        self._intermediates = ""
        self._prefix = ""
        self._params = ""
        self._invalid = False
        self._osc: list[str] = []
        self._osc_size = 0

    def pending(self) -> _ParserState:
        """The sequence in progress (only what affects its outcome)."""
        if self._state == _GROUND:
            return _ParserState(_GROUND, "", "", "", False, "")
        if self._invalid:  # the sequence will be ignored whatever it holds
            return _ParserState(self._state, "", "", "", True, "")
        return _ParserState(
            self._state,
            self._intermediates,
            self._prefix,
            self._params,
            False,
            "".join(self._osc),
        )

    def feed(self, text: str) -> None:
        """Parse decoded output, calling the screen for everything it means."""
        screen = self._screen
        position, end = 0, len(text)
        while position < end:
            state = self._state
            if state == _GROUND:
                match = _TEXT.match(text, position)
                if match:
                    screen.draw(match.group())
                    position = match.end()
                    continue
                char = text[position]
                if char in "\x1b\x9b":
                    match = _WHOLE_CSI.match(text, position)
                    if match:
                        self._dispatch_csi(*match.groups())
                        position = match.end()
                        continue
                self._control(char)
                position += 1
            elif state in (_OSC, _STRING):
                match = (_OSC_END if state == _OSC else _STRING_END).search(text, position)
                stop = match.start() if match else end
                if state == _OSC and self._osc_size < MAX_OSC:
                    piece = text[position : min(stop, position + MAX_OSC - self._osc_size)]
                    self._osc.append(piece)
                    self._osc_size += len(piece)
                if match is None:
                    return
                self._end_string(text[stop])
                position = stop + 1
            elif self._step(text[position]):
                position += 1

    def _control(self, char: str) -> None:
        """A control character in the ground state."""
        if char == "\x1b":
            self._enter(_ESCAPE)
        elif char == "\x9b":
            self._enter(_CSI)
        elif char == "\x9d":
            self._enter(_OSC)
        elif char in "\x90\x98\x9e\x9f":  # DCS, SOS, PM, APC
            self._enter(_STRING)
        elif char in _C1_HANDLERS:
            self._screen.last_char = ""
            _C1_HANDLERS[char](self._screen)
        else:
            self._execute(char)

    def _execute(self, char: str) -> None:
        """A C0 control, in the ground state or inside a sequence (as xterm does)."""
        screen = self._screen
        screen.last_char = ""
        if char in _C0_HANDLERS:
            _C0_HANDLERS[char](screen)
        elif char in "\x0e\x0f":  # SO, SI: invoke G1 or G0
            screen.shift = int(char == "\x0e")

    def _enter(self, state: int) -> None:
        self._state = state
        self._intermediates = self._prefix = self._params = ""
        self._invalid = False
        self._osc = []
        self._osc_size = 0

    def _step(self, char: str) -> bool:
        """One character inside an escape or CSI sequence; False to reread it in ground."""
        code = ord(char)
        if code >= 0x80:  # C1 controls and text abort the sequence
            self._state = _GROUND
            return False
        if char == "\x1b":
            self._enter(_ESCAPE)
        elif char in "\x18\x1a":  # CAN, SUB
            self._state = _GROUND
        elif code < 0x20:
            self._execute(char)
        elif code == 0x7F:
            pass
        elif self._state == _ESCAPE:
            self._escape_char(char)
        else:
            self._csi_char(char)
        return True

    def _escape_char(self, char: str) -> None:
        if char <= "/":
            self._collect(char)
        elif not self._intermediates and char == "[":
            self._enter(_CSI)
        elif not self._intermediates and char == "]":
            self._enter(_OSC)
        elif not self._intermediates and char in "PX^_":
            self._enter(_STRING)
        else:
            self._state = _GROUND
            if not self._invalid:
                self._dispatch_escape(self._intermediates, char)

    def _csi_char(self, char: str) -> None:
        if "0" <= char <= ";":
            if self._intermediates:
                self._invalid = True
            elif len(self._params) < _MAX_PARAM_CHARS:
                self._params += char
        elif "<" <= char <= "?":
            if self._params or self._prefix or self._intermediates:
                self._invalid = True
            else:
                self._prefix = char
        elif char <= "/":
            self._collect(char)
        else:
            self._state = _GROUND
            if not self._invalid:
                self._dispatch_csi(self._prefix, self._params, self._intermediates, char)

    def _collect(self, char: str) -> None:
        if len(self._intermediates) < 2:
            self._intermediates += char
        else:
            self._invalid = True

    def _end_string(self, char: str) -> None:
        """An OSC, DCS, SOS, PM or APC string ends with ``char``."""
        if self._state == _OSC and char not in "\x18\x1a":
            self._dispatch_osc("".join(self._osc))
        if char == "\x1b":  # ESC ends the string and starts a sequence (ESC \ is ST)
            self._enter(_ESCAPE)
        else:
            self._enter(_GROUND)

    def _dispatch_escape(self, intermediates: str, final: str) -> None:
        screen = self._screen
        screen.last_char = ""
        if not intermediates:
            if final in _ESCAPE_HANDLERS:
                _ESCAPE_HANDLERS[final](screen)
            elif final in "=>":
                screen.keypad_application = final == "="
        elif intermediates in ("(", ")"):
            screen.define_charset(final, intermediates)
        elif intermediates == "#" and final == "8":
            screen.alignment_display()

    def _dispatch_csi(self, prefix: str, params: str, intermediates: str, final: str) -> None:
        screen = self._screen
        if not prefix and not intermediates:
            if final == "m":
                screen.cursor.attrs = _apply_sgr(screen.cursor.attrs, params)
            elif final in _CSI_HANDLERS:
                _CSI_HANDLERS[final](screen, _parse_params(params))
        elif prefix == "?" and not intermediates:
            if final in "hl":
                for number in _parse_params(params):
                    screen.set_private_mode(number, final == "h")
            elif final == "J":  # DECSED: no protected cells here, so plain ED
                screen.erase_in_display(_first(_parse_params(params)))
            elif final == "K":
                screen.erase_in_line(_first(_parse_params(params)))
        elif not prefix and intermediates == " " and final == "q":
            style = _first(_parse_params(params))
            if style <= 6:
                screen.cursor_style = style
        elif not prefix and intermediates == "!" and final == "p":
            screen.soft_reset()
        screen.last_char = ""

    def _dispatch_osc(self, payload: str) -> None:
        code, _, text = payload.partition(";")
        if code in ("0", "1", "2"):
            text = _UNPRINTABLE.sub("", text)[:MAX_TITLE]
            if code != "2":
                self._screen.icon_name = text
            if code != "1":
                self._screen.title = text


# --- the public face --------------------------------------------------------------


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


class Screen:
    """One agent's terminal: feed it output, read it as text, or repaint it exactly.

    Sans-I/O and synchronous; every method is cheap except :meth:`feed`, which
    costs about a microsecond per byte.
    """

    FEED_PIECE: ClassVar[int] = 4096

    def __init__(self, columns: int = 80, rows: int = 24) -> None:
        check_size(columns, rows)
        self._screen = _Emulator(columns, rows)
        self._parser = _Parser(self._screen)
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
        """The window title the agent set with OSC 0 or OSC 2 (cut to :data:`MAX_TITLE`)."""
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

    def snapshot(self) -> bytes:
        """Bytes that repaint any terminal to exactly this state (they start with RIS)."""
        painter = _Painter(self._screen)
        painter.paint_all(self._parser.pending())
        pending_bytes, _ = self._decoder.getstate()
        return painter.text().encode("utf-8", "replace") + pending_bytes

    def text(self) -> str:
        """The screen as ``tmux capture-pane -p`` prints it: every row, trailing spaces cut."""
        return "".join(_row_text(row).rstrip(" ") + "\n" for row in self._rows())

    def ansi(self) -> str:
        """The screen as ``tmux capture-pane -p -e`` prints it: text with SGR changes."""
        out: list[str] = []
        last = _BLANK
        for row in self._rows():
            end = len(row)
            while end and row[end - 1] == _BLANK:
                end -= 1
            line: list[str] = []
            for cell in row[:end]:
                if cell.data:
                    line.append(_tmux_codes(last, cell))
                    line.append(cell.data)
                    last = cell
            out.append("".join(line).rstrip(" ") + "\n")
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        """The screen for the HTTP API: size, title, cursor, modes and text rows."""
        screen = self._screen
        cursor = screen.cursor
        modes = {name: bit in screen.mode for name, bit in _JSON_MODES.items()}
        modes["application_keypad"] = screen.keypad_application
        return {
            "columns": screen.columns,
            "rows": screen.lines,
            "title": screen.title,
            "cursor": {
                # A cursor waiting to wrap is drawn in the last column.
                "x": min(cursor.x, screen.columns - 1),
                "y": cursor.y,
                "visible": not cursor.hidden,
            },
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
        return _rows(self._screen, self._screen.buffer if buffer is None else buffer)


def _rows(screen: _Emulator, buffer: Buffer) -> Iterator[tuple[Cell, ...]]:
    columns = range(screen.columns)
    blank = (_BLANK,) * screen.columns
    for y in range(screen.lines):
        line = buffer.get(y)
        yield blank if line is None else tuple(map(line.__getitem__, columns))


def _row_text(row: tuple[Cell, ...]) -> str:
    return "".join(cell.data for cell in row)


class _Painter:
    """Builds the repaint of an :class:`_Emulator` for a terminal just reset with RIS.

    Order matters: cells are painted with default modes and charsets (so that
    nothing is inserted or translated), the saved cursor is staged before the
    margins exist (so that positions are absolute), and insert mode comes after
    the last character printed.
    """

    def __init__(self, screen: _Emulator) -> None:
        self._screen = screen
        self._out: list[str] = ["\x1bc"]
        self._attrs: tuple[Any, ...] = _BLANK_ATTRS

    def text(self) -> str:
        """The repaint so far."""
        return "".join(self._out)

    def paint_all(self, pending: _ParserState) -> None:
        """Repaint everything, ending inside ``pending`` like the output did."""
        screen, out = self._screen, self._out
        if screen.icon_name == screen.title:
            out.append(f"\x1b]0;{screen.title}\x07")
        else:
            out.append(f"\x1b]1;{screen.icon_name}\x07\x1b]2;{screen.title}\x07")
        if screen.tabstops != set(range(8, screen.columns, 8)):
            out.append("\x1b[3g")
            out.extend(f"\x1b[1;{stop + 1}H\x1bH" for stop in sorted(screen.tabstops))
        if screen.main is not None:
            self._paint(screen.main.buffer)
            self._stage_saved(screen.main.buffer, screen.main.saved)
            self._margins(screen.main.margins)
            out.append("\x1b[?1047h")
        self._paint(screen.buffer)
        self._stage_saved(screen.buffer, screen.saved)
        for bit in sorted(screen.mode - _DEFAULT_MODES - _ANSI_MODES):
            out.append(f"\x1b[?{bit >> 5}h")
        for bit in sorted(_DEFAULT_MODES - screen.mode):
            out.append(f"\x1b[?{bit >> 5}l")
        self._margins(screen.margins)
        top = screen.margins[0] if screen.margins and _DECOM in screen.mode else 0
        self._place(screen.buffer, screen.cursor.x, screen.cursor.y, top)
        self._pen(screen.cursor.attrs[1:])
        out.extend(f"\x1b[{mode}h" for mode in sorted(screen.mode & _ANSI_MODES))
        out.append(self._charsets(*screen.charsets, screen.shift))
        if screen.keypad_application:
            out.append("\x1b=")
        if screen.cursor_style:
            out.append(f"\x1b[{screen.cursor_style} q")
        out.append(self._pending(pending))

    def _paint(self, buffer: Buffer) -> None:
        out = self._out
        for y, row in enumerate(_rows(self._screen, buffer)):
            end = len(row)
            while end and row[end - 1] == _BLANK:
                end -= 1
            if not end:
                continue
            x = 0
            while row[x] == _BLANK:
                x += 1
            out.append(f"\x1b[{y + 1};{x + 1}H")
            while x < end:
                cell = row[x]
                if cell == _BLANK:
                    run = 1
                    while row[x + run] == _BLANK:
                        run += 1
                    if run > 4:  # a jump is shorter than the spaces
                        out.append(f"\x1b[{run}C")
                        x += run
                        continue
                if cell.data:  # a wide character's right half comes with its left
                    self._pen(cell[1:])
                    out.append(cell.data)
                x += 1

    def _pen(self, attrs: tuple[Any, ...]) -> None:
        if attrs != self._attrs:
            self._out.append(_sgr(attrs))
            self._attrs = attrs

    def _place(self, buffer: Buffer, x: int, y: int, top: int = 0) -> None:
        """Put the cursor at (x, y), row relative to ``top``; x == columns is the pending wrap."""
        columns = self._screen.columns
        if x < columns:
            self._out.append(f"\x1b[{y - top + 1};{x + 1}H")
            return
        # Only printing into the last column leaves the cursor waiting to wrap:
        # print again what is there (a wide character starts one column earlier).
        line = buffer.get(y)
        last = columns - 1
        cell = _BLANK if line is None else line[last]
        if cell.data == "" and line is not None and last:
            last -= 1
            cell = line[last]
        self._out.append(f"\x1b[{y - top + 1};{last + 1}H")
        self._pen(cell[1:])
        self._out.append(cell.data)

    def _stage_saved(self, buffer: Buffer, saved: SavedCursor) -> None:
        """Make the terminal save ``saved`` with DECSC, then undo the side effects."""
        if saved == _DEFAULT_SAVED:
            return
        out = self._out
        if saved.origin:
            out.append("\x1b[?6h")  # no margins yet, so positions stay absolute
        self._place(buffer, saved.x, saved.y)
        self._pen(saved.pen[1:])
        charsets = self._charsets(saved.g0, saved.g1, saved.shift)
        out.append(charsets + "\x1b7")
        if saved.origin:
            out.append("\x1b[?6l")
        if charsets:
            out.append("\x1b(B\x1b)B\x0f")

    def _margins(self, margins: tuple[int, int] | None) -> None:
        if margins is not None:
            self._out.append(f"\x1b[{margins[0] + 1};{margins[1] + 1}r")

    @staticmethod
    def _charsets(g0: str, g1: str, shift: int) -> str:
        return (
            ("\x1b(0" if g0 == "0" else "")
            + ("\x1b)0" if g1 == "0" else "")
            + ("\x0e" if shift else "")
        )

    @staticmethod
    def _pending(pending: _ParserState) -> str:
        if pending.state == _GROUND:
            return ""
        if pending.state == _STRING:
            return "\x1bP"  # its contents are skipped anyway
        if pending.state == _OSC:
            return "\x1b]" + pending.osc
        if pending.invalid:  # whatever it held, the sequence will be ignored
            return "\x1b[??" if pending.state == _CSI else "\x1b(((("
        if pending.state == _ESCAPE:
            return "\x1b" + pending.intermediates
        return "\x1b[" + pending.prefix + pending.params + pending.intermediates
