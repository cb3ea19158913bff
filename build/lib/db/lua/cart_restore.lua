#!lua
-- Put a cart read from PostgreSQL back into Redis, unless someone already did.
-- KEYS[1] cart:{owner}   ARGV[1] TTL (s)   ARGV[2] updated (ms)   ARGV[3..] product id, quantity, ...
-- An empty cart is restored too (meta fields only), so the next request does not ask PostgreSQL again.
-- Returns {'OK', 1 if restored else 0}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'OK', 0}
end
redis.call('HSET', KEYS[1], '_v', 0, '_u', ARGV[2])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {'OK', 1}
