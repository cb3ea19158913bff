#!lua
-- Mirror a status change committed in PostgreSQL into Redis: give back stock and allowance when
-- cancelled, update the order's cached record, and publish the change. Runs after the commit,
-- only for the caller whose conditional UPDATE won. A line's units go back to the counter only if
-- no rebuild has run since the caller read the product's epoch inside its transaction: a rebuild
-- after the commit already counted them (see db.stock).
-- Safe to run again (a retry after a lost reply, a second caller): the give-back happens once,
-- guarded by a per-order marker.
-- KEYS[1] order:<oid>   KEYS[2] allow:<cid>   KEYS[3] order:released:<oid>
-- KEYS[4..3+n] stock:<pid>   KEYS[4+n..3+2n] stock:epoch:<pid>   KEYS[4+2n..3+3n] stock:pub:<pid>
-- ARGV[1] order id   ARGV[2] status   ARGV[3] cancel reason ('' if none)   ARGV[4] when (ms)
-- ARGV[5] the order's status channel   ARGV[6] how long the marker is kept (s)
-- ARGV[7] stock event window (ms)   ARGV[8] TTL of stock:pub (s)
-- ARGV[9..] per line (CANCELLED only): product id, quantity, epoch read in the transaction
-- ('' = none yet), the product's stock channel
-- Returns {'OK', 1 if this call gave units back else 0, product id whose stock figure is owed, ...}.
-- The event's time is the one stored with the change (PostgreSQL's, to the millisecond), so a
-- client sees the same `at` live and on a re-subscribe.
--#include stock_event
local at = tonumber(ARGV[4]) / 1000
local n = (#KEYS - 3) / 3
local gave = 0
local owed = {}
if ARGV[2] == 'CANCELLED' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[6]) then
  gave = 1
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = 1, n do
    local a = 5 + 4 * i
    local pid, qty, epoch, channel = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
    local stock_key, epoch_key = KEYS[3 + i], KEYS[3 + n + i]
    if redis.call('EXISTS', stock_key) == 1 and (redis.call('GET', epoch_key) or '') == epoch then
      local left = redis.call('INCRBY', stock_key, qty)
      if stock_event(KEYS[3 + 2 * n + i], channel, pid, left, now_ms, at, ARGV[7], ARGV[8]) == 0 then
        table.insert(owed, pid)
      end
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
redis.call('SPUBLISH', ARGV[5], cjson.encode(event))
local out = {'OK', gave}
for _, pid in ipairs(owed) do
  table.insert(out, pid)
end
return out
