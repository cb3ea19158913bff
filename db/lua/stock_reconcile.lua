-- Compare a stock counter with what PostgreSQL and the holds say it should be; repair a drift
-- only when the same drift was seen on the previous run, so work in flight between a commit and
-- its Redis step (a transient difference) is never "repaired".
-- KEYS[1] stock:{pid}   KEYS[2] stock:held:{pid}   KEYS[3] stock:drift:{pid}
-- ARGV[1] products.stock (read under a share lock)   ARGV[2] product id   ARGV[3] drift memory (s)
-- Returns the drift repaired (0 when none or not yet confirmed).
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local expected = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[2]) or '0')
if expected < 0 then
  expected = 0
end
local drift = tonumber(current) - expected
if drift == 0 then
  redis.call('DEL', KEYS[3])
  return 0
end
if tonumber(redis.call('GET', KEYS[3]) or 'nil') ~= drift then
  redis.call('SET', KEYS[3], drift, 'EX', ARGV[3])
  return 0
end
redis.call('SET', KEYS[1], expected)
redis.call('DEL', KEYS[3])
local t = redis.call('TIME')
redis.call('PUBLISH', 'events:stock:' .. ARGV[2], cjson.encode({productId = ARGV[2], available = expected,
  at = tonumber(t[1]) + tonumber(t[2]) / 1000000}))
return drift
