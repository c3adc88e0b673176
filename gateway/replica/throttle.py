"""The login throttle in Redis: failures and locks per name+address, fleet-wide.

The same policy as :class:`gateway.auth.LoginThrottle` (``FREE_FAILURES``
free, then a lock of 2, 4, 8 ... seconds up to ``LOCK_CAP``; forgotten
``FORGET_AFTER`` the last failure once unlocked), but every step is one
script on Redis's clock, so failures on different replicas add up and a
lock set by one holds on all. ``throttle:<digest>`` is a hash (count,
until, reported) that Redis deletes when it would be forgotten: the digest
is the SHA-256 of the caller's key, so names typed into the login form
(often a password) are not kept in Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable

from ..auth import FORGET_AFTER, FREE_FAILURES, LOCK_CAP
from .client import RedisLink
from .lua import NOW_MS, Lua

# KEYS: entry. ARGV: free failures, lock cap (ms), forget after (ms).
FAILED = Lua(
    NOW_MS
    + """
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if count >= tonumber(ARGV[1]) then
  locked = now + math.min(tonumber(ARGV[2]), 1000 * 2 ^ (count - tonumber(ARGV[1]) + 1))
  redis.call('HSET', KEYS[1], 'until', locked)
end
redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[3]), locked - now))
return count
"""
)

# KEYS: entry. Returns the ms until it may try again (0: now).
RETRY_AFTER = Lua(
    NOW_MS
    + """
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
return math.max(0, locked - now)
"""
)

# KEYS: entry. 1 for the first refusal under its current lock, else 0.
FIRST_REFUSAL = Lua(
    """
local v = redis.call('HMGET', KEYS[1], 'until', 'reported')
if not v[1] or v[1] == v[2] then return 0 end
redis.call('HSET', KEYS[1], 'reported', v[1])
return 1
"""
)


class RedisThrottle:
    """:class:`~gateway.seams.ThrottleBackend` in Redis."""

    def __init__(self, link: RedisLink, prefix: str) -> None:
        self._link = link
        self._prefix = prefix

    def _key(self, key: Hashable) -> str:
        # repr: the Authenticator's keys are tuples of str, whose repr is stable.
        digest = hashlib.sha256(repr(key).encode(errors="surrogatepass")).hexdigest()
        return f"{self._prefix}throttle:{digest}"

    async def retry_after(self, key: Hashable) -> float:
        return int(await RETRY_AFTER(self._link, [self._key(key)])) / 1000

    async def failed(self, key: Hashable) -> None:
        args = [FREE_FAILURES, LOCK_CAP * 1000, FORGET_AFTER * 1000]
        await FAILED(self._link, [self._key(key)], args)

    async def succeeded(self, key: Hashable) -> None:
        await self._link.call(self._link.client.delete(self._key(key)))

    async def first_refusal(self, key: Hashable) -> bool:
        return bool(await FIRST_REFUSAL(self._link, [self._key(key)]))
