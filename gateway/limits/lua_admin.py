"""Redis scripts of the limits admin API: read a scope's state, set its overrides.

The per-call pair (reserve, settle) and the helpers every script shares are in ``lua.py``.
"""

from __future__ import annotations

from gateway.limits.lua_common import COMMON

#: KEYS: cfg, h, l. ARGV: now, field. Read-only: expired leases are subtracted, not purged.
INSPECT = (
    COMMON
    + r"""
local now = clock(ARGV[1])
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', num(now))
local expired = 0
for _, m in ipairs(gone) do expired = expired + weight(m) end
local ov = redis.call('HGET', KEYS[1], ARGV[2]) or ''
return {num(now), num(expired), ov, redis.call('HGETALL', KEYS[2])}
"""
)

#: KEYS: cfg. ARGV: field, comma-separated fields the section owns, JSON of the new values.
SET_OVERRIDE = r"""
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local obj = {}
if cur then obj = cjson.decode(cur) end
for f in string.gmatch(ARGV[2], '[^,]+') do obj[f] = nil end
for k, v in pairs(cjson.decode(ARGV[3])) do obj[k] = v end
if next(obj) == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return '{}'
end
local enc = cjson.encode(obj)
redis.call('HSET', KEYS[1], ARGV[1], enc)
return enc
"""

#: KEYS: l. ARGV: now, max. The scope's leases still held: {now, member, score, member, score...}.
LEASES = (
    COMMON
    + r"""
local now = clock(ARGV[1])
local held = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. num(now), '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(held, 1, num(now))
return held
"""
)

#: KEYS: h, l. ARGV: rid. Drops the lease of reservation ``rid`` from this scope (its amount
#: leaves ``r``, nothing is booked); returns {member, score}, or {} if it holds none here.
RELEASE = (
    COMMON
    + r"""
local prefix = ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then
    local score = redis.call('ZSCORE', KEYS[2], m)
    redis.call('ZREM', KEYS[2], m)
    redis.call('HINCRBY', KEYS[1], 'r', -weight(m))
    return {m, score}
  end
end
return {}
"""
)

#: KEYS: h, l. ARGV: member, score. Puts a released lease back (an admin release whose audit
#: record was refused).
RESTORE = (
    COMMON
    + r"""
if redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'r', weight(ARGV[1]))
end
return 1
"""
)
