"""Which replica should own which agent, and when to act on it; sans I/O.

Rendezvous hashing: every replica ranks the live replicas for an agent by
the same hash, so all of them agree on a first choice without talking, and
when a replica comes or goes only the agents it ranks first move. A free
agent is contended for after ``rank x CONTEND_STEP`` (the first choice at
once, the second a little later in case the first is gone), and an owner
hands an agent over to its first choice once that replica has been live
for :data:`SETTLE` (not on a blip), one agent per pass, so a new replica
fills up without a storm of reconnections; the replica that let go leaves
the agent alone for as long, unless nobody else takes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Seconds between the ranks' turns to take a free agent.
CONTEND_STEP = 0.1
# Seconds a replica must have been live before agents are handed to it.
SETTLE = 3.0


def ranking(agent_id: str, replicas: Iterable[str]) -> list[str]:
    """The replicas in the order they should own ``agent_id``, best first."""

    def weight(replica: str) -> bytes:
        return hashlib.blake2b(f"{agent_id}\0{replica}".encode(), digest_size=8).digest()

    return sorted(replicas, key=weight)


@dataclass(frozen=True, slots=True)
class Plan:
    contend: tuple[str, ...] = ()
    release: tuple[str, ...] = ()
    # When this replica's turn comes for a free agent it may not take yet
    # (the clock's time), so the next pass runs then and not a poll later.
    next_turn: float | None = None


@dataclass
class Placement:
    """One replica's view: call :meth:`plan` with what Redis said at each pass."""

    me: str
    # When each free agent was first seen free (by this replica).
    _free_since: dict[str, float] = field(default_factory=dict)
    # Agents this replica handed over, and until when it leaves them to the others.
    _held_back: dict[str, float] = field(default_factory=dict)
    # Until when it takes no free agent at all (see :meth:`hold_back_all`).
    _quiet_until: float = 0.0

    def hold_back_all(self, until: float) -> None:
        """Take no free agent before ``until``: Redis is back, holders re-take their leases."""
        self._quiet_until = max(self._quiet_until, until)

    def plan(
        self,
        now: float,
        owners: Mapping[str, str | None],
        live: Mapping[str, float],
    ) -> Plan:
        """``owners``: agent -> owning replica (None: free); ``live``: replica -> live since."""
        replicas = set(live) | {self.me}
        contend: list[str] = []
        release: list[str] = []
        turns: list[float] = []
        for agent_id, owner in owners.items():
            if owner is not None:
                self._free_since.pop(agent_id, None)
                if owner == self.me and not release:
                    first = ranking(agent_id, replicas)[0]
                    if first != self.me and now - live.get(first, now) >= SETTLE:
                        release.append(agent_id)
                continue
            since = self._free_since.setdefault(agent_id, now)
            if self._held_back.get(agent_id, now) > now or self._quiet_until > now:
                continue
            turn = since + ranking(agent_id, replicas).index(self.me) * CONTEND_STEP
            if now >= turn:
                contend.append(agent_id)
            else:
                turns.append(turn)
        for agent_id in set(self._free_since) - set(owners):
            del self._free_since[agent_id]
        for agent_id, until in list(self._held_back.items()):
            if until <= now:
                del self._held_back[agent_id]
        return Plan(tuple(contend), tuple(release), min(turns, default=None))

    def handed_over(self, agent_id: str, now: float) -> None:
        """This replica let go of ``agent_id`` for its first choice: do not take it back at once."""
        self._held_back[agent_id] = now + SETTLE
