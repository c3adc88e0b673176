"""Spectator links in Redis: one store for every replica, redeemed atomically.

Layout (under ``key_prefix``):

* ``share:<id>``: a hash (token digest, agent, creator, created, expires in
  ms of Redis's clock, max_uses, uses, revoked, label) that Redis deletes
  :data:`~gateway.shares.RETENTION` after the link's expiry, as the file
  store forgets it;
* ``share-token:<digest>``: the id of the link with that token's SHA-256
  (the token itself is never stored), with the same lifetime;
* ``shares``: a sorted set of ids by when they are forgotten, for listing.

Redeeming checks and counts a use in one script (:data:`REDEEM`), so a
``max_uses = 1`` link opened on two replicas at once lets exactly one in.
Expiry is judged on Redis's clock, the same for every replica.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..auth import token_digest
from ..shares import RETENTION, Share
from .client import RedisLink
from .lua import NOW_MS, Lua, text

# KEYS: share, share-token, shares. ARGV: id, digest, agent, creator, ttl_ms,
# max_uses ('' for none), retention_ms, label ('' for none). Returns Redis's now (ms).
CREATE = Lua(
    NOW_MS
    + """
local expires = now + tonumber(ARGV[5])
local forget = expires + tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'agent', ARGV[3], 'creator', ARGV[4],
           'created', now, 'expires', expires, 'max_uses', ARGV[6], 'uses', 0, 'revoked', 0,
           'label', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], forget)
redis.call('SET', KEYS[2], ARGV[1], 'PXAT', forget)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], forget, ARGV[1])
return now
"""
)

# KEYS: share. ARGV: the token's digest. The new use count, or nil when the
# link is not usable now (unknown, another token, revoked, expired, used up).
REDEEM = Lua(
    NOW_MS
    + """
local v = redis.call('HMGET', KEYS[1], 'token', 'revoked', 'expires', 'max_uses', 'uses')
if v[1] ~= ARGV[1] or v[2] ~= '0' or now >= tonumber(v[3]) then return false end
if v[4] ~= '' and tonumber(v[5]) >= tonumber(v[4]) then return false end
return redis.call('HINCRBY', KEYS[1], 'uses', 1)
"""
)

# KEYS: share. 1 while spectators who came through it may stay.
ACTIVE = Lua(
    NOW_MS
    + """
local v = redis.call('HMGET', KEYS[1], 'revoked', 'expires')
if v[1] ~= '0' or not v[2] or now >= tonumber(v[2]) then return 0 end
return 1
"""
)

# KEYS: share. Marks it revoked if it exists; returns its fields.
REVOKE = Lua(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'revoked', 1)
return redis.call('HGETALL', KEYS[1])
"""
)


def _share(share_id: str, fields: dict[bytes, bytes]) -> Share | None:
    try:
        max_uses = text(fields.get(b"max_uses"))
        # Links made before labels existed have no such field.
        label = text(fields.get(b"label"))
        return Share(
            id=share_id,
            token_sha256=text(fields[b"token"]),
            agent=text(fields[b"agent"]),
            creator=text(fields[b"creator"]),
            created_at=int(fields[b"created"]) / 1000,
            expires_at=int(fields[b"expires"]) / 1000,
            max_uses=int(max_uses) if max_uses else None,
            uses=int(fields.get(b"uses", b"0")),
            revoked=fields.get(b"revoked") == b"1",
            label=label or None,
        )
    except (KeyError, ValueError):
        return None


class RedisShares:
    """:class:`~gateway.seams.ShareBackend` in Redis."""

    def __init__(self, link: RedisLink, prefix: str) -> None:
        self._link = link
        self._prefix = prefix
        self._index = f"{prefix}shares"

    def _key(self, share_id: str) -> str:
        return f"{self._prefix}share:{share_id}"

    def _token_key(self, digest: str) -> str:
        return f"{self._prefix}share-token:{digest}"

    async def load(self) -> None:
        """Nothing to load: Redis holds the links."""

    def close(self) -> None:
        """Nothing to close: the link to Redis is the node's."""

    async def create(
        self,
        agent: str,
        creator: str,
        ttl_seconds: int,
        max_uses: int | None,
        label: str | None = None,
    ) -> tuple[Share, str]:
        token = secrets.token_urlsafe(32)
        share_id = secrets.token_urlsafe(9)
        digest = token_digest(token)
        keys = [self._key(share_id), self._token_key(digest), self._index]
        args: list[Any] = [share_id, digest, agent, creator, ttl_seconds * 1000]
        args += ["" if max_uses is None else max_uses, RETENTION * 1000, label or ""]
        now = int(await CREATE(self._link, keys, args))
        share = Share(
            id=share_id,
            token_sha256=digest,
            agent=agent,
            creator=creator,
            created_at=now / 1000,
            expires_at=(now + ttl_seconds * 1000) / 1000,
            max_uses=max_uses,
            label=label,
        )
        return share, token

    async def redeem(
        self, token: str, backed: Callable[[Share], bool] = lambda share: True
    ) -> Share | None:
        digest = token_digest(token)
        found = await self._link.call(self._link.client.get(self._token_key(digest)))
        if found is None:
            return None
        share = await self.get(text(found))
        # ``backed`` is this replica's config (does the creator still have the
        # agent?), asked before the use is counted; REDEEM checks the rest again.
        if share is None or share.token_sha256 != digest or not backed(share):
            return None
        uses = await REDEEM(self._link, [self._key(share.id)], [digest])
        if uses is None:
            return None
        share.uses = int(uses)
        return share

    async def revoke(self, share_id: str) -> Share | None:
        flat = await REVOKE(self._link, [self._key(share_id)])
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}
        return _share(share_id, fields) if fields else None

    async def get(self, share_id: str) -> Share | None:
        fields = await self._link.call(self._link.client.hgetall(self._key(share_id)))
        return _share(share_id, fields) if fields else None

    async def active(self, share_id: str) -> bool:
        return bool(await ACTIVE(self._link, [self._key(share_id)]))

    async def all(self) -> list[Share]:
        client = self._link.client
        ids = [text(i) for i in await self._link.call(client.zrange(self._index, 0, -1))]
        if not ids:
            return []
        pipe = client.pipeline(transaction=False)
        for share_id in ids:
            pipe.hgetall(self._key(share_id))
        replies = await self._link.call(pipe.execute())
        shares = [_share(i, fields) for i, fields in zip(ids, replies, strict=True) if fields]
        forgotten = [i for i, fields in zip(ids, replies, strict=True) if not fields]
        if forgotten:
            await self._link.call(client.zrem(self._index, *forgotten))
        return sorted((s for s in shares if s is not None), key=lambda s: s.created_at)
