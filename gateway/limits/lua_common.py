"""``COMMON``: the Lua helpers every limits script starts with (see ``lua.py`` for the scripts'
conventions): number formatting, overrides, the clock, calendar months, and the expiry of
window-log entries and of lapsed leases (booked, marked, and the marks pruned).
"""

from __future__ import annotations

COMMON = r"""
local function num(x) return string.format('%d', x) end
local function opt(v)
  local n = tonumber(v)
  if n == nil or n < 0 then return nil end
  return n
end
-- The scopes' overrides (a JSON object per field of the config hash), and the team's one.
local function read_overrides(cfg, fields, team_idx)
  local raw = redis.call('HMGET', cfg, unpack(fields))
  local ovs = {}
  for i = 1, #fields do
    if raw[i] then ovs[i] = cjson.decode(raw[i]) end
  end
  local team_ov = nil
  if team_idx > 0 then team_ov = ovs[team_idx] end
  return ovs, team_ov
end
local function pick(ov, k, d)
  if ov ~= nil then
    local v = ov[k]
    if v ~= nil then
      if v == cjson.null then return nil end
      return tonumber(v)
    end
  end
  return d
end
local function weight(m) return tonumber(string.match(m, '|(%-?%d+)$')) end
local function clock(arg)
  local now = tonumber(arg)
  if now < 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local function month_of(day)
  local z = day + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m
  if mp < 10 then m = mp + 3 else m = mp - 9 end
  if m <= 2 then y = y + 1 end
  return y * 12 + (m - 1)
end
local function expire(zkey, upto)
  -- Drop the entries with score <= upto; return the sum of their weights.
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', num(upto))
  if #gone == 0 then return 0 end
  local sum = 0
  for _, m in ipairs(gone) do sum = sum + weight(m) end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', num(upto))
  return sum
end
-- HSET/HDEL of many fields, in chunks (Lua's unpack stops at a few thousand values).
local function hcall(cmd, h, list)
  for i = 1, #list, 2000 do
    redis.call(cmd, h, unpack(list, i, math.min(i + 1999, #list)))
  end
end
-- What a mark says lapses of a reservation booked already (nil: no mark).
local function marked(v)
  if not v then return nil end
  return tonumber(string.match(v, '^(%d+)'))
end
-- The lease member of reservation rid (estimate est) in a scope where lapses of it booked
-- 'booked' already: a re-price holds only the rest (lua_leases.REPRICE), so what is booked
-- is never held, or booked, twice.
local function held_member(rid, est, booked)
  return rid .. '|' .. num(math.max(est - (booked or 0), 0))
end
-- Drop the lapsed leases of a scope (hash h, lease set l); return the amount they held.
-- keep > 0 (limits.expired_reservations: book): their worker died with the calls in flight,
-- which may have been billed, so the amount is booked as spent now, and a mark
-- 'x:<rid>' = '<nano>:<deadline ms>' remembers it for keep ms, so a settle arriving later
-- books only the excess. A reservation can lapse twice (re-held by a re-price after its first
-- lapse): its mark adds up. 'xt' is when the marks are next pruned (prune_marks).
local lapsed_booked = 0  -- what lapse() booked in this script (RESERVE and REPRICE report it)
local function lapse(h, l, now, keep)
  local gone = redis.call('ZRANGEBYSCORE', l, '-inf', num(now))
  if #gone == 0 then return 0 end
  local sum = 0
  local fields, ws = {}, {}
  for _, m in ipairs(gone) do
    local w = weight(m)
    sum = sum + w
    if keep > 0 and w > 0 then
      table.insert(fields, 'x:' .. string.match(m, '^(.*)|'))
      table.insert(ws, w)
    end
  end
  redis.call('ZREMRANGEBYSCORE', l, '-inf', num(now))
  local until_ms = num(now + keep)
  local marks = {}
  for i = 1, #fields, 2000 do
    local prev = redis.call('HMGET', h, unpack(fields, i, math.min(i + 1999, #fields)))
    for j = 1, #prev do
      table.insert(marks, fields[i + j - 1])
      table.insert(marks, num((marked(prev[j]) or 0) + ws[i + j - 1]) .. ':' .. until_ms)
    end
  end
  if #marks > 0 then
    lapsed_booked = lapsed_booked + sum
    local day = math.floor(now / 86400000)
    local month = month_of(day)
    local minute = math.floor(now / 60000)
    local slot = 'b' .. (minute % 60)
    local v = redis.call('HMGET', h, 'd', 'dk', 'm', 'mk', 't', slot, 'xt')
    local d, m = sum, sum
    if tonumber(v[2]) == day then d = (tonumber(v[1]) or 0) + sum end
    if tonumber(v[4]) == month then m = (tonumber(v[3]) or 0) + sum end
    local burn = sum
    local bm, bv = string.match(v[6] or '', '^(%d+):(%d+)$')
    if bm and tonumber(bm) == minute then burn = tonumber(bv) + sum end
    redis.call('HSET', h, 'd', num(d), 'dk', day, 'm', num(m), 'mk', month, 't', num((tonumber(v[5]) or 0) + sum),
               slot, minute .. ':' .. num(burn), 'xt', v[7] or until_ms)
    hcall('HSET', h, marks)
  end
  return sum
end
-- Drop the marks of lapsed leases whose time is up ('xt' <= now: the caller checked), so a
-- scope's hash does not keep one field per lapsed lease for ever (a dead worker's call never
-- settles). One pass over the hash, then the next pass is due in keep / 4 at the earliest:
-- a mark lives between keep and 1.25 keep. A settle after that books its whole cost again
-- (conservative: never less than what the provider may have billed).
local function prune_marks(h, now, keep)
  local all = redis.call('HGETALL', h)
  local del, left = {}, false
  for i = 1, #all, 2 do
    local f = all[i]
    if string.sub(f, 1, 2) == 'x:' then
      local due = tonumber(string.match(all[i + 1], ':(%d+)$'))
      if due == nil or due <= now then table.insert(del, f) else left = true end
    end
  end
  hcall('HDEL', h, del)
  if left then
    redis.call('HSET', h, 'xt', num(now + math.max(math.floor(keep / 4), 1000)))
  else
    redis.call('HDEL', h, 'xt')
  end
end
"""
