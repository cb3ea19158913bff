#!lua
-- A reservation in steps (a cluster), last step, on the customer's bucket, once every line is
-- taken: check the lines against the customer's limits, one currency and the largest total, as
-- order_reserve.lua does, then record the order exactly as it does (lib/reserve.lua). A
-- reservation the sweeper has begun to undo is not committed: {'UNDONE'}; a refused one is left
-- for the caller to undo. Sent again after it ran, it answers as it did.
-- KEYS[1] idem:<cid>:<key>   KEYS[2] allow:<cid>   KEYS[3] orders:topersist   KEYS[4] persist:pending
-- KEYS[5] order:<oid>   KEYS[6] orders:inflight:<cid>   KEYS[7] carts:dirty   KEYS[8] reserving:<oid>
-- KEYS[9] orders:reserving   KEYS[10] the idempotency key's lock   KEYS[11] cart:<owner> (checkout
-- only; else absent) (all of the customer's bucket)
-- ARGV[1] customer id   ARGV[2] order id   ARGV[3] now (ms)   ARGV[4] expires (ms)
-- ARGV[5] request fingerprint   ARGV[6] idempotency TTL (s)   ARGV[7] allowance TTL (s)
-- ARGV[8] persistence-pending flag TTL (ms)   ARGV[9] the order's status channel
-- ARGV[10] cart version ('' = not checkout)   ARGV[11] cart owner   ARGV[12] cart TTL (s)
-- ARGV[13] the largest total an order may have (cents)   ARGV[14] number of lines n
-- ARGV[15..14+5n] per line: product id, quantity, price, currency, limit ('' none), as the
-- product's step read them
-- Returns {'OK', total, currency, enqueue, lines JSON} | {'UNDONE'} | {'NO_ALLOWANCE'}
-- | {'CART_CHANGED'} | {'LIMIT', pid, remaining} | {'CURRENCY', pid} | {'TOO_LARGE', total}.
--#include cart
--#include stock_event
--#include reserve
if redis.call('EXISTS', KEYS[5]) == 1 then
  -- This commit ran and its reply was lost (the client sent it again after a dropped connection):
  -- answer it again. Read as a refusal, it would undo the units of an order that exists.
  local o = redis.call('HMGET', KEYS[5], 'total_cents', 'currency', 'lines')
  return {'OK', tonumber(o[1]), o[2], 0, o[3]}
end
if redis.call('HGET', KEYS[8], 'state') ~= 'RESERVING' then
  return {'UNDONE'}
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'NO_ALLOWANCE'}
end
local checkout = ARGV[10] ~= ''
if checkout and redis.call('HGET', KEYS[11], '_v') ~= ARGV[10] then
  return {'CART_CHANGED'}
end
local n = tonumber(ARGV[14])
local o = {lines = {}, total = 0}
for i = 1, n do
  local a = 10 + 5 * i
  local refusal = count_line(o, KEYS[2], ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3],
    ARGV[a + 4])
  if refusal then
    return refusal
  end
end
local refusal = total_refusal(o)
if refusal then
  return refusal
end
local lines, total, currency = o.lines, o.total, o.currency
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local enqueue = order_record(checkout and KEYS[11] or nil, lines, total, currency, at)
redis.call('DEL', KEYS[8], KEYS[10])
redis.call('ZREM', KEYS[9], ARGV[2])
return {'OK', total, currency, enqueue, cjson.encode(lines)}
