-- Mirror a status change committed in PostgreSQL into Redis: give back stock and allowance when
-- cancelled, update the order's cached record, and publish the change. Runs after the commit,
-- only for the caller whose conditional UPDATE won. A line's units go back to the counter only if
-- no rebuild has run since the caller read the product's epoch inside its transaction: a rebuild
-- after the commit already counted them (see db.stock).
-- KEYS[1] order:{oid}   KEYS[2] allow:{cid}   KEYS[3..2+n] stock:{pid}   KEYS[3+n..2+2n] stock:epoch:{pid}
-- ARGV[1] order id   ARGV[2] status   ARGV[3] cancel reason ('' if none)   ARGV[4] now (ms)
-- ARGV[5..] pid, qty, epoch read in the transaction ('' = none yet), per line (CANCELLED only)
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = (#KEYS - 2) / 2
if ARGV[2] == 'CANCELLED' then
  for i = 1, n do
    local pid, qty, epoch = ARGV[2 + 3 * i], tonumber(ARGV[3 + 3 * i]), ARGV[4 + 3 * i]
    local stock_key, epoch_key = KEYS[2 + i], KEYS[2 + n + i]
    if redis.call('EXISTS', stock_key) == 1 and (redis.call('GET', epoch_key) or '') == epoch then
      local left = redis.call('INCRBY', stock_key, qty)
      redis.call('PUBLISH', 'events:stock:' .. pid,
        cjson.encode({productId = pid, available = left, at = at}))
    end
    if redis.call('EXISTS', KEYS[2]) == 1 then
      redis.call('HINCRBY', KEYS[2], pid, -qty)
    end
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'cancel_reason', ARGV[3])
  if ARGV[2] == 'CANCELLED' then
    redis.call('HSET', KEYS[1], 'cancelled_ms', ARGV[4])
  elseif ARGV[2] == 'PAID' then
    redis.call('HSET', KEYS[1], 'paid_ms', ARGV[4])
  end
end
local event = {orderId = ARGV[1], status = ARGV[2], at = at}
if ARGV[3] ~= '' then
  event['cancelReason'] = ARGV[3]
end
redis.call('PUBLISH', 'events:order:' .. ARGV[1], cjson.encode(event))
return 1
