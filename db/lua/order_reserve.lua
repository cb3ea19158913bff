#!lua
-- Reserve every line of an order or none, record the order, and queue it for persistence.
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
local idem = redis.call('GET', KEYS[1])
if idem then
  local sep = string.find(idem, '|', 1, true)
  if string.sub(idem, sep + 1) ~= ARGV[5] then
    return {'IDEM_MISMATCH'}
  end
  return {'REPLAY', string.sub(idem, 1, sep - 1)}
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
local lines, total, currency = {}, 0, nil
for i = 1, n do
  local pid, qty = ARGV[12 + 3 * i], tonumber(ARGV[13 + 3 * i])
  local stock_key, info_key = KEYS[4 + 4 * i], KEYS[6 + 4 * i]
  local stock = redis.call('GET', stock_key)
  local info = redis.call('HMGET', info_key, 'price', 'currency', 'limit', 'drop')
  if not stock or not info[1] then
    return {'MISSING', pid}
  end
  -- A product outside a drop has no 'drop' field (or ''): this test is all it costs.
  if info[4] and info[4] ~= '' and not string.find(passes, ',' .. info[4] .. ',', 1, true) then
    return {'NEEDS_PASS', pid, info[4]}
  end
  stock = tonumber(stock)
  if stock < qty then
    return {'OUT_OF_STOCK', pid, stock}
  end
  if info[3] and info[3] ~= '' then
    local remaining = tonumber(info[3]) - tonumber(redis.call('HGET', KEYS[2], pid) or '0')
    if qty > remaining then
      return {'LIMIT', pid, math.max(remaining, 0)}
    end
  end
  if currency and currency ~= info[2] then
    return {'CURRENCY', pid}
  end
  currency = info[2]
  local price = tonumber(info[1])
  total = total + price * qty
  lines[i] = {tonumber(pid), qty, price}
end
if total > tonumber(ARGV[13]) then
  return {'TOO_LARGE', total}
end

local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, pub_ttl = ARGV[15 + 3 * n], ARGV[16 + 3 * n]
local owed = {}
for i = 1, n do
  local pid, qty = lines[i][1], lines[i][2]
  local left = redis.call('DECRBY', KEYS[4 + 4 * i], qty)
  redis.call('INCRBY', KEYS[5 + 4 * i], qty)
  redis.call('HINCRBY', KEYS[2], pid, qty)
  if stock_event(KEYS[7 + 4 * i], ARGV[14 + 3 * i], pid, left, now_ms, at, window, pub_ttl) == 0 then
    table.insert(owed, pid)
  end
end
redis.call('HSET', KEYS[5],
  'id', ARGV[2], 'customer_id', ARGV[1], 'status', 'PENDING', 'lines', cjson.encode(lines),
  'total_cents', total, 'currency', currency, 'created_ms', ARGV[3], 'expires_ms', ARGV[4],
  'fingerprint', ARGV[5], 'idem_key', KEYS[1], 'persisted', '0')
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[2])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[5], 'EX', ARGV[6])
if checkout then
  -- Checkout empties the cart in the same step, so a cart is never both ordered and kept.
  cart_clear_lines(cart)
  cart_touch(cart, KEYS[7], ARGV[3], ARGV[12], ARGV[11])
end
redis.call('SPUBLISH', ARGV[9], cjson.encode({orderId = ARGV[2], status = 'PENDING', at = at}))
local enqueue = 0
-- The flag expires by itself, so a job whose enqueue was lost only delays the next one briefly.
if redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', ARGV[8]) then
  enqueue = 1
end
local out = {'OK', total, currency, enqueue, cjson.encode(lines)}
for _, pid in ipairs(owed) do
  table.insert(out, pid)
end
return out
