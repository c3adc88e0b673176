"""What the emulator has still to read, in order, sans I/O.

Output is kept as the ttyd messages it came in (the command byte is skipped
by a head offset, never sliced off), with resizes in order between them, so
the screen sees each size change exactly where it happened in the output.
The emulator takes pieces off the front; a join reads the bytes not yet
emulated (:meth:`Backlog.tail`) to send them after the snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResizeMark:
    """A resize, kept in order with the output bytes the emulator has to feed."""

    columns: int
    rows: int


class Backlog:
    def __init__(self) -> None:
        self._items: deque[bytes | ResizeMark] = deque()
        # Where the front message's unread bytes start (1: after the command byte).
        self._head = 1
        self._resizes = 0
        #: Output bytes waiting (command bytes not counted).
        self.bytes = 0

    def __bool__(self) -> bool:
        return bool(self._items)

    def output(self, message: bytes) -> None:
        """A ttyd output message (command byte first)."""
        if len(message) > 1:
            self._items.append(message)
            self.bytes += len(message) - 1

    def resize(self, columns: int, rows: int) -> None:
        self._items.append(ResizeMark(columns, rows))
        self._resizes += 1

    @property
    def resize_pending(self) -> bool:
        return self._resizes > 0

    def take(self, size: int) -> bytes | ResizeMark:
        """The next piece for the emulator: at most ``size`` bytes, or a resize."""
        item = self._items[0]
        if isinstance(item, ResizeMark):
            self._items.popleft()
            self._resizes -= 1
            return item
        head, end = self._head, self._head + size
        if end < len(item):
            self._head = end
        else:
            self._items.popleft()
            self._head = 1
        piece = item[head:end]
        self.bytes -= len(piece)
        return piece

    def tail(self) -> bytes:
        """The output bytes not yet emulated (call with no resize pending)."""
        pieces = [memoryview(item) for item in self._items if isinstance(item, bytes)]
        if pieces:
            pieces[0] = pieces[0][self._head :]
            for i in range(1, len(pieces)):
                pieces[i] = pieces[i][1:]
        return b"".join(pieces)
