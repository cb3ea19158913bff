-- Recreate a missing stock counter from PostgreSQL's figure minus units held by orders that
-- are not persisted yet, and (always) refresh the sale facts the reservation script reads.
-- Runs while the caller holds a share lock on the product row, so no persistence or release can
-- change PostgreSQL's figure underneath it (db.stock explains why this can only under-count).
-- KEYS[1] stock:{pid}   KEYS[2] stock:held:{pid}   KEYS[3] pinfo:{pid}
-- ARGV[1] products.stock   ARGV[2] price (cents)   ARGV[3] currency   ARGV[4] max per customer ('' = none)
-- Returns the counter: the existing one if another rebuilder won, else the new one.
redis.call('HSET', KEYS[3], 'price', ARGV[2], 'currency', ARGV[3], 'limit', ARGV[4])
local current = redis.call('GET', KEYS[1])
if current then
  return tonumber(current)
end
local held = tonumber(redis.call('GET', KEYS[2]) or '0')
local value = tonumber(ARGV[1]) - held
if value < 0 then
  value = 0
end
redis.call('SET', KEYS[1], value)
return value
