"""The Redis side of the stores: one Lua script per operation (see store.py for the key layout).
Here the per-call pair (reserve, settle); ``COMMON``, the helpers every script starts with, is in
``lua_common.py``;
the admin scripts are in ``lua_admin.py``, the ones acting on live reservations in ``lua_leases.py``.

Each script declares every key it touches in KEYS (all under one ``{team}`` hash tag, so they
share a Redis Cluster slot) and takes the clock from ``TIME`` unless the caller injects one
(tests), so leases and windows follow one clock for all replicas. The scripts mirror
``MemoryStore`` line for line; the shared test suite holds them to the same results.
"""

from __future__ import annotations

from gateway.limits.lua_common import COMMON

#: KEYS: cfg, then (h, l, w) per scope.
#: ARGV[1]: a JSON array (one argument: redis-py packs each argument separately, slowly) of
#:       now, rid, lease_ms, est_nano, est_tokens, window_ms, keep_ms, run_idx, team_idx,
#:       max_calls, max_identical, max_run_cost, fingerprint, n, then per scope
#:       (field, rpm, tpm, budget_day, budget_month, budget_total, retention_ms, concurrent);
#:       -1 = none. keep_ms: 0 = lapsed leases are released, > 0 = booked and marked that long.
#:       Then, optionally, 1: budget only (a priced action that is not a model call: no rate,
#:       concurrency, run-call or loop counting; the budgets and the run's cost cap apply).
#: A scope with a budget or a concurrency limit holds a lease per call in flight (its ``l``
#: set, flag 2); ZCARD of it is the scope's calls in flight.
#: Per scope: at most two expiry scans, one HMGET, one ZCARD; on commit two ZADD, one HSET and
#: PEXPIRE (retention) of exactly the keys written. No reservation record: settle writes its own.
RESERVE = (
    COMMON
    + r"""
local ARGV = cjson.decode(ARGV[1])
local now = clock(ARGV[1])
local rid = ARGV[2]
local lease = tonumber(ARGV[3])
local est = tonumber(ARGV[4])
local est_tok = tonumber(ARGV[5])
local W = tonumber(ARGV[6])
local keep = tonumber(ARGV[7])
local run_idx = tonumber(ARGV[8])
local team_idx = tonumber(ARGV[9])
local fp = ARGV[13]
local n = tonumber(ARGV[14])
local WIN = {'day', 'month', 'total'}
local day = math.floor(now / 86400000)
local month = month_of(day)

local fields = {}
for i = 1, n do fields[i] = ARGV[14 + (i - 1) * 8 + 1] end
local ovs, team_ov = read_overrides(KEYS[1], fields, team_idx)
local max_calls = pick(team_ov, 'run_max_calls', opt(ARGV[10]))
local max_ident = pick(team_ov, 'run_max_identical', opt(ARGV[11]))
local run_cost = pick(team_ov, 'run_max_cost', opt(ARGV[12]))
local budget_only = ARGV[15 + n * 8] == 1
if budget_only then max_calls, max_ident = nil, nil end

local denials = {}
local function deny(reason, prio, idx, limit, retry, window)
  local first = 1
  if retry >= 0 then first = 0 end
  table.insert(denials, {prio, first, retry,
    reason .. ',' .. (idx - 1) .. ',' .. num(limit) .. ',' .. num(retry) .. ',' .. (window or '')})
end
local function entry_score(w, index)
  local e = redis.call('ZRANGE', w, index, index, 'WITHSCORES')
  return tonumber(e[2])
end

-- Read (after expiring old log entries and leases) and check every scope.
local st = {}
local flags, budgets = {}, {}
local req_best, tok_best = nil, nil  -- {limit, remaining, scope}
local run_calls, run_spent, run_reps = 0, 0, 0
for i = 1, n do
  local a = 14 + (i - 1) * 8
  local ov = ovs[i]
  local rpm = pick(ov, 'rpm', opt(ARGV[a + 2]))
  local tpm = pick(ov, 'tpm', opt(ARGV[a + 3]))
  local conc = pick(ov, 'concurrent', opt(ARGV[a + 8]))
  if budget_only then rpm, tpm, conc = nil, nil, nil end
  local bl = {pick(ov, 'day', opt(ARGV[a + 4])), pick(ov, 'month', opt(ARGV[a + 5])), pick(ov, 'total', opt(ARGV[a + 6]))}
  if i == run_idx and run_cost then
    if bl[3] == nil or run_cost < bl[3] then bl[3] = run_cost end
  end
  local k = 1 + (i - 1) * 3
  local h, l, w = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local has_budget = bl[1] or bl[2] or bl[3]
  local has_rate = rpm or tpm
  local flag, r_gone, tw_gone = 0, 0, 0
  if has_budget or conc then flag = flag + 2; r_gone = lapse(h, l, now, keep) end
  if has_rate then flag = flag + 1; tw_gone = expire(w, now - W) end
  flags[i] = flag
  local s = {r = 0, tw = 0, dirty = (r_gone > 0 or tw_gone > 0)}
  st[i] = s
  if flag > 0 or i == run_idx then
    local v = redis.call('HMGET', h, 'r', 'tw', 'd', 'dk', 'm', 'mk', 't', 'calls', 'f:' .. fp, 'xt')
    if v[10] and tonumber(v[10]) <= now then prune_marks(h, now, keep) end
    s.r = (tonumber(v[1]) or 0) - r_gone
    s.tw = (tonumber(v[2]) or 0) - tw_gone
    if i == run_idx then
      run_calls = tonumber(v[8]) or 0
      run_spent = tonumber(v[7]) or 0
      if fp ~= '' then run_reps = tonumber(v[9]) or 0 end
    end
    if has_budget then
      local spent = {0, 0, tonumber(v[7]) or 0}
      if tonumber(v[4]) == day then spent[1] = tonumber(v[3]) or 0 end
      if tonumber(v[6]) == month then spent[2] = tonumber(v[5]) or 0 end
      local best = nil
      for j = 1, 3 do
        if bl[j] then
          local rem = bl[j] - spent[j] - s.r
          if est > rem then
            -- only the calls in flight stand in the way: retry once they settle
            if est <= bl[j] - spent[j] then deny('reserved', 4, i, bl[j], 1000, WIN[j])
            else deny('budget', 2, i, bl[j], -1, WIN[j]) end
          end
          if best == nil or rem < best[2] then best = {bl[j], rem, WIN[j]} end
        end
      end
      table.insert(budgets, (i - 1) .. ',' .. best[3] .. ',' .. num(best[1]) .. ',' .. num(best[2]))
    end
    if conc and redis.call('ZCARD', l) + 1 > conc then deny('concurrent', 4, i, conc, 1000) end
    if has_rate then
      local count = redis.call('ZCARD', w)
      if rpm then
        if count + 1 > rpm then
          local retry = -1
          if count - rpm < count then retry = math.max(entry_score(w, count - rpm) + W - now, 1) end
          deny('requests', 4, i, rpm, retry)
        end
        local rem = rpm - count - 1
        if req_best == nil or rem < req_best[2] then req_best = {rpm, rem, i} end
      end
      if tpm then
        if est_tok > tpm then
          deny('too_large', 3, i, tpm, -1)
        elseif s.tw + est_tok > tpm then
          local need = s.tw + est_tok - tpm
          local retry = -1
          local all = redis.call('ZRANGE', w, 0, -1, 'WITHSCORES')
          for j = 1, #all, 2 do
            need = need - weight(all[j])
            if need <= 0 then
              retry = math.max(tonumber(all[j + 1]) + W - now, 1)
              break
            end
          end
          deny('tokens', 4, i, tpm, retry)
        end
        local rem = tpm - s.tw - est_tok
        if tok_best == nil or rem < tok_best[2] then tok_best = {tpm, rem, i} end
      end
    end
  end
end
if run_idx > 0 then
  if max_calls and run_calls + 1 > max_calls then deny('calls', 1, run_idx, max_calls, -1) end
  if fp ~= '' and max_ident and run_reps + 1 > max_ident then deny('loop', 0, run_idx, max_ident, -1) end
end

-- x-ratelimit-reset-*: when the tightest scope's oldest entry leaves the window.
local function info(x)
  if x == nil then return '' end
  local w = KEYS[1 + (x[3] - 1) * 3 + 3]
  local reset = W
  local o = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
  if #o > 0 then reset = tonumber(o[2]) + W - now end
  return num(x[1]) .. ',' .. num(x[2]) .. ',' .. num(reset)
end
local flag_csv = table.concat(flags, ',')
local budget_str = table.concat(budgets, ';')
local req_info, tok_info = info(req_best), info(tok_best)
if #denials > 0 then
  for i = 1, n do  -- keep what expired, change nothing else
    if st[i].dirty then
      redis.call('HSET', KEYS[1 + (i - 1) * 3 + 1], 'r', num(st[i].r), 'tw', num(st[i].tw))
    end
  end
  local best = denials[1]
  for j = 2, #denials do
    local d = denials[j]
    if d[1] < best[1] or (d[1] == best[1] and (d[2] > best[2] or (d[2] == best[2] and d[3] > best[3]))) then
      best = d
    end
  end
  return {0, num(now), best[4], flag_csv, req_info, tok_info, budget_str, run_calls, num(run_spent), run_reps,
          num(lapsed_booked)}
end

for i = 1, n do
  local k = 1 + (i - 1) * 3
  local h, l, w = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local s = st[i]
  local upd = {}
  if flags[i] % 2 == 1 then
    redis.call('ZADD', w, num(now), rid .. '|' .. num(est_tok))
    s.tw = s.tw + est_tok
    s.dirty = true
  end
  if flags[i] >= 2 then
    redis.call('ZADD', l, num(now + lease), rid .. '|' .. num(est))
    s.r = s.r + est
    s.dirty = true
  end
  if s.dirty then
    table.insert(upd, 'r'); table.insert(upd, num(s.r))
    table.insert(upd, 'tw'); table.insert(upd, num(s.tw))
  end
  if i == run_idx and not budget_only then
    table.insert(upd, 'calls'); table.insert(upd, run_calls + 1)
    if fp ~= '' then table.insert(upd, 'f:' .. fp); table.insert(upd, run_reps + 1) end
  end
  if #upd > 0 then redis.call('HSET', h, unpack(upd)) end
  local ret = tonumber(ARGV[14 + (i - 1) * 8 + 7])
  if ret > 0 then  -- every key written gets the scope's idle TTL; keys left alone keep theirs
    if #upd > 0 then redis.call('PEXPIRE', h, ret) end
    if flags[i] >= 2 then redis.call('PEXPIRE', l, ret) end
    if flags[i] % 2 == 1 then redis.call('PEXPIRE', w, ret) end
  end
end
if run_idx > 0 and not budget_only then run_calls = run_calls + 1 end
return {1, num(now), '', flag_csv, req_info, tok_info, budget_str, run_calls, num(run_spent), run_reps,
        num(lapsed_booked)}
"""
)

#: Scopes unused this long leave the activity index (``list_scopes``).
IDX_KEEP_MS = 30 * 86_400_000

#: KEYS: record, idx, then (h, l, w) per scope.
#: ARGV[1]: a JSON array of now, rid, est_nano, actual_nano, est_tokens, actual_tokens, settled_ttl_ms, window_ms,
#:       arrival_ms, n, then per scope (flags, retention_ms, field).
#: Per scope: one HMGET, the log/lease removals, one HSET, PEXPIRE (retention) of the hash and of
#: a window log re-added to (the lease set is only shrunk here, so it keeps reserve's TTL).
#: One SET ... GET checks and writes the idempotency record; the activity index is pruned only
#: when it gained a member (it cannot grow otherwise; ``list_scopes`` filters by age).
SETTLE = (
    COMMON
    + r"""
local ARGV = cjson.decode(ARGV[1])
if redis.call('SET', KEYS[1], 'S', 'PX', num(ARGV[7]), 'GET') == 'S' then return {0, 0} end
local now = clock(ARGV[1])
local rid = ARGV[2]
local est, act_all = tonumber(ARGV[3]), tonumber(ARGV[4])
local est_tok, act_tok = tonumber(ARGV[5]), tonumber(ARGV[6])
local W = tonumber(ARGV[8])
local arrival = tonumber(ARGV[9])
local n = tonumber(ARGV[10])
local day = math.floor(now / 86400000)
local month = month_of(day)
local minute = math.floor(now / 60000)
local slot = 'b' .. (minute % 60)
local late = 0
local idx = {}
for i = 1, n do
  local a = 10 + (i - 1) * 3
  local flag, ret, field = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
  local k = 2 + (i - 1) * 3
  local h, l, w = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local v = redis.call('HMGET', h, 'r', 'tw', 'd', 'dk', 'm', 'mk', 't', slot, 'x:' .. rid, 'xt')
  if v[10] and tonumber(v[10]) <= now then prune_marks(h, now, tonumber(ARGV[7])) end
  local r, tw = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  local act = act_all
  if flag % 2 == 1 and redis.call('ZREM', w, rid .. '|' .. num(est_tok)) == 1 then
    if arrival > now - W then
      redis.call('ZADD', w, num(arrival), rid .. '|' .. num(act_tok))
      -- the ZREM may have emptied (deleted) the log: the ZADD then starts a new key
      if ret > 0 then redis.call('PEXPIRE', w, ret) end
      tw = tw + act_tok - est_tok
    else
      tw = tw - est_tok
    end
  end
  if flag >= 2 then
    local booked = marked(v[9])
    local m = held_member(rid, est, booked)
    if redis.call('ZREM', l, m) == 1 then r = r - weight(m) else late = 1 end
    if booked then  -- a lapse of this reservation was booked already: only the excess is still due
      act = math.max(act - booked, 0)
      redis.call('HDEL', h, 'x:' .. rid)
    end
  end
  local d, m = act, act
  if tonumber(v[4]) == day then d = (tonumber(v[3]) or 0) + act end
  if tonumber(v[6]) == month then m = (tonumber(v[5]) or 0) + act end
  local burn = act
  local bm, bv = string.match(v[8] or '', '^(%d+):(%d+)$')
  if bm and tonumber(bm) == minute then burn = tonumber(bv) + act end
  redis.call('HSET', h, 'r', num(r), 'tw', num(tw), 'd', num(d), 'dk', day, 'm', num(m), 'mk', month,
             't', num((tonumber(v[7]) or 0) + act), slot, minute .. ':' .. num(burn))
  if ret > 0 then redis.call('PEXPIRE', h, ret) end
  table.insert(idx, num(now)); table.insert(idx, field)
end
if redis.call('ZADD', KEYS[2], unpack(idx)) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', num(now - IDX_KEEP_MS))
end
return {1, late}
""".replace("IDX_KEEP_MS", str(IDX_KEEP_MS))
)
