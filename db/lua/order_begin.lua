#!lua
-- A reservation in steps (a cluster), first step, on the customer's bucket: refuse a replayed or
-- reused idempotency key, a missing allowance or a changed cart as order_reserve.lua does, then
-- note the reservation under way (its lines and by when it must be committed) so that a sweeper can
-- undo it if its process dies before the end. A second request with the same key while this one
-- is under way is told BUSY.
-- KEYS[1] idem:<cid>:<key>   KEYS[2] idem lock (the same name + ':busy')   KEYS[3] allow:<cid>
-- KEYS[4] reserving:<oid>   KEYS[5] orders:reserving   KEYS[6] cart:<owner> (checkout only; else absent)
-- (all of the customer's bucket)
-- ARGV[1] customer id   ARGV[2] order id   ARGV[3] fingerprint   ARGV[4] deadline (ms)
-- ARGV[5] lines JSON [[pid, qty], ...]   ARGV[6] cart version ('' = not checkout)   ARGV[7] TTL of the
-- lock (s, the deadline's)   ARGV[8] TTL of the note (s)
-- Returns {'OK'} | {'REPLAY', oid} | {'IDEM_MISMATCH'} | {'BUSY'} | {'NO_ALLOWANCE'} | {'CART_CHANGED'}.
--#include cart
--#include stock_event
--#include reserve
local refusal = idempotency_refusal(KEYS[1], ARGV[3])
if refusal then
  return refusal
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'NO_ALLOWANCE'}
end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[6], '_v') ~= ARGV[6] then
  return {'CART_CHANGED'}
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[7]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[2] then
    return {'BUSY'}
  end
end
redis.call('HSET', KEYS[4], 'customer_id', ARGV[1], 'lines', ARGV[5], 'state', 'RESERVING', 'lock', KEYS[2])
redis.call('EXPIRE', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2])
return {'OK'}
