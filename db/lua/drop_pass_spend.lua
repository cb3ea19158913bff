#!lua
-- A reservation made with a taken pass succeeded: the pass is used up for good.
-- KEYS[1] passes   KEYS[2] taken   KEYS[3] spent   KEYS[4] state (drop:{dN}:...)
-- ARGV[1] shopper   ARGV[2] the order's id
-- Returns {'OK'}.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HSETNX', KEYS[3], ARGV[1], 'USED:' .. ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[4], 'used', 1)
else
  -- The pass ran out while the order was in flight and was marked EXPIRED; the order used it.
  redis.call('HSET', KEYS[3], ARGV[1], 'USED:' .. ARGV[2])
end
return {'OK'}
