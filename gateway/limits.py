"""Rate limits, sans I/O: a token bucket per connection."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# A viewer may fall this far behind before it is resynced. 512 KiB is a few
# seconds of a busy agent and a small fraction of a snapshot's worth of work.
DEFAULT_VIEWER_QUEUE_BYTES = 512 * 1024

# Inbound WebSocket messages are keystrokes, pastes and tiny JSON.
MAX_INBOUND_MESSAGE = 64 * 1024

# An operator's WebSocket may send this much input: typing is a few bytes a
# second; a big paste arrives in one burst; a flood is cut off.
INPUT_BYTES_PER_SECOND = 256 * 1024
INPUT_BURST_BYTES = 1024 * 1024
MESSAGES_PER_SECOND = 200
MESSAGE_BURST = 1000
# Concurrent WebSockets one user (or one spectator link) may hold.
CONNECTIONS_PER_USER = 32


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._stamp = self.clock()

    def take(self, amount: float = 1.0) -> bool:
        """Spend ``amount`` tokens if there are enough; False (and nothing spent) if not."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


@dataclass(slots=True)
class InputLimit:
    """Messages and bytes a connection may send."""

    messages: TokenBucket = field(
        default_factory=lambda: TokenBucket(MESSAGES_PER_SECOND, MESSAGE_BURST)
    )
    volume: TokenBucket = field(
        default_factory=lambda: TokenBucket(INPUT_BYTES_PER_SECOND, INPUT_BURST_BYTES)
    )

    def allow(self, size: int) -> bool:
        # A refusal ends the connection, so what it spent does not matter.
        return self.messages.take() and self.volume.take(size)


class ConnectionCount:
    """Open terminals and streams per user, taken before a connection is accepted.

    :meth:`acquire` checks and counts in one step: a burst of upgrades from
    one user cannot all pass the check before the first is counted.
    """

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def __getitem__(self, name: str) -> int:
        return self._open[name]

    async def held(self, name: str) -> int:
        return self._open[name]

    async def acquire(self, name: str, limit: int | None) -> bool:
        """Count one more for ``name`` unless it holds ``limit`` already (None: no cap)."""
        if limit is not None and self._open[name] >= limit:
            return False
        self._open[name] += 1
        return True

    async def release(self, name: str) -> None:
        self._open[name] -= 1
        if self._open[name] <= 0:
            del self._open[name]
