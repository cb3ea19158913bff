-- The steps of a reservation; db.scripts puts this text where a script asks for the library
-- "reserve" (after "cart" and "stock_event", which it uses). On one node, order_reserve.lua runs
-- them all in one call, every key being there. On a cluster a product's steps run on its slot and
-- the order's on its bucket's slot, as separate calls (order_begin, stock_take, order_commit,
-- stock_untake, order_abandon; db.reservation says how they are sequenced and undone).

-- A product's side, given the units left and its sale facts {price, currency, limit, drop} already
-- read: why `qty` cannot be taken, or nil.
local function line_refusal_at(stock, info, pid, qty, passes)
  -- A product outside a drop has no 'drop' field (or ''): this test is all it costs.
  if info[4] and info[4] ~= '' and not string.find(passes, ',' .. info[4] .. ',', 1, true) then
    return {'NEEDS_PASS', pid, info[4]}
  end
  if stock < qty then
    return {'OUT_OF_STOCK', pid, stock}
  end
  return nil
end

-- A product's side: why `qty` of `pid` cannot be taken now, or nil and its sale facts
-- {price, currency, limit, drop}. `passes` is ',id,id,' of the drops whose pass the caller holds.
local function line_refusal(stock_key, info_key, pid, qty, passes)
  local stock = redis.call('GET', stock_key)
  local info = redis.call('HMGET', info_key, 'price', 'currency', 'limit', 'drop')
  if not stock or not info[1] then
    return {'MISSING', pid}
  end
  return line_refusal_at(tonumber(stock), info, pid, qty, passes), info
end

-- A product's side: take the units (line_refusal said yes). Returns 1 when the new figure was
-- published, 0 when it is owed (lib/stock_event.lua).
local function line_take(stock_key, held_key, pub_key, channel, pid, qty, now_ms, at, window, pub_ttl)
  local left = redis.call('DECRBY', stock_key, qty)
  redis.call('INCRBY', held_key, qty)
  return stock_event(pub_key, channel, pid, left, now_ms, at, window, pub_ttl)
end

-- The customer's side: why the customer may not buy `qty` more of `pid` (its `limit`, '' for
-- none), or nil.
local function limit_refusal(allow_key, pid, qty, limit)
  if limit and limit ~= '' then
    local remaining = tonumber(limit) - tonumber(redis.call('HGET', allow_key, pid) or '0')
    if qty > remaining then
      return {'LIMIT', pid, math.max(remaining, 0)}
    end
  end
  return nil
end

-- The customer's side of one line, in the order's line order: its limit, the order's one currency;
-- then the line counted into `o` ({lines = {}, total = 0}). Returns a refusal, or nil.
local function count_line(o, allow_key, pid, qty, price, currency, limit)
  local refusal = limit_refusal(allow_key, pid, qty, limit)
  if refusal then
    return refusal
  end
  if o.currency and o.currency ~= currency then
    return {'CURRENCY', pid}
  end
  o.currency = currency
  o.total = o.total + price * qty
  table.insert(o.lines, {tonumber(pid), qty, price})
  return nil
end

-- The customer's side, once every line is counted (count_line): the order's total against the
-- largest one an order may have (ARGV[13]); a refusal, or nil.
local function total_refusal(o)
  if o.total > tonumber(ARGV[13]) then
    return {'TOO_LARGE', o.total}
  end
  return nil
end

-- The customer's side, once every line is taken: count the lines ({pid, qty, price}) against the
-- allowance, record the order, queue it for persistence, remember the idempotency key, empty a
-- checked-out cart (`cart`, its key; nil unless checkout), and announce PENDING. Returns 1 when the
-- caller must enqueue a persistence job. Reads the layout order_reserve.lua and order_commit.lua
-- share: KEYS[1] idem   KEYS[2] allow   KEYS[3] orders:topersist   KEYS[4] persist:pending
-- KEYS[5] order   KEYS[6] orders:inflight   KEYS[7] carts:dirty; ARGV[1] customer id   ARGV[2] order
-- id   ARGV[3] now (ms)   ARGV[4] expires (ms)   ARGV[5] fingerprint   ARGV[6] idempotency TTL (s)
-- ARGV[7] allowance TTL (s)   ARGV[8] pending flag TTL (ms)   ARGV[9] status channel   ARGV[11] cart
-- owner   ARGV[12] cart TTL (s).
local function order_record(cart, lines, total, currency, at)
  local order_id, now_ms = ARGV[2], ARGV[3]
  for _, line in ipairs(lines) do
    redis.call('HINCRBY', KEYS[2], line[1], line[2])
  end
  redis.call('HSET', KEYS[5],
    'id', order_id, 'customer_id', ARGV[1], 'status', 'PENDING', 'lines', cjson.encode(lines),
    'total_cents', total, 'currency', currency, 'created_ms', now_ms, 'expires_ms', ARGV[4],
    'fingerprint', ARGV[5], 'idem_key', KEYS[1], 'persisted', '0')
  redis.call('EXPIRE', KEYS[2], ARGV[7])
  redis.call('ZADD', KEYS[3], now_ms, order_id)
  redis.call('SADD', KEYS[6], order_id)
  redis.call('SET', KEYS[1], order_id .. '|' .. ARGV[5], 'EX', ARGV[6])
  if cart then
    -- Checkout empties the cart in the same step, so a cart is never both ordered and kept.
    cart_clear_lines(cart)
    cart_touch(cart, KEYS[7], now_ms, ARGV[12], ARGV[11])
  end
  redis.call('SPUBLISH', ARGV[9], cjson.encode({orderId = order_id, status = 'PENDING', at = at}))
  -- The flag expires by itself, so a job whose enqueue was lost only delays the next one briefly.
  if redis.call('SET', KEYS[4], now_ms, 'NX', 'PX', ARGV[8]) then
    return 1
  end
  return 0
end

-- The customer's side, first: the order an idempotency key already made ({'REPLAY', oid}), a key
-- reused for another request ({'IDEM_MISMATCH'}), or nil.
local function idempotency_refusal(idem_key, fingerprint)
  local idem = redis.call('GET', idem_key)
  if idem then
    local sep = string.find(idem, '|', 1, true)
    if string.sub(idem, sep + 1) ~= fingerprint then
      return {'IDEM_MISMATCH'}
    end
    return {'REPLAY', string.sub(idem, 1, sep - 1)}
  end
  return nil
end
