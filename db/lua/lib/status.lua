-- Steps every script that mirrors a committed status change shares; db.scripts puts this text where
-- a script asks for the library "status" (after "stock_event", which it uses). The one-call script
-- (order_status.lua) and the steps a cluster runs (order_mirror.lua on the customer's bucket,
-- stock_release.lua on each product's slot) are made of these.

-- Give a cancelled line's units back to its counter, unless the counter is missing or a rebuild
-- ran since `epoch` was read in the transaction (the rebuild counted them already).
-- Returns 1 when the new figure is owed (lib/stock_event.lua), else 0.
local function release_line(stock_key, epoch_key, pub_key, pid, qty, epoch, channel, window, pub_ttl)
  if redis.call('EXISTS', stock_key) == 0 or (redis.call('GET', epoch_key) or '') ~= epoch then
    return 0
  end
  local left = redis.call('INCRBY', stock_key, qty)
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
  return 1 - stock_event(pub_key, channel, pid, left, now_ms, at, window, pub_ttl)
end

-- Give a cancelled order's units back to the customer's allowance, if it is loaded (a missing one
-- is loaded from PostgreSQL, which already counts the cancellation).
local function allowance_give_back(allow_key, pid, qty)
  if redis.call('EXISTS', allow_key) == 1 then
    redis.call('HINCRBY', allow_key, pid, -qty)
  end
end

-- Write the change on the order's cached record (if cached) and announce it on the order's channel,
-- stamped with the time stored in PostgreSQL, so a client sees the same `at` live and on a re-subscribe.
local function order_mark(order_key, oid, status, reason, at_ms, channel)
  if redis.call('EXISTS', order_key) == 1 then
    redis.call('HSET', order_key, 'status', status, 'cancel_reason', reason)
    if status == 'CANCELLED' then
      redis.call('HSET', order_key, 'cancelled_ms', at_ms)
    elseif status == 'PAID' then
      redis.call('HSET', order_key, 'paid_ms', at_ms)
    end
  end
  local event = {orderId = oid, status = status, at = tonumber(at_ms) / 1000}
  if reason ~= '' then
    event['cancelReason'] = reason
  end
  redis.call('SPUBLISH', channel, cjson.encode(event))
end
