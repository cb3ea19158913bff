#!lua
-- A guest cart attached in steps (a cluster), on the customer's bucket: the guest's lines, read
-- from its own slot beforehand, merged into the customer's cart as cart_merge.lua does
-- (lib/cart.lua), once per guest cart version: a repeat (a retry after a lost reply, a sign-in
-- again before the guest cart was emptied) answers the first merge's counts and changes nothing.
-- KEYS[1] customer cart   KEYS[2] its carts:dirty   KEYS[3] cart:merged:<customer owner>
-- ARGV[1] strategy   ARGV[2] max units a line   ARGV[3] max lines   ARGV[4] now (ms)
-- ARGV[5] customer cart TTL (s)   ARGV[6] customer owner   ARGV[7] the guest cart's owner and version
-- ("<owner>|<_v>")   ARGV[8] how long the merge is remembered (s)   ARGV[9..] guest lines: product id, quantity
-- Returns {'MISSING'} if the customer's cart is not in Redis, else as cart_merge.lua.
--#include cart
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local merged = redis.call('GET', KEYS[3])
if merged and string.sub(merged, 1, #ARGV[7] + 1) == ARGV[7] .. '|' then
  return cjson.decode(string.sub(merged, #ARGV[7] + 2))
end
local guest = {}
for a = 9, #ARGV, 2 do
  table.insert(guest, {ARGV[a], tonumber(ARGV[a + 1])})
end
local out = cart_merge_lines(KEYS[1], KEYS[2], guest, ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4],
  ARGV[5], ARGV[6])
redis.call('SET', KEYS[3], ARGV[7] .. '|' .. cjson.encode(out), 'EX', ARGV[8])
return out
