"""The Lua that makes ownership safe: each runs atomically inside Redis.

A lease alone is not a lock (Kleppmann, "How to do distributed locking"):
an owner paused past its lease still believes it owns the agent. So every
write to an agent's stream goes through :data:`APPEND`, which checks the
caller's lease token and writes in the same atomic step: the resource is
fenced, not the caller's belief. Tokens are ``<generation>:<replica>``, the
generation an ever-growing counter per agent.
"""

from __future__ import annotations

# Heartbeat; KEYS: replicas, epoch. ARGV: replica, lease_ms, leaving (0/1), a fresh epoch.
# Returns Redis's clock in ms, the live replicas (seen within a lease) and
# the epoch: a new one is set only if there is none (a fresh or flushed Redis).
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 10 * lease)
redis.call('SET', KEYS[2], ARGV[4], 'NX')
return {now, redis.call('ZRANGEBYSCORE', KEYS[1], now - lease, '+inf'), redis.call('GET', KEYS[2])}
"""

# Take a free agent; KEYS: lease, gen. ARGV: replica, lease_ms. Returns the token or nil.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
return token
"""

# Whether ``token`` holds the lease (1), re-took it because it lapsed untouched (2), or not (0).
# A lease that expired while Redis was away from its holder (an outage
# longer than the lease) is still the holder's if the generation has not
# moved: nobody acquired the agent since, so no other token ever wrote, and
# fencing holds. The holder keeps its ttyd connection and its viewers. A
# deliberate let-go (RELEASE, a hand-over entry) moves the generation on,
# so a late renewal or append of the one that let go cannot take it back.
_HELD = """
local function held(lease, gen, token, lease_ms)
  local current = redis.call('GET', lease)
  if current then
    if current == token then return 1 end
    return 0
  end
  if redis.call('GET', gen) ~= string.match(token, '^(%d+):') then return 0 end
  redis.call('SET', lease, token, 'PX', lease_ms)
  return 2
end
"""

# KEYS: lease, gen. ARGV: token, lease_ms. 1 if still ours (and extended),
# 2 if re-taken after it lapsed, 0 if not ours.
RENEW = (
    _HELD
    + """
local ours = held(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if ours == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return ours
"""
)

# KEYS: lease, gen. ARGV: token. 1 if it was ours (and is free now), 0 if not.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""

# The fenced append; KEYS: lease, gen, out, ckpt, status. ARGV: token,
# lease_ms, then (id, kind, data) triples. Returns what ``held`` said (1, or
# 2 if the lease was re-taken). Kind 'C' writes the checkpoint hash and trims
# the stream to the checkpoint before it, which any follower may still be
# reading from; kind 's' also keeps the latest status for joiners; kind 'h'
# (the last entry of an owner that lets go) releases the lease with it.
#
# A batch whose reply was lost (a timeout) is sent again, and Redis may have
# run it already: the script is atomic, so it ran whole or not at all, and
# fencing means nobody else wrote since. An entry at or below the stream's
# last id is then one of ours, already there: skipped, so a retry appends
# exactly what is missing. The ids are byte offsets, so nothing else can
# collide with them.
APPEND = (
    _HELD
    + """
local ours = held(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if ours == 0 then
  return redis.error_reply('FENCED this replica no longer owns the agent')
end
for i = 3, #ARGV, 3 do
  local id, kind, data = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'C' then
    local previous = redis.call('HGET', KEYS[4], 'id')
    if previous ~= id then  -- else written already, by a batch sent again
      redis.call('HSET', KEYS[4], 'id', id, 'data', data)
      if previous then redis.call('XTRIM', KEYS[3], 'MINID', '~', previous) end
    end
  else
    local added = redis.pcall('XADD', KEYS[3], id, 'k', kind, 'd', data)
    if type(added) == 'table' and added.err then
      if not string.find(added.err, 'equal or smaller', 1, true) then return added end
    else
      if kind == 's' then redis.call('SET', KEYS[5], data) end
      -- A hand-over frees the agent in the same step: whoever reads it can take it.
      if kind == 'h' then
        redis.call('DEL', KEYS[1])
        redis.call('INCR', KEYS[2])
      end
    end
  end
end
return ours
"""
)

# A follower's start, in one step; KEYS: ckpt, out, lease, status.
# Returns {checkpoint id, checkpoint data, owner token, status, entries after the checkpoint}.
BOOTSTRAP = """
local c = redis.call('HMGET', KEYS[1], 'id', 'data')
local start = '-'
if c[1] then start = '(' .. c[1] end
return {c[1], c[2], redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4]),
        redis.call('XRANGE', KEYS[2], start, '+')}
"""
