/**
 * Lua for the Redis LimitStore. Each script runs atomically on the server, so many gateways admitting at
 * once see one order. All keys of a call share the workspace's hash tag (one Redis Cluster slot) and are
 * passed in KEYS; the call's structure comes as JSON (cjson) with indices into KEYS. Money moves with
 * INCRBY/HINCRBY (exact int64); comparisons use Lua numbers, exact below 2^53 nano-USD (budgets are
 * capped at $9M for that reason).
 */

const COMMON = `
local function num(v) return tonumber(v or '0') or 0 end
local function sliding(pk, ck, permille)
  return num(redis.call('GET', KEYS[ck])) + math.floor(num(redis.call('GET', KEYS[pk])) * (1000 - permille) / 1000)
end
local function slotsum(slots)
  local s = 0
  for _, k in ipairs(slots) do s = s + num(redis.call('GET', KEYS[k])) end
  return s
end
local function fmt(n) return string.format('%.0f', n) end
-- Drops reservations past their expiry from a bucket: members are "<id>:<amount>", or "L<lease id>" whose
-- amount lives in the lease hash (it shrinks as the lease is used). Told apart by the amount, not the L: a
-- reservation id may start with L too (a process's random prefix), and a run's holds have no lease hash.
local function expire(mk, zk, lk, now)
  local expired = redis.call('ZRANGEBYSCORE', zk, '-inf', now)
  if #expired == 0 then return end
  for _, m in ipairs(expired) do
    local amount = string.match(m, ':(%d+)$')
    if not amount and lk and string.sub(m, 1, 1) == 'L' then
      local lid = string.sub(m, 2)
      amount = redis.call('HGET', lk, lid)
      redis.call('HDEL', lk, lid)
    end
    if amount and amount ~= '0' then redis.call('HINCRBY', mk, 'r', '-' .. amount) end
  end
  redis.call('ZREMRANGEBYSCORE', zk, '-inf', now)
end
-- A bucket's hash (reserved total, levels), reservation set and lease hash live and die together, and at
-- least as long as any reservation in them (else an expired set would leave its total inflated, or an
-- expired total would let the set's expiry subtract from a fresh one). Lifetime buckets never expire.
local KEEP_MS = 172800000
local function keep(mk, zk, lk, ttl)
  if ttl == cjson.null or not ttl then return end
  local ms = math.max(ttl, KEEP_MS)
  redis.call('PEXPIRE', mk, ms)
  redis.call('PEXPIRE', zk, ms)
  redis.call('PEXPIRE', lk, ms)
end
-- A write that may be repeated (a retry of one whose reply was lost) applies once: true the first time,
-- when it sets its marker k (kept ms, by default an hour: as long as a reservation).
local ONCE_MS = 3600000
local function first_time(k, ms)
  return redis.call('SET', k, '1', 'NX', 'PX', ms or ONCE_MS)
end
-- Takes a call's reservation <id>:<amount> back from a bucket, if it is still there (so at most once).
local function unreserve(mk, zk, id, amount)
  if redis.call('ZREM', zk, id .. ':' .. amount) == 1 and amount ~= '0' then
    redis.call('HINCRBY', mk, 'r', '-' .. amount)
  end
end
-- A run's hold hash that holds nothing goes (runs are many, and short). Its reservation set is empty then,
-- and Redis drops an empty set by itself.
local function drop_if_idle(mk)
  if num(redis.call('HGET', mk, 'r')) == 0 then redis.call('DEL', mk) end
end
local function level(spend, steps)
  local n = 0
  for _, s in ipairs(steps) do if spend >= tonumber(s) then n = n + 1 end end
  return n
end
-- Adds a settled call's actual cost to its bucket's slot and reports a level change into out
-- (index, from, to, spend), as SETTLE and CONSUME answer; b.spendOnly: its level left alone.
local function spend_into(b, i, out)
  local mk = KEYS[b.m]
  if b.actual ~= '0' then redis.call('INCRBY', KEYS[b.cur], b.actual) end
  if b.ttl ~= cjson.null then redis.call('PEXPIRE', KEYS[b.cur], b.ttl) end
  keep(mk, KEYS[b.z], KEYS[b.l], b.ttl)
  if b.spendOnly then return end
  local spend = slotsum(b.slots)
  local lv = level(spend, b.steps)
  local from = num(redis.call('HGET', mk, 'lvl:' .. b.win))
  if lv ~= from then
    redis.call('HSET', mk, 'lvl:' .. b.win, lv)
    table.insert(out, tostring(i - 1)); table.insert(out, tostring(from)); table.insert(out, tostring(lv)); table.insert(out, fmt(spend))
  end
end
local ORDER = {'cost_nanousd', 'total_tokens', 'llm_calls', 'tool_calls', 'retries', 'span_depth', 'wall_time_ms'}
local AMOUNT = {cost_nanousd = true, total_tokens = true, wall_time_ms = true}
-- The first ceiling crossed (same rules as core's crossedCeiling), as a KillReason JSON, or nil.
local function crossed(u, ceil, now)
  for _, c in ipairs(ORDER) do
    local limit = ceil[c]
    if limit then
      local v = u[c]
      local over
      if AMOUNT[c] then over = num(v) >= tonumber(limit) else over = num(v) > tonumber(limit) end
      if over then return cjson.encode({ceiling = c, value = tostring(v), limit = tostring(limit), at = now}) end
    end
  end
  return nil
end
local function usage(rk, now)
  local h = redis.call('HMGET', rk, 'cost', 'tokens', 'llm', 'tools', 'retries', 'depth', 'started')
  local started = num(h[7] or now)
  return {cost_nanousd = h[1] or '0', total_tokens = num(h[2]), llm_calls = num(h[3]), tool_calls = num(h[4]),
          retries = num(h[5]), span_depth = num(h[6]), wall_time_ms = now - started}
end
`;

/** ARGV: spec JSON, now, reservation id, expiresAt, permille of the minute elapsed. */
export const ADMIT = `${COMMON}
-- A run's hold keys live as long as the longest reservation in them, and no longer: the holds of calls
-- nobody settles (their gateway died) leave nothing behind once they expire, though the run never calls
-- again (their expiry is only applied at its next admission).
local function outlive(k, ms)
  if redis.call('PTTL', k) < ms then redis.call('PEXPIRE', k, ms) end
end
local spec = cjson.decode(ARGV[1])
local now = tonumber(ARGV[2])
local id = ARGV[3]
local exp = tonumber(ARGV[4])
local permille = tonumber(ARGV[5])
local run = spec.run
if run ~= cjson.null and run then
  local rk = KEYS[run.k]
  local killed = redis.call('HGET', rk, 'killed')
  if killed then return {'run', killed, '0'} end
  local u = usage(rk, now)
  if run.retry then u.retries = u.retries + 1 end
  local reason = crossed(u, run.ceil, now)
  if not reason and run.ceil.llm_calls and u.llm_calls + 1 > tonumber(run.ceil.llm_calls) then
    reason = cjson.encode({ceiling = 'llm_calls', value = tostring(u.llm_calls + 1), limit = tostring(run.ceil.llm_calls), at = now})
  end
  if not reason and run.ceil.span_depth and run.depth > tonumber(run.ceil.span_depth) then
    reason = cjson.encode({ceiling = 'span_depth', value = tostring(run.depth), limit = tostring(run.ceil.span_depth), at = now})
  end
  if reason then
    redis.call('HSET', rk, 'killed', reason)
    redis.call('HSETNX', rk, 'started', now)
    redis.call('PEXPIRE', rk, 604800000)
    return {'run', reason, '1'}
  end
  -- Calls in flight hold the rest under a cost or token ceiling (core's heldCeiling): wait, not a kill.
  local h = run.hold
  if h ~= cjson.null and h then
    expire(KEYS[h.cm], KEYS[h.cz], nil, now)
    expire(KEYS[h.tm], KEYS[h.tz], nil, now)
    drop_if_idle(KEYS[h.cm])
    drop_if_idle(KEYS[h.tm])
    local hc = num(redis.call('HGET', KEYS[h.cm], 'r'))
    local ht = num(redis.call('HGET', KEYS[h.tm], 'r'))
    local full
    local cl, tl = run.ceil.cost_nanousd, run.ceil.total_tokens
    if cl and hc > 0 and num(u.cost_nanousd) + hc >= tonumber(cl) then
      full = {ceiling = 'cost_nanousd', used = fmt(num(u.cost_nanousd)), held = fmt(hc), limit = cl}
    elseif tl and ht > 0 and u.total_tokens + ht >= tonumber(tl) then
      full = {ceiling = 'total_tokens', used = fmt(u.total_tokens), held = fmt(ht), limit = tl}
    end
    -- Room left for an earlier call of the run waiting to go (core's noRoomToLeave): only checked.
    local l = run.leave
    if not full and l ~= cjson.null and l then
      -- It goes only if that call still finds room after it, by the rule above with its hold added (on
      -- every ceiling, whatever that call holds of it: the rule turns it away by what is held).
      local hc2, ht2 = hc + tonumber(h.cost), ht + tonumber(h.tokens)
      if cl and hc2 > 0 and num(u.cost_nanousd) + hc2 >= tonumber(cl) then
        full = {ceiling = 'cost_nanousd', used = fmt(num(u.cost_nanousd)), held = fmt(hc), limit = cl, kept = l.cost}
      elseif tl and ht2 > 0 and u.total_tokens + ht2 >= tonumber(tl) then
        full = {ceiling = 'total_tokens', used = fmt(u.total_tokens), held = fmt(ht), limit = tl, kept = l.tokens}
      end
    end
    if full then return {'held', cjson.encode(full)} end
  end
end
for i, r in ipairs(spec.rates) do
  local c = sliding(r.p, r.c, permille)
  if (r.cost > 0 and c + r.cost > r.limit) or (r.cost == 0 and c >= r.limit) then
    return {'rate', tostring(i - 1), fmt(c), fmt(num(redis.call('GET', KEYS[r.p]))), fmt(num(redis.call('GET', KEYS[r.c])))}
  end
end
local spends = {}
for i, b in ipairs(spec.buckets) do
  local mk, zk = KEYS[b.m], KEYS[b.z]
  expire(mk, zk, KEYS[b.l], now)
  local spend = slotsum(b.slots)
  local reserved = num(redis.call('HGET', mk, 'r'))
  b.free = tonumber(b.limit) - spend - reserved - tonumber(b.amount)
  if b.enforce and spend + reserved + tonumber(b.amount) > tonumber(b.limit) then
    return {'budget', tostring(i - 1), fmt(spend), fmt(reserved)}
  end
  if b.trpm and b.trpm ~= cjson.null and spend >= tonumber(b.limit) then
    local c = sliding(b.tp, b.tc, permille)
    if c + 1 > b.trpm then return {'throttle', tostring(i - 1), fmt(c), fmt(spend)} end
    spends[i] = true
  end
end
for _, r in ipairs(spec.rates) do
  if r.cost > 0 then
    redis.call('INCRBY', KEYS[r.c], r.cost)
    redis.call('PEXPIRE', KEYS[r.c], 120000)
  end
end
local throttled = {}
for i, b in ipairs(spec.buckets) do
  if spends[i] then
    redis.call('INCR', KEYS[b.tc])
    redis.call('PEXPIRE', KEYS[b.tc], 120000)
    table.insert(throttled, tostring(i - 1))
  end
  redis.call('HINCRBY', KEYS[b.m], 'r', b.amount)
  redis.call('ZADD', KEYS[b.z], exp, id .. ':' .. b.amount)
  keep(KEYS[b.m], KEYS[b.z], KEYS[b.l], b.ttl)
end
-- Leases: an allowance reserved for a gateway to admit later calls locally. Granted only while the bucket
-- keeps ample room (room x the lease) for everyone else; near the cap every call comes here.
local granted = {}
for i, b in ipairs(spec.buckets) do
  if b.lease and b.lease ~= cjson.null and b.free >= spec.room * tonumber(b.lease.want) then
    redis.call('HINCRBY', KEYS[b.m], 'r', b.lease.want)
    redis.call('HSET', KEYS[b.l], b.lease.id, b.lease.want)
    redis.call('ZADD', KEYS[b.z], exp, 'L' .. b.lease.id)
    keep(KEYS[b.m], KEYS[b.z], KEYS[b.l], b.ttl)
    table.insert(granted, tostring(i - 1))
  end
end
if run ~= cjson.null and run then
  local rk = KEYS[run.k]
  redis.call('HINCRBY', rk, 'llm', 1)
  if run.retry then redis.call('HINCRBY', rk, 'retries', 1) end
  redis.call('HSETNX', rk, 'started', now)
  redis.call('PEXPIRE', rk, 604800000)
  local h = run.hold
  if h ~= cjson.null and h then
    for _, p in ipairs({{h.cm, h.cz, h.cost}, {h.tm, h.tz, h.tokens}}) do
      if p[3] ~= '0' then
        redis.call('HINCRBY', KEYS[p[1]], 'r', p[3])
        redis.call('ZADD', KEYS[p[2]], exp, id .. ':' .. p[3])
        outlive(KEYS[p[1]], exp - now)
        outlive(KEYS[p[2]], exp - now)
      end
    end
  end
end
-- The buckets granted a lease, then those whose throttle counted the call (a call never sent gives it back).
return {'ok', table.concat(granted, ','), table.concat(throttled, ',')}
`;

/**
 * ARGV: spec JSON, now, reservation id ('' for a charge without reservation). Returns killed JSON (or ''),
 * then changes. Applies once per marker (a reservation's settle, an ingested call's charge; kept
 * spec.onceMs): a repeat changes nothing. A settle naming its call's record (its charge marker
 * KEYS[spec.charged], kept spec.chargedMs) adds spend once per record: one charged already only gives back
 * what it held. A charge takes its call out of doubt (KEYS[spec.doubt], see DOUBT); a doubted one
 * (spec.doubted) applies only to a call that was in it.
 */
export const SETTLE = `${COMMON}
-- A run starts at its earliest call (at: the call's start; nil: made now), one ingested after later ones
-- included.
local function start_run(rk, at, now)
  local started = tonumber(redis.call('HGET', rk, 'started') or now)
  if at then started = math.min(started, at) end
  redis.call('HSET', rk, 'started', fmt(started))
end
local spec = cjson.decode(ARGV[1])
local now = tonumber(ARGV[2])
local id = ARGV[3]
local out = {''}
if spec.doubt and redis.call('DEL', KEYS[spec.doubt]) == 0 and spec.doubted then return out end
if not first_time(KEYS[spec.once], spec.onceMs) then return out end
local again = spec.charged and not first_time(KEYS[spec.charged], spec.chargedMs)
for i, b in ipairs(spec.buckets) do
  if id ~= '' then unreserve(KEYS[b.m], KEYS[b.z], id, b.reserved) end
  if not again then spend_into(b, i, out) end
end
for _, r in ipairs(spec.rates) do
  -- A call's tokens in place of its hold (negative when it used less), never below 0; charged already,
  -- its hold goes (r.back).
  if redis.call('INCRBY', KEYS[r.c], again and r.back or r.tokens) < 0 then redis.call('SET', KEYS[r.c], 0) end
  redis.call('PEXPIRE', KEYS[r.c], 120000)
end
local run = spec.run
if run ~= cjson.null and run then
  local rk = KEYS[run.k]
  local h = run.held
  if id ~= '' and h ~= cjson.null and h then
    unreserve(KEYS[h.cm], KEYS[h.cz], id, h.cost)
    unreserve(KEYS[h.tm], KEYS[h.tz], id, h.tokens)
    drop_if_idle(KEYS[h.cm])
    drop_if_idle(KEYS[h.tm])
  end
  -- A call made before the unkill that started its run over ('from') was the old run's: the run counts
  -- from its unkill on (as a rebuild counts it).
  if not again and not (run.start and run.start < num(redis.call('HGET', rk, 'from'))) then
    redis.call('HINCRBY', rk, 'cost', run.cost)
    redis.call('HINCRBY', rk, 'tokens', run.tokens)
    redis.call('HINCRBY', rk, 'tools', run.tools)
    -- Counted (an ingested call) or taken back (an admitted call never sent), never below 0.
    for field, n in pairs({llm = run.llm, retries = run.retries or 0}) do
      if n ~= 0 and redis.call('HINCRBY', rk, field, n) < 0 then redis.call('HSET', rk, field, 0) end
    end
    -- The deepest call sent (an ingested one, or one never sent, has none).
    if run.depth and run.depth > num(redis.call('HGET', rk, 'depth')) then redis.call('HSET', rk, 'depth', run.depth) end
    start_run(rk, run.start, now)
    redis.call('PEXPIRE', rk, 604800000)
    if not redis.call('HGET', rk, 'killed') then
      local reason = crossed(usage(rk, now), run.ceil, now)
      if reason then
        redis.call('HSET', rk, 'killed', reason)
        out[1] = reason
      end
    end
  end
end
return out
`;

/**
 * Settles calls admitted from leases. ARGV: spec JSON. Per bucket: the lease shrinks by the actual cost
 * (which becomes spend); a lease marked `release` gives its remaining allowance back. Returns the level
 * changes as SETTLE does (after an empty first element). Applies once per marker (one per flush).
 */
export const CONSUME = `${COMMON}
local spec = cjson.decode(ARGV[1])
local out = {''}
if not first_time(KEYS[spec.once]) then return out end
for i, b in ipairs(spec.buckets) do
  local mk, lk = KEYS[b.m], KEYS[b.l]
  local held = redis.call('HGET', lk, b.lid)
  local actual = tonumber(b.actual)
  if held then
    local dec = math.min(tonumber(held), actual)
    if dec > 0 then
      redis.call('HINCRBY', lk, b.lid, '-' .. fmt(dec))
      redis.call('HINCRBY', mk, 'r', '-' .. fmt(dec))
    end
    if b.release then
      local rest = redis.call('HGET', lk, b.lid)
      if rest ~= '0' then redis.call('HINCRBY', mk, 'r', '-' .. rest) end
      redis.call('HDEL', lk, b.lid)
      redis.call('ZREM', KEYS[b.z], 'L' .. b.lid)
    end
  end
  spend_into(b, i, out)
end
return out
`;

/**
 * Gives back unused leases, and reservations of admissions that failed (a timed-out ADMIT may have run).
 * ARGV: spec JSON ({leases: [{m, l, z, lid}], holds: [{m, z, id, amount, run}]}; run: a run's hold).
 * Repeating it changes nothing.
 */
export const RELEASE = `${COMMON}
local spec = cjson.decode(ARGV[1])
for _, h in ipairs(spec.holds) do
  unreserve(KEYS[h.m], KEYS[h.z], h.id, h.amount)
  if h.run then drop_if_idle(KEYS[h.m]) end
end
for _, b in ipairs(spec.leases) do
  local rest = redis.call('HGET', KEYS[b.l], b.lid)
  if rest then
    if rest ~= '0' then redis.call('HINCRBY', KEYS[b.m], 'r', '-' .. rest) end
    redis.call('HDEL', KEYS[b.l], b.lid)
    redis.call('ZREM', KEYS[b.z], 'L' .. b.lid)
  end
end
return 1
`;

/**
 * Moves a call admitted from leases onto a reservation of its own (<id>:<amount>, expiring at spec.exp), as
 * ADMIT would have made it: its worst case leaves each lease's allowance (what a lease no longer has of it,
 * spent by other calls meanwhile or expired, is reserved anew), so the lease goes back without it. ARGV:
 * spec JSON ({settled, id, exp, buckets: [{m, z, l, lid, amount}]}). A call settled already (its settle's
 * marker) or moved already (its reservation there) is left as it is: repeating it changes nothing.
 */
export const HOLD_APART = `${COMMON}
local spec = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[spec.settled]) == 1 then return 0 end
for _, b in ipairs(spec.buckets) do
  local member = spec.id .. ':' .. b.amount
  if not redis.call('ZSCORE', KEYS[b.z], member) then
    local amount = tonumber(b.amount)
    local moved = math.min(num(redis.call('HGET', KEYS[b.l], b.lid)), amount)
    if moved > 0 then redis.call('HINCRBY', KEYS[b.l], b.lid, '-' .. fmt(moved)) end
    if amount > moved then redis.call('HINCRBY', KEYS[b.m], 'r', fmt(amount - moved)) end
    redis.call('ZADD', KEYS[b.z], spec.exp, member)
  end
end
return 1
`;

/** Spend and live reservations of buckets (expired ones dropped first). ARGV: spec JSON, now. */
export const STATUS = `${COMMON}
local spec = cjson.decode(ARGV[1])
local now = tonumber(ARGV[2])
local out = {}
for _, b in ipairs(spec.buckets) do
  expire(KEYS[b.m], KEYS[b.z], KEYS[b.l], now)
  table.insert(out, fmt(slotsum(b.slots)))
  table.insert(out, fmt(num(redis.call('HGET', KEYS[b.m], 'r'))))
end
return out
`;

/**
 * Raises seeded bucket slots to the totals given (SpendGuard's seed of a budget added while running).
 * ARGV: spec JSON ({d: the budget's seeded-totals hash, last, s: [{k: slot key, f: field, total, ttl}]}).
 * Only the growth since the last seed is added: a seed repeated, or run by two replicas, counts once. The
 * `last` seed closes it (field "!closed"; a bucket's field starts "b:"): any later one changes nothing.
 */
export const SEED = `${COMMON}
local spec = cjson.decode(ARGV[1])
local dk = KEYS[spec.d]
if redis.call('HEXISTS', dk, '!closed') == 1 then return 0 end
if spec.last then redis.call('HSET', dk, '!closed', '1') end
for _, e in ipairs(spec.s) do
  local done = num(redis.call('HGET', dk, e.f))
  local total = tonumber(e.total)
  if total > done then
    redis.call('INCRBY', KEYS[e.k], fmt(total - done))
    if e.ttl ~= cjson.null then redis.call('PEXPIRE', KEYS[e.k], e.ttl) end
    redis.call('HSET', dk, e.f, e.total)
  end
end
redis.call('PEXPIRE', dk, 172800000)
return 1
`;

/**
 * Puts calls in doubt: their write to the event store failed and may have committed, so no charge was made.
 * KEYS: each call's doubt marker, then its charge marker (SETTLE's once). ARGV: ms the doubt lasts, now (the
 * marker's value: when the call was put in doubt). A call whose charge marker is set was charged (by another
 * replica: this doubt came late) and stays as it is.
 */
export const DOUBT = `
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then redis.call('SET', KEYS[i], ARGV[2], 'PX', ARGV[1]) end
end
return 1
`;
