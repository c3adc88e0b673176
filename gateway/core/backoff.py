"""Capped exponential backoff with jitter, sans I/O (upstreams, log followers)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with "equal jitter", sans I/O.

    Each delay is uniform in ``[d/2, d]`` with ``d = min(cap, base * factor**n)``:
    the jitter spreads a fleet of gateways reconnecting to one restarted host,
    and the lower half-bound keeps a broken agent from being hammered.
    """

    base: float = 0.25
    cap: float = 10.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """The delay before the next attempt; each call grows the next one."""
        ceiling = min(self.cap, self.base * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start over after a connection that proved stable."""
        self.attempt = 0
