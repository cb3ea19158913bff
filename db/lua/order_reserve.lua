#!lua
-- Reserve every line of an order or none, record the order, and queue it for persistence: every
-- step of lib/reserve.lua in one call, all keys being on one node (see that file for the cluster).
-- KEYS[1] idem:<cid>:<key>   KEYS[2] allow:<cid>   KEYS[3] orders:topersist   KEYS[4] persist:pending
-- KEYS[5] order:<oid>   KEYS[6] orders:inflight:<cid>   KEYS[7] carts:dirty (all of the customer's bucket)
-- then for each line: stock:<pid>, stock:held:<pid>, pinfo:<pid>, stock:pub:<pid>; last, for checkout only:
-- cart:<owner>
-- ARGV[1] customer id   ARGV[2] order id   ARGV[3] now (ms)   ARGV[4] expires (ms)
-- ARGV[5] request fingerprint   ARGV[6] idempotency TTL (s)   ARGV[7] allowance TTL (s)
-- ARGV[8] persistence-pending flag TTL (ms)   ARGV[9] the order's status channel
-- ARGV[10] cart version ('' = not checkout)   ARGV[11] cart owner   ARGV[12] cart TTL (s)
-- ARGV[13] the largest total an order may have (cents)   ARGV[14] number of lines n
-- ARGV[15..14+3n] per line: product id, quantity, the product's stock channel
-- ARGV[15+3n] stock event window (ms)   ARGV[16+3n] TTL of stock:pub (s)
-- ARGV[17+3n] the drops whose pass the caller holds for this order, as ',id,id,' ('' or absent: none)
-- Returns {'REPLAY', oid} | {'IDEM_MISMATCH'} | {'NO_ALLOWANCE'} | {'MISSING', pid} | {'CART_CHANGED'}
-- | {'NEEDS_PASS', pid, drop id} (a product of a live drop, and no pass held for that drop)
-- | {'OUT_OF_STOCK', pid, available} | {'LIMIT', pid, remaining} | {'CURRENCY', pid} | {'TOO_LARGE', total}
-- | {'OK', total, currency, enqueue (1 when no persistence job is pending), lines JSON, product id whose
-- stock figure is owed (lib/stock_event.lua), ...}.
--#include cart
--#include stock_event
--#include reserve
local refusal = idempotency_refusal(KEYS[1], ARGV[5])
if refusal then
  return refusal
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'NO_ALLOWANCE'}
end
local checkout = ARGV[10] ~= ''
local cart = KEYS[#KEYS]
if checkout and redis.call('HGET', cart, '_v') ~= ARGV[10] then
  return {'CART_CHANGED'}
end

local n = tonumber(ARGV[14])
local passes = ARGV[17 + 3 * n] or ''
local o = {lines = {}, total = 0}
for i = 1, n do
  local pid, qty = ARGV[12 + 3 * i], tonumber(ARGV[13 + 3 * i])
  local info
  refusal, info = line_refusal(KEYS[4 + 4 * i], KEYS[6 + 4 * i], pid, qty, passes)
  if refusal then
    return refusal
  end
  refusal = count_line(o, KEYS[2], pid, qty, tonumber(info[1]), info[2], info[3])
  if refusal then
    return refusal
  end
end
refusal = total_refusal(o)
if refusal then
  return refusal
end
local lines, total, currency = o.lines, o.total, o.currency

local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, pub_ttl = ARGV[15 + 3 * n], ARGV[16 + 3 * n]
local owed = {}
for i = 1, n do
  local pid, qty = lines[i][1], lines[i][2]
  if line_take(KEYS[4 + 4 * i], KEYS[5 + 4 * i], KEYS[7 + 4 * i], ARGV[14 + 3 * i], pid, qty, now_ms, at, window,
      pub_ttl) == 0 then
    table.insert(owed, pid)
  end
end
local enqueue = order_record(checkout and cart or nil, lines, total, currency, at)
local out = {'OK', total, currency, enqueue, cjson.encode(lines)}
for _, pid in ipairs(owed) do
  table.insert(out, pid)
end
return out
