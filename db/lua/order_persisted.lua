-- After an order's row is committed in PostgreSQL: drop its holds and its to-persist entry, once.
-- KEYS[1] order:{oid}   KEYS[2] orders:topersist   KEYS[3] orders:inflight:{cid}   KEYS[4..] stock:held:{pid}
-- ARGV[1] order id   ARGV[2] TTL of the record as a status cache (s)   ARGV[3..] quantity per held key
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[1], 'persisted') ~= '0' then
  return 0
end
redis.call('HSET', KEYS[1], 'persisted', '1')
for i = 4, #KEYS do
  redis.call('DECRBY', KEYS[i], ARGV[i - 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
