"""Who watches each agent, counting the viewers of every replica.

``presence:{<agent>}`` is a hash with two fields per replica, as the
per-user cap keeps its counts (:mod:`gateway.replica.connections`):
``n:<replica>``, that replica's part as JSON (``{"v": connections,
"p": {user: connections}}``), and ``t:<replica>``, until when (ms, Redis's
clock) the part holds. A replica writes its part when its viewers change
and again every third of :data:`TTL_MS`; one that crashed stops, and its
part stops counting :data:`TTL_MS` later (the next read deletes it). A
clean stop deletes its parts at once.

What ``/api/agents`` and the events show is this replica's own viewers
(live, from its hubs) plus the others' parts as last read: read at every
refresh, and at once for an agent another replica says changed (a
``presence`` message on the control channel after it wrote its part). A
change of the others' part is told to :attr:`RedisPresence.listeners`, so
the replica that speaks for the agent publishes it on the event feed
(:mod:`gateway.replica.events`). With Redis away the last parts read are
shown; everything is written again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import RedisUnavailable
from ..tasks import running
from .client import RedisLink
from .lua import LIVE_PARTS, NOW_MS, WRITE_PART, Arg, Lua, text

log = logging.getLogger(__name__)

# A replica's part holds this long unless written again (every third of it).
TTL_MS = 6000

# KEYS: presence. ARGV: replica, part (JSON; '' to delete), ttl_ms.
SET_PART = Lua(
    NOW_MS
    + WRITE_PART
    + """
set_part(KEYS[1], ARGV[1], ARGV[2] ~= '' and ARGV[2] or nil, tonumber(ARGV[3]))
return 1
"""
)

# KEYS: presence. ARGV: replica. The other replicas' valid parts; lapsed ones are deleted.
OTHERS = Lua(
    NOW_MS
    + LIVE_PARTS
    + """
local parts = {}
for _, part in ipairs(live_parts(KEYS[1])) do
  if part[1] ~= ARGV[1] then table.insert(parts, part[2]) end
end
return parts
"""
)


@dataclass(frozen=True, slots=True)
class Part:
    """Viewers of one agent: connections, and connections per user (named viewers only)."""

    viewers: int = 0
    who: Mapping[str, int] = field(default_factory=dict)

    def json(self) -> str:
        return json.dumps({"v": self.viewers, "p": dict(self.who)}, sort_keys=True)

    @classmethod
    def parse(cls, raw: Any) -> Part:
        """A part as another replica wrote it; anything malformed counts as nobody."""
        try:
            data = json.loads(text(raw))
            viewers = int(data["v"])
            who = {str(k): int(v) for k, v in dict(data["p"]).items()}
        except (ValueError, TypeError, KeyError):
            return cls()
        return cls(max(0, viewers), {k: v for k, v in who.items() if v > 0})


def total(parts: list[Part]) -> Part:
    who: Counter[str] = Counter()
    for part in parts:
        who.update(part.who)
    return Part(sum(part.viewers for part in parts), dict(who))


class RedisPresence:
    """:class:`~gateway.seams.PresenceView` shared by the replicas.

    ``local()`` is this replica's part of every agent it has a hub for.
    """

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        replica: str,
        local: Callable[[], Mapping[str, Part]],
        ttl_ms: int | None = None,
    ) -> None:
        self._link = link
        self._prefix = prefix
        self._replica = replica
        self._local = local
        self._ttl_ms = TTL_MS if ttl_ms is None else ttl_ms
        # The other replicas' parts, summed, as last read.
        self._others: dict[str, Part] = {}
        # What Redis holds as this replica's part (as far as we know).
        self._written: dict[str, Part] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        # Told the agent whose others' part changed.
        self.listeners: list[Callable[[str], None]] = []
        # Told the agents whose part this replica wrote (the control channel's announcement).
        self.announce: Callable[[str], Any] | None = None

    def _key(self, agent_id: str) -> str:
        return f"{self._prefix}presence:{{{agent_id}}}"

    # --- PresenceView -------------------------------------------------------------

    def fleet_wide(
        self, agent_id: str, viewers: int, presence: Mapping[str, int]
    ) -> tuple[int, dict[str, int]]:
        both = total([Part(viewers, presence), self._others.get(agent_id, Part())])
        return both.viewers, dict(both.who)

    # --- changes --------------------------------------------------------------------

    def local_changed(self, agent_id: str, part: Part) -> None:
        """This replica's viewers of ``agent_id`` may have changed: write its part soon."""
        if part != self._written.get(agent_id, Part()):
            self._dirty.add(agent_id)
            self._wake.set()

    async def others_changed(self, agent_id: str) -> None:
        """Another replica wrote its part of ``agent_id``: read the others' again."""
        with contextlib.suppress(RedisUnavailable):
            await self._read(agent_id)

    # --- the loop --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def refreshing(self) -> AsyncIterator[None]:
        """Keep this replica's parts written and the others' read; delete ours after."""
        async with running(self._run(), "presence"):
            yield
        self._local = dict
        with contextlib.suppress(RedisUnavailable):
            await self._write(set(self._written))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        refresh_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(refresh_at):
                    await self._wake.wait()
            self._wake.clear()
            everything = loop.time() >= refresh_at
            try:
                if everything:
                    refresh_at = loop.time() + self._ttl_ms / 3000
                    await self._write(set(self._local()) | set(self._written))
                    for agent_id in set(self._local()) | set(self._others):
                        await self._read(agent_id)
                else:
                    await self._write(set(self._dirty))
            except RedisUnavailable as exc:
                log.info("presence: not written: %s", exc)
                self._wake.set()
                await asyncio.sleep(min(1.0, self._ttl_ms / 3000))

    async def _write(self, agents: set[str]) -> None:
        local = self._local()
        for agent_id in sorted(agents):
            self._dirty.discard(agent_id)
            part = local.get(agent_id, Part())
            args: list[Arg] = [self._replica, part.json() if part.viewers else "", self._ttl_ms]
            try:
                await SET_PART(self._link, [self._key(agent_id)], args)
            except RedisUnavailable:
                self._dirty.add(agent_id)
                raise
            changed = self._written.get(agent_id, Part()) != part
            if part.viewers:
                self._written[agent_id] = part
            else:
                self._written.pop(agent_id, None)
            if changed and self.announce is not None:
                await self.announce(agent_id)

    async def _read(self, agent_id: str) -> None:
        parts = await OTHERS(self._link, [self._key(agent_id)], [self._replica])
        others = total([Part.parse(raw) for raw in parts])
        before = self._others.get(agent_id, Part())
        if others.viewers:
            self._others[agent_id] = others
        else:
            self._others.pop(agent_id, None)
        if others != before:
            for listener in self.listeners:
                listener(agent_id)
