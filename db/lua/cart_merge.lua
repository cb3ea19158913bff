#!lua
-- Attach a guest cart to a customer's cart on sign-in, atomically; the guest cart is emptied. One
-- call on one node; a cluster runs the same steps one slot each (cart_merge_in.lua on the
-- customer's bucket, then cart_empty.lua on the guest's; lib/cart.lua).
-- KEYS[1] guest cart   KEYS[2] customer cart   KEYS[3] the customer cart's carts:dirty
-- KEYS[4] the guest cart's carts:dirty (each cart is marked in its own bucket's set)
-- ARGV[1] strategy: MERGE | KEEP_CUSTOMER_CART | REPLACE_WITH_GUEST_CART
-- ARGV[2] max units a line   ARGV[3] max lines   ARGV[4] now (ms)
-- ARGV[5] customer cart TTL (s)   ARGV[6] guest cart TTL (s)   ARGV[7] guest owner   ARGV[8] customer owner
-- Returns {'MISSING'} if either cart is not in Redis, else
-- {'OK', guest lines, lines added, lines combined, capped product id, ...}.
--#include cart
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return {'MISSING'}
end
local guest = cart_lines(KEYS[1])
local out = cart_merge_lines(KEYS[2], KEYS[3], guest, ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
  ARGV[5], ARGV[8])
if #guest > 0 then
  cart_clear_lines(KEYS[1])
  cart_touch(KEYS[1], KEYS[4], ARGV[4], ARGV[6], ARGV[7])
end
return out
