"""Redis scripts that act on live reservations: renew their leases, re-price them.

The per-call pair (reserve, settle) and the helpers every script shares are in ``lua.py``.
"""

from __future__ import annotations

from gateway.limits.lua_common import COMMON

#: KEYS: the lease sets (``l``) of the reservations' budget scopes, reservation by reservation.
#: ARGV[1]: a JSON array of now, lease_ms, then per reservation (its number of keys, its member).
#: Extends every lease still held (score > now) to now + lease_ms; a lapsed lease (already
#: released, or about to be by the next expiry scan) is left alone. Returns the number of
#: reservations whose every lease was renewed.
RENEW = (
    COMMON
    + r"""
local A = cjson.decode(ARGV[1])
local now = clock(A[1])
local expiry = num(now + tonumber(A[2]))
local k, held = 0, 0
for j = 3, #A, 2 do
  local c, m = tonumber(A[j]), A[j + 1]
  local all = 1
  for _ = 1, c do
    k = k + 1
    local s = redis.call('ZSCORE', KEYS[k], m)
    if s and tonumber(s) > now then redis.call('ZADD', KEYS[k], expiry, m) else all = 0 end
  end
  held = held + all
end
return held
"""
)

#: KEYS: cfg, then (h, l, w) per scope (the reservation's scopes, as in RESERVE).
#: ARGV[1]: a JSON array of now, rid, old_est, new_est, lease_ms, run_idx, team_idx, max_run_cost,
#:       n, keep_ms (as in RESERVE), then per scope (flags, field, rpm, tpm, budget_day, budget_month,
#:       budget_total, retention_ms, concurrent); -1 = none.
#: Moves the reservation from old_est to new_est on every budget scope. More: only if every
#: budget covers the difference (all or nothing); less: releases it. A lapsed lease is held
#: again (a fresh lease) if the budgets cover the new amount; if its lapse was booked (its
#: mark, see ``lua_common.lapse``), only what exceeds that is held (``held_member``), so a
#: call re-priced after a lapse is never booked twice. Returns
#: {1, '', least remaining after, booked by lapses, lapsed_booked} or {0, denial, '', 0, lapsed_booked}
#: (lapsed_booked: what lapses of any calls' leases this script booked, as RESERVE reports it).
REPRICE = (
    COMMON
    + r"""
local ARGV = cjson.decode(ARGV[1])
local now = clock(ARGV[1])
local rid = ARGV[2]
local old, new = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local run_idx, team_idx = tonumber(ARGV[6]), tonumber(ARGV[7])
local n = tonumber(ARGV[9])
local keep = tonumber(ARGV[10])
local S = 9
local A0 = 10
local WIN = {'day', 'month', 'total'}
local day = math.floor(now / 86400000)
local month = month_of(day)

local fields = {}
for i = 1, n do fields[i] = ARGV[A0 + (i - 1) * S + 2] end
local ovs, team_ov = read_overrides(KEYS[1], fields, team_idx)
local run_cost = pick(team_ov, 'run_max_cost', opt(ARGV[8]))

local denial, least, final = nil, nil, false
local max_booked = 0
local plan = {}
for i = 1, n do
  local a = A0 + (i - 1) * S
  if tonumber(ARGV[a + 1]) >= 2 then
    local k = 1 + (i - 1) * 3
    local h, l = KEYS[k + 1], KEYS[k + 2]
    local gone = lapse(h, l, now, keep)
    local v = redis.call('HMGET', h, 'r', 'd', 'dk', 'm', 'mk', 't', 'x:' .. rid)
    local r = (tonumber(v[1]) or 0) - gone
    local booked = marked(v[7]) or 0
    if booked > max_booked then max_booked = booked end
    local old_m, new_m = held_member(rid, old, booked), held_member(rid, new, booked)
    local score = redis.call('ZSCORE', l, old_m)
    local held = 0
    if score then held = weight(old_m) end
    local need = weight(new_m) - held
    local ov = ovs[i]
    local bl = {pick(ov, 'day', opt(ARGV[a + 5])), pick(ov, 'month', opt(ARGV[a + 6])), pick(ov, 'total', opt(ARGV[a + 7]))}
    if i == run_idx and run_cost then
      if bl[3] == nil or run_cost < bl[3] then bl[3] = run_cost end
    end
    local spent = {0, 0, tonumber(v[6]) or 0}
    if tonumber(v[3]) == day then spent[1] = tonumber(v[2]) or 0 end
    if tonumber(v[5]) == month then spent[2] = tonumber(v[4]) or 0 end
    for j = 1, 3 do
      if bl[j] then
        local rem = bl[j] - spent[j] - r
        if need > 0 and need > rem and not final then
          -- only the calls in flight stand in the way: 'reserved' (retry); else final 'budget'
          if new - booked <= bl[j] - spent[j] then
            if denial == nil then denial = 'reserved,' .. (i - 1) .. ',' .. num(bl[j]) .. ',1000,' .. WIN[j] end
          else
            denial, final = 'budget,' .. (i - 1) .. ',' .. num(bl[j]) .. ',-1,' .. WIN[j], true
          end
        end
        if least == nil or rem - need < least then least = rem - need end
      end
    end
    plan[#plan + 1] = {h, l, r, held, score, gone, old_m, new_m}
  end
end
if denial then
  for _, p in ipairs(plan) do  -- keep what expired, change nothing else
    if p[6] > 0 then redis.call('HSET', p[1], 'r', num(p[3])) end
  end
  return {0, denial, '', 0, num(lapsed_booked)}
end
for _, p in ipairs(plan) do
  if p[5] then redis.call('ZREM', p[2], p[7]) end
  redis.call('ZADD', p[2], p[5] or num(now + lease), p[8])
  redis.call('HSET', p[1], 'r', num(p[3] - p[4] + weight(p[8])))
end
local rest = ''
if least then rest = num(least) end
return {1, '', rest, num(max_booked), num(lapsed_booked)}
"""
)
