#!lua
-- Add ARGV[1] (may be negative) to a stock counter, never below zero, and publish the result.
-- KEYS[1] stock:<pid>   KEYS[2] stock:epoch:<pid>   KEYS[3] stock:pub:<pid>
-- ARGV[1] delta   ARGV[2] product id   ARGV[3] epoch the caller read in its transaction ('' = do not
-- check)   ARGV[4] the product's stock channel   ARGV[5] stock event window (ms)   ARGV[6] TTL of KEYS[3] (s)
-- Returns {'OK', new value, 1 when its stock figure is owed (lib/stock_event.lua) else 0}; {'MISSING'} when the counter is missing, {'STALE'} when it was rebuilt
-- since the caller's read (the rebuild read PostgreSQL, which already holds the change);
-- {'NEGATIVE', current} when the result would be negative.
--#include stock_event
local current = redis.call('GET', KEYS[1])
if not current then
  return {'MISSING'}
end
if ARGV[3] ~= '' and (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then
  return {'STALE'}
end
local value = tonumber(current) + tonumber(ARGV[1])
if value < 0 then
  return {'NEGATIVE', tonumber(current)}
end
redis.call('SET', KEYS[1], value)
local t = redis.call('TIME')
local published = stock_event(KEYS[3], ARGV[4], ARGV[2], value, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
  tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[5], ARGV[6])
return {'OK', value, 1 - published}
