"""A Lua script run by its digest, loaded again when Redis has forgotten it.

``EVALSHA`` sends only the digest; a Redis that restarted (or was told to
``SCRIPT FLUSH``) answers ``NOSCRIPT``, and the script is then sent whole
(``EVAL`` also caches it). Keys are passed as ``KEYS``, never built inside
a script, so every script names what it touches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from .client import RedisLink

Arg = str | bytes | int | float


class Lua:
    def __init__(self, source: str) -> None:
        self.source = source
        # EVALSHA names a script by its SHA-1: an id, not a security measure.
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, link: RedisLink, keys: Sequence[str], args: Sequence[Arg] = ()) -> Any:
        """Run it; RedisUnavailable when Redis does not answer."""
        try:
            return await link.call(link.client.evalsha(self.sha, len(keys), *keys, *args))
        except NoScriptError:
            return await link.call(link.client.eval(self.source, len(keys), *keys, *args))


# Redis's clock in milliseconds, inside a script: every deadline of the shared
# state is on it, so replicas whose clocks disagree still agree on expiry.
NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


# After NOW_MS: the live parts of a hash that each replica writes its own part
# of (``n:<replica>`` the value, ``t:<replica>`` its deadline on Redis's clock),
# as {replica, value} pairs in the hash's order; lapsed parts are deleted, so
# a replica that died stops counting without anyone cleaning up after it.
LIVE_PARTS = """
local function live_parts(key)
  local flat = redis.call('HGETALL', key)
  local fields = {}
  for i = 1, #flat, 2 do fields[flat[i]] = flat[i + 1] end
  local parts = {}
  for i = 1, #flat, 2 do
    local field = flat[i]
    if string.sub(field, 1, 2) == 'n:' then
      local replica = string.sub(field, 3)
      if tonumber(fields['t:' .. replica] or '0') < now then
        redis.call('HDEL', key, field, 't:' .. replica)
      else
        table.insert(parts, {replica, flat[i + 1]})
      end
    end
  end
  return parts
end
"""


# After NOW_MS: write (or, with value nil, delete) one replica's part of such
# a hash, holding for ttl_ms; the hash goes with its last part.
WRITE_PART = """
local function set_part(key, replica, value, ttl_ms)
  if value then
    redis.call('HSET', key, 'n:' .. replica, value, 't:' .. replica, now + ttl_ms)
    redis.call('PEXPIRE', key, 2 * ttl_ms)
  else
    redis.call('HDEL', key, 'n:' .. replica, 't:' .. replica)
  end
end
"""


def text(value: Any) -> str:
    """A reply as text (replies are raw bytes: see client.RedisLink)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)
