#!lua
-- Add ARGV[1] (may be negative) to a stock counter, never below zero, and publish the result.
-- KEYS[1] stock:{pid}   KEYS[2] stock:epoch:{pid}
-- ARGV[1] delta   ARGV[2] product id   ARGV[3] epoch the caller read in its transaction ('' = do not
-- check)   ARGV[4] the product's stock channel
-- Returns {'OK', new value}; {'MISSING'} when the counter is missing, {'STALE'} when it was rebuilt
-- since the caller's read (the rebuild read PostgreSQL, which already holds the change);
-- {'NEGATIVE', current} when the result would be negative.
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
redis.call('PUBLISH', ARGV[4], cjson.encode({productId = ARGV[2], available = value,
  at = tonumber(t[1]) + tonumber(t[2]) / 1000000}))
return {'OK', value}
