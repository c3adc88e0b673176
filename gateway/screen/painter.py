"""The repaint: an :class:`~.emulator.Emulator`'s whole state as bytes to print.

It is written for a terminal just reset with RIS (so it also repairs one that
saw garbage) and ends inside whatever escape sequence the output was in the
middle of, so the raw output after the snapshot continues it exactly.
"""

from __future__ import annotations

from typing import Any, Final

from .cells import BLANK, sgr
from .emulator import (
    ANSI_MODES,
    DECOM,
    DEFAULT_MODES,
    DEFAULT_SAVED,
    Buffer,
    Emulator,
    SavedCursor,
    cell_rows,
)
from .parser import CSI, ESCAPE, GROUND, OSC, STRING, ParserState

__all__ = ["Painter"]

_BLANK_ATTRS: Final = BLANK[1:]


class Painter:
    """Builds the repaint of an :class:`Emulator` for a terminal just reset with RIS.

    Order matters: cells are painted with default modes and charsets (so that
    nothing is inserted or translated), the saved cursor is staged before the
    margins exist (so that positions are absolute), and insert mode comes after
    the last character printed.
    """

    def __init__(self, screen: Emulator) -> None:
        self._screen = screen
        self._out: list[str] = ["\x1bc"]
        self._attrs: tuple[Any, ...] = _BLANK_ATTRS

    def text(self) -> str:
        """The repaint so far."""
        return "".join(self._out)

    def paint_all(self, pending: ParserState) -> None:
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
        for bit in sorted(screen.mode - DEFAULT_MODES - ANSI_MODES):
            out.append(f"\x1b[?{bit >> 5}h")
        for bit in sorted(DEFAULT_MODES - screen.mode):
            out.append(f"\x1b[?{bit >> 5}l")
        self._margins(screen.margins)
        top = screen.margins[0] if screen.margins and DECOM in screen.mode else 0
        self._place(screen.buffer, screen.cursor.x, screen.cursor.y, top)
        self._pen(screen.cursor.attrs[1:])
        out.extend(f"\x1b[{mode}h" for mode in sorted(screen.mode & ANSI_MODES))
        out.append(self._charsets(*screen.charsets, screen.shift))
        if screen.keypad_application:
            out.append("\x1b=")
        if screen.cursor_style:
            out.append(f"\x1b[{screen.cursor_style} q")
        out.append(self._pending(pending))

    def _paint(self, buffer: Buffer) -> None:
        out = self._out
        for y, row in enumerate(cell_rows(self._screen, buffer)):
            end = len(row)
            while end and row[end - 1] == BLANK:
                end -= 1
            if not end:
                continue
            x = 0
            while row[x] == BLANK:
                x += 1
            out.append(f"\x1b[{y + 1};{x + 1}H")
            while x < end:
                cell = row[x]
                if cell == BLANK:
                    run = 1
                    while row[x + run] == BLANK:
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
            self._out.append(sgr(attrs))
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
        cell = BLANK if line is None else line[last]
        if cell.data == "" and line is not None and last:
            last -= 1
            cell = line[last]
        self._out.append(f"\x1b[{y - top + 1};{last + 1}H")
        self._pen(cell[1:])
        self._out.append(cell.data)

    def _stage_saved(self, buffer: Buffer, saved: SavedCursor) -> None:
        """Make the terminal save ``saved`` with DECSC, then undo the side effects."""
        if saved == DEFAULT_SAVED:
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
    def _pending(pending: ParserState) -> str:
        if pending.state == GROUND:
            return ""
        if pending.state == STRING:
            return "\x1bP"  # its contents are skipped anyway
        if pending.state == OSC:
            return "\x1b]" + pending.osc
        if pending.invalid:  # whatever it held, the sequence will be ignored
            return "\x1b[??" if pending.state == CSI else "\x1b(((("
        if pending.state == ESCAPE:
            return "\x1b" + pending.intermediates
        return "\x1b[" + pending.prefix + pending.params + pending.intermediates
