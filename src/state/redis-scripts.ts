/**
 * The Lua scripts of the Redis state store (redis-state.ts): one per operation, each run
 * atomically by Redis (EVALSHA through ioredis' defineCommand), so an admission's checks and
 * writes cannot interleave with another replica's. Every key a script touches comes in KEYS[]
 * (all in one cluster hash slot: redis-state.ts); every time is the caller's `now` in ARGV
 * (never Redis' clock: the answers are the in-process store's for the same calls); every amount
 * is an integer. TTLs are relative (PEXPIRE), so caller and Redis clocks need not agree.
 *
 * Data layout (K = the store's key base, see redis-state.ts):
 * - window `key`: ZSET K..w:key (entry id → admission time) and HASH K..wc:key
 *   (`i:<id>` → the entry's cost, `t` → the running total of the entries in the ZSET).
 * - slot `key`: ZSET K..s:key (reservation id → lease expiry).
 * - budget `key`: HASH K..b:key (`s` → spent, `r` → reserved in force, `r:<id>` → a
 *   reservation's amount) and ZSET K..br:key (reservation id → lease expiry).
 * - usage: HASH K..u:<period>:<bucket>:<tenant> (`<m><json [keyId, alias, deployment]>` → a
 *   counter, m one of n requests / i input / o output / c cost) and SET K..ut:<period>:<bucket>
 *   (the tenants with a hash in that bucket).
 * - nonce `key`: STRING K..n:key (the caller-clock expiry).
 */

/** Shared Lua functions, prepended to the scripts that need them. */
const helpers = `
-- Drops the window entries admitted at or before oldest; returns the total left.
local function prune_window(zkey, hkey, oldest)
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', oldest)
  local total = tonumber(redis.call('HGET', hkey, 't') or '0')
  if #gone == 0 then return total end
  local freed = 0
  for i = 1, #gone do
    local field = 'i:' .. gone[i]
    freed = freed + tonumber(redis.call('HGET', hkey, field) or '0')
    redis.call('HDEL', hkey, field)
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', oldest)
  total = total - freed
  redis.call('HSET', hkey, 't', total)
  return total
end

-- Milliseconds until everything now in the window has left it (0: empty).
local function reset_ms(zkey, now, window_ms)
  local last = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(0, tonumber(last[2]) + window_ms - now)
end

-- The window's keys live until their newest entry leaves, plus a second; an empty one goes now.
local function expire_window(zkey, hkey, now, window_ms)
  if redis.call('ZCARD', zkey) == 0 then
    redis.call('DEL', zkey, hkey)
    return
  end
  local ttl = reset_ms(zkey, now, window_ms) + 1000
  redis.call('PEXPIRE', zkey, ttl)
  redis.call('PEXPIRE', hkey, ttl)
end

-- Releases the budget reservations whose lease ended by now; returns spent and reserved.
local function prune_budget(hkey, zkey, now)
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  local freed = 0
  for i = 1, #gone do
    local field = 'r:' .. gone[i]
    freed = freed + tonumber(redis.call('HGET', hkey, field) or '0')
    redis.call('HDEL', hkey, field)
  end
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
    redis.call('HINCRBY', hkey, 'r', -freed)
  end
  local spent = tonumber(redis.call('HGET', hkey, 's') or '0')
  local reserved = tonumber(redis.call('HGET', hkey, 'r') or '0')
  return spent, reserved
end

-- A budget's keys live until a minute after its period ends.
local function expire_budget(hkey, zkey, now, period_end)
  local ttl = math.max(0, period_end - now) + 60000
  redis.call('PEXPIRE', hkey, ttl)
  redis.call('PEXPIRE', zkey, ttl)
end

-- A key's TTL is raised to at least ttl (never shortened: other members may live longer).
local function expire_at_least(key, ttl)
  local left = redis.call('PTTL', key)
  if left >= 0 and left < ttl then redis.call('PEXPIRE', key, ttl) end
end
`;

/**
 * admit: checks every charge, then (all passing) reserves every one; nothing is written for a
 * refused admission except pruning what had already expired.
 *
 * KEYS: per window its ZSET and HASH, then per slot its ZSET, then per budget its HASH and ZSET.
 * ARGV: now, id, leaseMs, #windows, #slots, #budgets, then per window limit, windowMs, cost;
 *       per slot limit; per budget limit, amount, periodEndMs.
 * Returns { admitted 1|0, kind 0 none|1 window|2 slot|3 budget, index (0-based),
 *           retryAfterMs (windows only), then remaining, resetMs per window checked }.
 */
export const admitScript = `${helpers}
local now = tonumber(ARGV[1])
local id = ARGV[2]
local lease = tonumber(ARGV[3])
local nw, ns, nb = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local a = 7
local states = {}
local remaining = {}
for i = 1, nw do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, window_ms, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local total = prune_window(zkey, hkey, now - window_ms)
  if total + cost > limit then
    local retry = window_ms
    local entries = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
    local freed = 0
    for e = 1, #entries, 2 do
      freed = freed + tonumber(redis.call('HGET', hkey, 'i:' .. entries[e]) or '0')
      if total - freed + cost <= limit then
        retry = math.max(1, tonumber(entries[e + 1]) + window_ms - now)
        break
      end
    end
    local reply = { 0, 1, i - 1, retry }
    for s = 1, #states do reply[#reply + 1] = states[s] end
    reply[#reply + 1] = math.max(0, limit - total)
    reply[#reply + 1] = reset_ms(zkey, now, window_ms)
    return reply
  end
  remaining[i] = limit - total - cost
  states[#states + 1] = remaining[i]
  states[#states + 1] = window_ms
end
local k = 2 * nw
for i = 1, ns do
  local zkey = KEYS[k + i]
  local limit = tonumber(ARGV[a])
  a = a + 1
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  if redis.call('ZCARD', zkey) >= limit then
    local reply = { 0, 2, i - 1, 0 }
    for s = 1, #states do reply[#reply + 1] = states[s] end
    return reply
  end
end
k = k + ns
for i = 1, nb do
  local hkey, zkey = KEYS[k + 2 * i - 1], KEYS[k + 2 * i]
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 3
  local spent, reserved = prune_budget(hkey, zkey, now)
  if spent + reserved + amount > limit then
    local reply = { 0, 3, i - 1, 0 }
    for s = 1, #states do reply[#reply + 1] = states[s] end
    return reply
  end
end
-- Every check passed: reserve everything.
local reply = { 1, 0, 0, 0 }
a = 7
for i = 1, nw do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local window_ms, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('ZADD', zkey, now, id)
  redis.call('HINCRBY', hkey, 'i:' .. id, cost)
  redis.call('HINCRBY', hkey, 't', cost)
  expire_window(zkey, hkey, now, window_ms)
  reply[#reply + 1] = remaining[i]
  reply[#reply + 1] = reset_ms(zkey, now, window_ms)
end
k = 2 * nw
for i = 1, ns do
  local zkey = KEYS[k + i]
  a = a + 1
  redis.call('ZADD', zkey, now + lease, id)
  local newest = redis.call('ZRANGE', zkey, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', zkey, math.max(1, tonumber(newest[2]) - now) + 1000)
end
k = k + ns
for i = 1, nb do
  local hkey, zkey = KEYS[k + 2 * i - 1], KEYS[k + 2 * i]
  local amount, period_end = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  redis.call('HINCRBY', hkey, 'r', amount)
  redis.call('HINCRBY', hkey, 'r:' .. id, amount)
  redis.call('ZADD', zkey, now + lease, id)
  expire_budget(hkey, zkey, now, period_end)
end
return reply
`;

/**
 * settle: per window, the entry's cost becomes the actual one while it is in the window, else
 * the excess over the reservation is added at now; slots are released (ZREM); per budget the
 * reservation is released and what was spent added.
 *
 * KEYS: per window its ZSET and HASH, then per slot its ZSET, then per budget its HASH and ZSET.
 * ARGV: now, id, #windows, #slots, #budgets, then per window windowMs, reserved, cost;
 *       per budget spent, periodEndMs.
 */
export const settleScript = `${helpers}
local now = tonumber(ARGV[1])
local id = ARGV[2]
local nw, ns, nb = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a = 6
for i = 1, nw do
  local zkey, hkey = KEYS[2 * i - 1], KEYS[2 * i]
  local window_ms, reserved, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  prune_window(zkey, hkey, now - window_ms)
  local field = 'i:' .. id
  if redis.call('ZSCORE', zkey, id) then
    local old = tonumber(redis.call('HGET', hkey, field) or '0')
    redis.call('HSET', hkey, field, cost)
    redis.call('HINCRBY', hkey, 't', cost - old)
  elseif cost > reserved then
    redis.call('ZADD', zkey, now, id)
    redis.call('HSET', hkey, field, cost - reserved)
    redis.call('HINCRBY', hkey, 't', cost - reserved)
  end
  expire_window(zkey, hkey, now, window_ms)
end
local k = 2 * nw
for i = 1, ns do
  redis.call('ZREM', KEYS[k + i], id)
end
k = k + ns
for i = 1, nb do
  local hkey, zkey = KEYS[k + 2 * i - 1], KEYS[k + 2 * i]
  local spent, period_end = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  prune_budget(hkey, zkey, now)
  local field = 'r:' .. id
  local amount = redis.call('HGET', hkey, field)
  if amount then
    redis.call('HINCRBY', hkey, 'r', -tonumber(amount))
    redis.call('HDEL', hkey, field)
  end
  redis.call('ZREM', zkey, id)
  redis.call('HINCRBY', hkey, 's', spent)
  expire_budget(hkey, zkey, now, period_end)
end
return 1
`;

/**
 * renew: extends the leases of calls in progress to now + leaseMs, only where they still hold
 * one (ZADD XX never re-adds a lapsed or settled reservation).
 *
 * KEYS: per call its slot ZSETs, then its budget reservation ZSETs.
 * ARGV: now, leaseMs, then per call id, #slots, #budgets.
 */
export const renewScript = `${helpers}
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local k = 0
for a = 3, #ARGV, 3 do
  local id, ns, nb = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  for i = 1, ns do
    local zkey = KEYS[k + i]
    if redis.call('ZADD', zkey, 'XX', 'CH', now + lease, id) == 1 then expire_at_least(zkey, lease + 1000) end
  end
  k = k + ns
  for i = 1, nb do
    redis.call('ZADD', KEYS[k + i], 'XX', now + lease, id)
  end
  k = k + nb
end
return 1
`;

/**
 * recordUsage: adds one call to the tenant's hash of its day and of its month, and the tenant
 * to each bucket's set of tenants.
 *
 * KEYS: day hash, day tenant set, month hash, month tenant set.
 * ARGV: tenant, row field (json [keyId, alias, deployment]), inputTokens, outputTokens,
 *       costMicroUsd, day TTL ms, month TTL ms.
 */
export const recordUsageScript = `
local tenant, row = ARGV[1], ARGV[2]
local input, output, cost = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
for b = 0, 1 do
  local hkey, skey, ttl = KEYS[2 * b + 1], KEYS[2 * b + 2], tonumber(ARGV[6 + b])
  redis.call('HINCRBY', hkey, 'n' .. row, 1)
  redis.call('HINCRBY', hkey, 'i' .. row, input)
  redis.call('HINCRBY', hkey, 'o' .. row, output)
  redis.call('HINCRBY', hkey, 'c' .. row, cost)
  redis.call('SADD', skey, tenant)
  redis.call('PEXPIRE', hkey, ttl)
  redis.call('PEXPIRE', skey, ttl)
end
return 1
`;

/**
 * rememberOnce: 1 the first time the key is seen within its TTL, else 0. The value is the
 * expiry on the caller's clock (so "lapsed" is judged by the caller's now, as in-process);
 * PX lets Redis drop it after the TTL.
 *
 * KEYS: the nonce key. ARGV: now, ttlMs.
 */
export const rememberOnceScript = `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local expires = redis.call('GET', KEYS[1])
if expires and tonumber(expires) > now then return 0 end
redis.call('SET', KEYS[1], now + ttl, 'PX', ttl)
return 1
`;
