"""One emulation budget per turn of the event loop, shared by a fleet's hubs."""

from __future__ import annotations

import asyncio

# Time all the hubs of a fleet together may spend emulating per turn of the
# event loop; each feeds slices of its backend's FEED_PIECE (about a
# millisecond of work each).
EMULATION_BUDGET = 0.005


class EmulationBudget:
    """A budget per hub would let fifty busy agents hold the loop for fifty
    budgets in one turn. The turn is told by a ``call_soon`` callback: it runs
    at the start of the next turn, after every hub that ran in this one.
    """

    def __init__(self, seconds: float = EMULATION_BUDGET) -> None:
        self.seconds = seconds
        self._spent = 0.0
        self._armed = False

    def deadline(self) -> float | None:
        """Until when the caller may emulate now, or None: wait for the next turn."""
        loop = asyncio.get_running_loop()
        if not self._armed:
            self._armed = True
            loop.call_soon(self._next_turn)
        remaining = self.seconds - self._spent
        return loop.time() + remaining if remaining > 0 else None

    def spend(self, seconds: float) -> None:
        self._spent += seconds

    def _next_turn(self) -> None:
        self._spent = 0.0
        self._armed = False
