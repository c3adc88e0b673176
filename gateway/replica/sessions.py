"""Sessions and one-time login links in Redis, shared by every replica.

Layout (under ``key_prefix``):

* ``session:<key>``: a hash (user, share, agent, created, last; times in ms
  of Redis's clock) that Redis itself deletes: its ``PEXPIRE`` is the
  sooner of the idle and the absolute deadline, moved by each touch. The
  key is the SHA-256 of the cookie's id (:func:`gateway.auth.session_key`):
  Redis never holds a session id, so a dump of it logs nobody in.
* ``sessions`` and ``sessions:share:<share id>``: sorted sets of session
  keys scored by their absolute deadline, to find the sessions of a user or
  of a share link; a member whose session is gone is skipped and pruned.
* ``login-link:<token digest>``: the user of a one-time login link, taken
  with ``GETDEL`` (two replicas cannot both redeem it), gone after a day.

Timeouts are decided on Redis's clock, inside the scripts, so replicas
whose clocks drift apart still agree on when a session ends.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection, Iterable
from typing import Any

from ..auth import Session, session_key
from .client import RedisLink
from .lua import NOW_MS, Arg, Lua, text

log = logging.getLogger(__name__)

# A one-time login link not used within this long is forgotten.
LOGIN_LINK_TTL_MS = 24 * 3600 * 1000

# KEYS: session, sessions, [sessions:share:<id>]. ARGV: user, share, agent,
# idle_ms, absolute_ms, key. Returns Redis's now (ms).
CREATE = Lua(
    NOW_MS
    + """
local idle, absolute = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('HSET', KEYS[1], 'user', ARGV[1], 'share', ARGV[2], 'agent', ARGV[3],
           'created', now, 'last', now)
redis.call('PEXPIRE', KEYS[1], math.min(idle, absolute))
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  redis.call('ZADD', KEYS[i], now + absolute, ARGV[6])
  redis.call('PEXPIRE', KEYS[i], absolute)
end
return now
"""
)

# KEYS: session. ARGV: idle_ms, absolute_ms, touch (1/0).
# Returns {user, share, agent, created, last} or nil.
GET = Lua(
    NOW_MS
    + """
local v = redis.call('HMGET', KEYS[1], 'user', 'share', 'agent', 'created', 'last')
if not v[1] then return false end
local idle, absolute = tonumber(ARGV[1]), tonumber(ARGV[2])
local created, last = tonumber(v[4]), tonumber(v[5])
if not created or not last or now - last > idle or now - created > absolute then
  redis.call('DEL', KEYS[1])
  return false
end
if ARGV[3] == '1' then
  last = now
  redis.call('HSET', KEYS[1], 'last', now)
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.min(idle, created + absolute - now)))
end
return {v[1], v[2], v[3], created, last}
"""
)

# KEYS: session. Returns its fields (as HGETALL) and deletes it, in one step.
END = Lua(
    """
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v
"""
)


def _session(key: str, fields: dict[bytes, bytes], session_id: str = "") -> Session | None:
    user = fields.get(b"user")
    if user is None:
        return None
    try:
        created = int(fields.get(b"created", b"0")) / 1000
        last = int(fields.get(b"last", b"0")) / 1000
    except ValueError:
        return None
    return Session(
        session_id,
        text(user),
        created,
        last,
        text(fields.get(b"share")) or None,
        text(fields.get(b"agent")) or None,
        key=key,
    )


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


class RedisSessions:
    """:class:`~gateway.seams.SessionBackend` in Redis."""

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        *,
        idle_timeout: float,
        absolute_timeout: float,
        users: Iterable[str] = (),
    ) -> None:
        self._link = link
        self._prefix = prefix
        self._idle_ms = int(idle_timeout * 1000)
        self._absolute_ms = int(absolute_timeout * 1000)
        self._index = f"{prefix}sessions"
        # The users this replica was started with or last told to keep (see expire).
        self._kept = frozenset(users)

    def _key(self, key: str) -> str:
        return f"{self._prefix}session:{key}"

    def _share_index(self, share_id: str) -> str:
        return f"{self._prefix}sessions:share:{share_id}"

    async def create(
        self, user: str, *, share_id: str | None = None, agent: str | None = None
    ) -> Session:
        session = Session(secrets.token_urlsafe(32), user, 0.0, 0.0, share_id, agent)
        keys = [self._key(session.key), self._index]
        if share_id is not None:
            keys.append(self._share_index(share_id))
        args: list[Arg] = [user, share_id or "", agent or ""]
        args += [self._idle_ms, self._absolute_ms, session.key]
        now = await CREATE(self._link, keys, args) / 1000
        session.created = session.last_seen = now
        return session

    async def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        key = session_key(session_id)
        reply = await GET(
            self._link, [self._key(key)], [self._idle_ms, self._absolute_ms, int(touch)]
        )
        if not reply:
            return None
        user, share, agent, created, last = reply
        fields = {b"user": user, b"share": share, b"agent": agent}
        fields |= {b"created": str(created).encode(), b"last": str(last).encode()}
        return _session(key, fields, session_id)

    async def alive(self, keys: Collection[str]) -> set[str]:
        if not keys:
            return set()
        ordered = list(keys)
        pipe = self._link.client.pipeline(transaction=False)
        for key in ordered:
            pipe.exists(self._key(key))
        found = await self._link.call(pipe.execute())
        # Redis's own expiry is exact on its clock: an existing key is a live session.
        return {key for key, exists in zip(ordered, found, strict=True) if exists}

    async def end(self, key: str) -> Session | None:
        return _session(key, _pairs(await END(self._link, [self._key(key)])))

    async def _read(self, keys: list[str]) -> list[Session | None]:
        if not keys:
            return []
        pipe = self._link.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(self._key(key))
        replies = await self._link.call(pipe.execute())
        return [_session(key, fields) for key, fields in zip(keys, replies, strict=True)]

    async def _members(self, index: str) -> list[str]:
        return [
            text(member) for member in await self._link.call(self._link.client.zrange(index, 0, -1))
        ]

    async def of_share(self, share_id: str) -> list[Session]:
        index = self._share_index(share_id)
        sessions = await self._read(await self._members(index))
        return [s for s in sessions if s is not None]

    async def expire(self, keep_users: Iterable[str]) -> list[Session]:
        """End the sessions of users no longer configured, when that list changes.

        Timed-out sessions need nothing: Redis deletes them. Users removed
        are looked for only when this replica's list of users *changes*
        (a reload), not at every sweep: during a rolling change of the
        config, a replica still on the old file must not end the sessions
        of users that the new one added.
        """
        keep = frozenset(keep_users)
        if keep == self._kept:
            return []
        self._kept = keep
        keys = await self._members(self._index)
        ended = []
        gone = []
        for key, session in zip(keys, await self._read(keys), strict=True):
            if session is None:
                gone.append(key)
            elif session.share_id is None and session.user not in keep:
                if await self.end(key) is not None:
                    ended.append(session)
                gone.append(key)
        if gone:
            await self._link.call(self._link.client.zrem(self._index, *gone))
        return ended


class RedisLoginLinks:
    """:class:`~gateway.seams.LoginLinkBackend` in Redis: a link works once, fleet-wide."""

    def __init__(self, link: RedisLink, prefix: str) -> None:
        self._link = link
        self._prefix = prefix

    def _key(self, token_sha256: str) -> str:
        return f"{self._prefix}login-link:{token_sha256}"

    async def add(self, token_sha256: str, user: str) -> None:
        client = self._link.client
        await self._link.call(client.set(self._key(token_sha256), user, px=LOGIN_LINK_TTL_MS))

    async def redeem(self, token_sha256: str) -> str | None:
        user = await self._link.call(self._link.client.getdel(self._key(token_sha256)))
        return None if user is None else text(user)
