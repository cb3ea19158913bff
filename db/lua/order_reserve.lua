-- Reserve every line of an order or none, record the order, and queue it for persistence.
-- KEYS[1] idem:{cid}:{key}   KEYS[2] allow:{cid}   KEYS[3] orders:topersist   KEYS[4] persist:pending
-- KEYS[5] order:{oid}   KEYS[6] orders:inflight:{cid}   KEYS[7] cart:{owner} (checkout) or any key
-- KEYS[8] carts:dirty   then for each line: stock:{pid}, stock:held:{pid}, pinfo:{pid}
-- ARGV[1] customer id   ARGV[2] order id   ARGV[3] now (ms)   ARGV[4] expires (ms)
-- ARGV[5] request fingerprint   ARGV[6] idempotency TTL (s)   ARGV[7] cart version ('' = not checkout)
-- ARGV[8] cart owner   ARGV[9] cart TTL (s)   ARGV[10] number of lines   ARGV[11..] pid, qty, ...
-- Returns {'REPLAY', oid} | {'IDEM_MISMATCH'} | {'NO_ALLOWANCE'} | {'MISSING', pid} | {'CART_CHANGED'}
-- | {'OUT_OF_STOCK', pid, available} | {'LIMIT', pid, remaining} | {'CURRENCY', pid}
-- | {'OK', total, currency, enqueue (1 when no persistence job is pending), lines JSON}.
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
if ARGV[7] ~= '' and redis.call('HGET', KEYS[7], '_v') ~= ARGV[7] then
  return {'CART_CHANGED'}
end

local n = tonumber(ARGV[10])
local lines, total, currency = {}, 0, nil
for i = 1, n do
  local pid, qty = ARGV[9 + 2 * i], tonumber(ARGV[10 + 2 * i])
  local stock_key, info_key = KEYS[6 + 3 * i], KEYS[8 + 3 * i]
  local stock = redis.call('GET', stock_key)
  local info = redis.call('HMGET', info_key, 'price', 'currency', 'limit')
  if not stock or not info[1] then
    return {'MISSING', pid}
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

local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, n do
  local pid, qty = lines[i][1], lines[i][2]
  local left = redis.call('DECRBY', KEYS[6 + 3 * i], qty)
  redis.call('INCRBY', KEYS[7 + 3 * i], qty)
  redis.call('HINCRBY', KEYS[2], pid, qty)
  redis.call('PUBLISH', 'events:stock:' .. pid,
    cjson.encode({productId = tostring(pid), available = left, at = at}))
end
redis.call('HSET', KEYS[5],
  'id', ARGV[2], 'customer_id', ARGV[1], 'status', 'PENDING', 'lines', cjson.encode(lines),
  'total_cents', total, 'currency', currency, 'created_ms', ARGV[3], 'expires_ms', ARGV[4],
  'fingerprint', ARGV[5], 'idem_key', KEYS[1], 'persisted', '0')
redis.call('EXPIRE', KEYS[2], 2592000)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[2])
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[5], 'EX', ARGV[6])
if ARGV[7] ~= '' then
  -- Checkout empties the cart in the same step, so a cart is never both ordered and kept.
  for _, field in ipairs(redis.call('HKEYS', KEYS[7])) do
    if string.sub(field, 1, 1) ~= '_' then
      redis.call('HDEL', KEYS[7], field)
    end
  end
  redis.call('HINCRBY', KEYS[7], '_v', 1)
  redis.call('HSET', KEYS[7], '_u', ARGV[3])
  redis.call('EXPIRE', KEYS[7], ARGV[9])
  redis.call('ZADD', KEYS[8], 'NX', ARGV[3], ARGV[8])
end
redis.call('PUBLISH', 'events:order:' .. ARGV[2],
  cjson.encode({orderId = ARGV[2], status = 'PENDING', at = at}))
local enqueue = 0
-- The flag expires by itself, so a job whose enqueue was lost only delays the next one briefly.
if redis.call('SET', KEYS[4], ARGV[3], 'NX', 'PX', 5000) then
  enqueue = 1
end
return {'OK', total, currency, enqueue, cjson.encode(lines)}
