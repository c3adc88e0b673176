"""The pyte backend's scrollback: the rows scrolled off the top, as text with SGR.

Kept as strings, not cells: a cell row costs a tuple of named tuples, a
string only what was printed. Bounded twice, so that a hostile agent cannot
grow it past a known size: at most ``limit`` lines, and at most
:data:`CHARS_PER_LINE` characters per allowed line on average (a row of
combining marks can hold far more than its width).
"""

from __future__ import annotations

from collections import deque
from typing import Final

from .cells import Cell, line_sgr

__all__ = ["CHARS_PER_LINE", "History"]

#: The average a line may take; rows of 300 coloured cells stay well inside it.
CHARS_PER_LINE: Final = 1024


class History:
    """Lines in the order they scrolled off, the oldest dropped first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lines: deque[str] = deque()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._lines)

    def push(self, row: tuple[Cell, ...]) -> None:
        """Keep ``row``, a row of the screen that just scrolled off."""
        if not self.limit:
            return
        line = line_sgr(row)
        self._lines.append(line)
        self._chars += len(line)
        budget = self.limit * CHARS_PER_LINE
        while len(self._lines) > self.limit or self._chars > budget:
            self._chars -= len(self._lines.popleft())

    def clear(self) -> None:
        """Forget everything (ED 3, RIS)."""
        self._lines.clear()
        self._chars = 0

    def lines(self, limit: int | None = None) -> list[str]:
        """The newest ``limit`` lines (None: all), oldest first."""
        count = len(self._lines) if limit is None else max(0, min(limit, len(self._lines)))
        return list(self._lines)[len(self._lines) - count :]

    def statistics(self) -> tuple[int, int]:
        """(lines, characters) kept."""
        return len(self._lines), self._chars
