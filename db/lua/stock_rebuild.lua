#!lua
-- Recreate a missing stock counter from PostgreSQL's figure minus units held by orders that
-- are not in PostgreSQL yet, and (always) refresh the sale facts the reservation script reads.
-- The caller holds a share lock on the product row while it computes both figures, so no
-- persistence, release or restock of this product can commit in between (see db.stock).
-- KEYS[1] stock:{pid}   KEYS[2] pinfo:{pid}   KEYS[3] stock:epoch:{pid} (bumped when this creates the counter)
-- ARGV[1] products.stock   ARGV[2] units held by orders not in PostgreSQL
-- ARGV[3] price (cents)   ARGV[4] currency   ARGV[5] max per customer ('' = none)
-- ARGV[6] the live drop the product is in ('' = none)
-- Returns {'OK', counter}: the existing one if another rebuilder won, else the new one.
redis.call('HSET', KEYS[2], 'price', ARGV[3], 'currency', ARGV[4], 'limit', ARGV[5], 'drop', ARGV[6])
local current = redis.call('GET', KEYS[1])
if current then
  return {'OK', tonumber(current)}
end
local value = tonumber(ARGV[1]) - tonumber(ARGV[2])
if value < 0 then
  value = 0
end
redis.call('SET', KEYS[1], value)
redis.call('INCR', KEYS[3])
return {'OK', value}
