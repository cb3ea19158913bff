-- Add ARGV[1] (may be negative) to a stock counter, never below zero, and publish the result.
-- KEYS[1] stock:{pid}   KEYS[2] events:stock:{pid} (channel)   KEYS[3] stock:epoch:{pid}
-- ARGV[2] product id   ARGV[3] epoch the caller read in its transaction ('' = do not check)
-- Returns the new value; -1 when the counter is missing or was rebuilt since the caller's read
-- (the rebuild read PostgreSQL, which already holds the change); {err} when the result would be
-- negative.
local current = redis.call('GET', KEYS[1])
if not current then
  return -1
end
if ARGV[3] ~= nil and ARGV[3] ~= '' and (redis.call('GET', KEYS[3]) or '') ~= ARGV[3] then
  return -1
end
local value = tonumber(current) + tonumber(ARGV[1])
if value < 0 then
  return redis.error_reply('NEGATIVE ' .. current)
end
redis.call('SET', KEYS[1], value)
local t = redis.call('TIME')
redis.call('PUBLISH', KEYS[2], cjson.encode({productId = ARGV[2], available = value,
  at = tonumber(t[1]) + tonumber(t[2]) / 1000000}))
return value
