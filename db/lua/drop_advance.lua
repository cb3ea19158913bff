#!lua
-- Move a drop's line on to now, and read one shopper's place. Any caller may run it (a join, a
-- read of the line, each API process's ticker): admission is a function of time and of the
-- state kept here, so there is no coordinator to lose and running it twice admits nobody twice.
-- 1. Passes past their expiry leave (their budget returns), unless an order is using one now.
-- 2. From the start on, admit the next ranks, as many as all of these allow:
--    the rate's token bucket (ARGV rate a second, at most one second's worth saved up),
--    max_active passes outstanding at once,
--    the units left: no pass while the passes out, each taking up to per_buyer units, already
--    cover every unit left (it resumes when units come back). The units were read before this
--    call: a pass used since then (its order reserved before the figure was read, or after) is
--    counted as still out, so a purchase in between is never offered again,
--    and at most ARGV[5] in one call.
-- 3. Publish the drop's state when it changed, at most once per ARGV[3] ms, but at once when the
--    drop sells out or gets units back.
-- Time is Redis' (TIME), as in drop_join and drop_pass_take.
-- KEYS[1] conf   KEYS[2] line   KEYS[3] state   KEYS[4] passes   KEYS[5] taken   KEYS[6] spent
-- (all drop:{dN}:...)
-- ARGV[1] units left (the drop's products' available stock)   ARGV[2] the drop's channel
-- ARGV[3] least ms between two state messages   ARGV[4] shopper ('' for none)   ARGV[5] most admitted per call
-- ARGV[6] the state's `used` count read before the units were
-- Returns {'MISSING'} | {'OK', now_ms, started, ended, admitted, outstanding, line length, units left,
-- used, expired, rank (-1 not in line), pass expiry ('' none), spent ('' none)}.
local c = redis.call('HMGET', KEYS[1], 'starts_ms', 'rate', 'max_active', 'pass_ttl_ms', 'per_buyer', 'ended')
if not c[1] then
  return {'MISSING'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local starts_ms = tonumber(c[1])
local ended = c[6] == '1'
local started = now_ms >= starts_ms
local s = redis.call('HMGET', KEYS[3], 'admitted', 'tokens', 'last_ms', 'used', 'expired', 'pub_ms', 'pub_sig',
  'pub_zero')
local admitted = tonumber(s[1] or '0')
local used = tonumber(s[4] or '0')
local expired = tonumber(s[5] or '0')
local units = math.max(0, tonumber(ARGV[1]))

if not ended then
  local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms)
  for _, shopper in ipairs(gone) do
    if redis.call('HEXISTS', KEYS[5], shopper) == 0 then
      redis.call('ZREM', KEYS[4], shopper)
      redis.call('HSET', KEYS[6], shopper, 'EXPIRED')
      expired = expired + 1
    end
  end
  if started then
    local outstanding = redis.call('ZCARD', KEYS[4])
    local k = redis.call('ZCARD', KEYS[2]) - admitted
    local tokens = tonumber(s[2] or '0')
    if c[2] ~= '' then
      local rate = tonumber(c[2])
      local last = tonumber(s[3] or c[1])
      tokens = math.min(math.max(1, rate), tokens + math.max(0, now_ms - last) * rate / 1000)
      k = math.min(k, math.floor(tokens))
    end
    if c[3] ~= '' then
      k = math.min(k, tonumber(c[3]) - outstanding)
    end
    local used_since = math.max(0, used - tonumber(ARGV[6]))
    k = math.min(k, math.ceil(units / tonumber(c[5])) - outstanding - used_since, tonumber(ARGV[5]))
    if k > 0 then
      local expiry = now_ms + tonumber(c[4])
      for _, shopper in ipairs(redis.call('ZRANGE', KEYS[2], admitted, admitted + k - 1)) do
        redis.call('ZADD', KEYS[4], expiry, shopper)
      end
      admitted = admitted + k
      tokens = tokens - k
    end
    redis.call('HSET', KEYS[3], 'admitted', admitted, 'tokens', tostring(tokens), 'last_ms', now_ms,
      'expired', expired)
  else
    redis.call('HSET', KEYS[3], 'expired', expired)
  end
end

local outstanding = redis.call('ZCARD', KEYS[4])
local length = redis.call('ZCARD', KEYS[2])
local started_flag = started and 1 or 0
local ended_flag = ended and 1 or 0
local zero = units == 0 and '1' or '0'
local sig = table.concat({started_flag, ended_flag, admitted, outstanding, length, units, used, expired}, ':')
if sig ~= s[7] then
  local urgent = zero ~= (s[8] or '0') or ended
  if urgent or now_ms - tonumber(s[6] or '0') >= tonumber(ARGV[3]) then
    redis.call('HSET', KEYS[3], 'pub_ms', now_ms, 'pub_sig', sig, 'pub_zero', zero)
    redis.call('SPUBLISH', ARGV[2], cjson.encode({
      at = now_ms, started = started, ended = ended, admitted = admitted, outstanding = outstanding,
      lineLength = length, unitsLeft = units, used = used, expired = expired}))
  end
end

local rank, expiry, spent = -1, '', ''
if ARGV[4] ~= '' then
  rank = redis.call('ZRANK', KEYS[2], ARGV[4]) or -1
  expiry = redis.call('ZSCORE', KEYS[4], ARGV[4]) or ''
  spent = redis.call('HGET', KEYS[6], ARGV[4]) or ''
end
return {'OK', now_ms, started_flag, ended_flag, admitted, outstanding, length, units, used, expired, rank,
  expiry, spent}
