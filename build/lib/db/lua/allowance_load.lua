#!lua
-- Create a customer's purchase allowance hash from PostgreSQL's figures, unless it exists.
-- KEYS[1] allow:{cid}   ARGV[1] TTL (s)   ARGV[2..] product id, units, ...
-- Returns {'OK', 1 if created else 0}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'OK', 0}
end
redis.call('HSET', KEYS[1], '_r', '1')
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {'OK', 1}
