-- Mirror a status change decided in PostgreSQL into Redis: give back stock and allowance when
-- cancelled, update the order's cached record, and publish the change.
-- Called only by the caller whose conditional UPDATE won, inside its transaction (see db.stock).
-- KEYS[1] order:{oid}   KEYS[2] allow:{cid}   KEYS[3..] stock:{pid} per line
-- ARGV[1] order id   ARGV[2] status   ARGV[3] cancel reason ('' if none)   ARGV[4] now (ms)
-- ARGV[5..] pid, qty per line (only released when ARGV[2] is CANCELLED)
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[2] == 'CANCELLED' then
  for i = 3, #KEYS do
    local pid, qty = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
    if redis.call('EXISTS', KEYS[i]) == 1 then
      local left = redis.call('INCRBY', KEYS[i], qty)
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
