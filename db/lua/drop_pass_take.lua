#!lua
-- Take a shopper's pass for an order about to be reserved: the pass must be outstanding, not past
-- its expiry, and not taken by another order in flight (a pass buys one order). The caller
-- spends it (drop_pass_spend) when the reservation succeeds and gives it back (drop_pass_return)
-- when it is refused, so a refusal such as OUT_OF_STOCK does not burn it.
-- KEYS[1] conf   KEYS[2] line   KEYS[3] state   KEYS[4] passes   KEYS[5] taken   KEYS[6] spent (drop:{dN}:...)
-- ARGV[1..] the shoppers the request speaks for (its customer, its guest session), tried in order
-- Returns {'MISSING'} | {'ENDED'} | {'OK', shopper}
-- | {'NOT_YOUR_TURN', why, position (-1 none)}: why is WAITING, NOT_STARTED, NOT_IN_LINE, IN_USE, USED or EXPIRED.
local c = redis.call('HMGET', KEYS[1], 'starts_ms', 'ended')
if not c[1] then
  return {'MISSING'}
end
if c[2] == '1' then
  return {'ENDED'}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local in_use = false
for i = 1, #ARGV do
  local expiry = redis.call('ZSCORE', KEYS[4], ARGV[i])
  if expiry and tonumber(expiry) > now_ms then
    if redis.call('HSETNX', KEYS[5], ARGV[i], now_ms) == 1 then
      return {'OK', ARGV[i]}
    end
    in_use = true
  end
end
if in_use then
  return {'NOT_YOUR_TURN', 'IN_USE', -1}
end
local admitted = tonumber(redis.call('HGET', KEYS[3], 'admitted') or '0')
for i = 1, #ARGV do
  local rank = redis.call('ZRANK', KEYS[2], ARGV[i])
  if rank then
    if now_ms < tonumber(c[1]) then
      return {'NOT_YOUR_TURN', 'NOT_STARTED', -1}
    end
    if rank >= admitted then
      return {'NOT_YOUR_TURN', 'WAITING', rank - admitted + 1}
    end
    local spent = redis.call('HGET', KEYS[6], ARGV[i]) or 'EXPIRED'
    if string.sub(spent, 1, 5) == 'USED:' then
      return {'NOT_YOUR_TURN', 'USED', -1}
    end
    return {'NOT_YOUR_TURN', 'EXPIRED', -1}
  end
end
return {'NOT_YOUR_TURN', 'NOT_IN_LINE', -1}
