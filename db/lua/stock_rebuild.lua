-- Recreate a missing stock counter from PostgreSQL's figure minus units held by orders that
-- are not persisted yet. Runs while the caller holds a share lock on the product row, so no
-- persistence or release can change PostgreSQL's figure underneath it (db.stock explains why
-- this can only under-count).
-- KEYS[1] stock:{pid}   KEYS[2] stock:held:{pid}   ARGV[1] products.stock
-- Returns the counter: the existing one if another rebuilder won, else the new one.
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
