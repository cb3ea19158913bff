#!lua
-- After a batch's rows are committed in PostgreSQL: for each order drop its holds and its
-- to-persist entry, once. One call per batch, not per order: the caller's cost is per command.
-- KEYS[1] orders:topersist, then per order: order:{oid}, orders:inflight:{cid}, stock:held:{pid}...
-- ARGV[1] TTL of the records as a status cache (s), then per order: order id, number of held keys n,
--         then n quantities (one per held key, in the same order)
-- Returns {'OK', how many orders this call finished} (the others were finished before).
local key, arg, finished = 2, 2, 0
while arg <= #ARGV do
  local oid, held = ARGV[arg], tonumber(ARGV[arg + 1])
  local order = KEYS[key]
  redis.call('ZREM', KEYS[1], oid)
  redis.call('SREM', KEYS[key + 1], oid)
  if redis.call('HGET', order, 'persisted') == '0' then
    redis.call('HSET', order, 'persisted', '1')
    for i = 1, held do
      redis.call('DECRBY', KEYS[key + 1 + i], ARGV[arg + 1 + i])
    end
    redis.call('EXPIRE', order, ARGV[1])
    finished = finished + 1
  end
  key = key + 2 + held
  arg = arg + 2 + held
end
return {'OK', finished}
