#!lua
-- A reservation in steps (a cluster), on a product's slot: take one line's units of each order
-- given, in turn, if they are there, as order_reserve.lua does, and mark them taken for that order,
-- so that taking again changes nothing and an undo (stock_untake.lua) gives back exactly what was
-- taken, once. The orders are the concurrent reservations one process sends together
-- (db.take_batches): the hot product's shard pays a call's fixed cost once for all of them, and
-- publishes the figure once. An order already undone here (by the sweeper) takes nothing.
-- KEYS[1] stock:<pid>   KEYS[2] stock:held:<pid>   KEYS[3] pinfo:<pid>   KEYS[4] stock:pub:<pid>
-- KEYS[5] stock:epoch:<pid>   KEYS[5+i] stock:taken:<pid>:<oid of order i>
-- ARGV[1] product id   ARGV[2] the product's stock channel   ARGV[3] stock event window (ms)
-- ARGV[4] TTL of stock:pub (s)   ARGV[5] TTL of the marks (s)
-- ARGV[4+2i] order i's quantity   ARGV[5+2i] ',id,id,' drops whose pass order i's buyer holds
-- Returns {'MISSING', pid} (nothing taken) or {'OK', price, currency, limit, 1 if the stock figure is
-- owed else 0, then per order: 'OK' | 'UNDONE' | 'NEEDS_PASS' | 'OUT_OF_STOCK', and the drop id or
-- the units left for the last two ('' otherwise)}.
--#include cart
--#include stock_event
--#include reserve
local pid = ARGV[1]
local stock = redis.call('GET', KEYS[1])
local info = redis.call('HMGET', KEYS[3], 'price', 'currency', 'limit', 'drop')
if not stock or not info[1] then
  return {'MISSING', pid}
end
local left, taken, epoch = tonumber(stock), 0, nil
local out = {'OK', info[1], info[2], info[3] or '', 0}
for i = 1, #KEYS - 5 do
  local mark_key, qty = KEYS[5 + i], tonumber(ARGV[4 + 2 * i])
  local mark = redis.call('GET', mark_key)
  local status, value = 'OK', ''
  if mark == 'undone' then
    status = 'UNDONE'
  elseif not mark then
    local refusal = line_refusal_at(left, info, pid, qty, ARGV[5 + 2 * i])
    if refusal then
      status, value = refusal[1], refusal[3]
    else
      -- The epoch the units were taken under: a rebuild after it counted them already (db.stock).
      epoch = epoch or redis.call('GET', KEYS[5]) or ''
      redis.call('SET', mark_key, qty .. '|' .. epoch, 'EX', ARGV[5])
      left, taken = left - qty, taken + qty
    end
  end
  -- (a mark already there: this order's units were taken by an earlier call; nothing changes)
  table.insert(out, status)
  table.insert(out, value)
end
if taken > 0 then
  local t = redis.call('TIME')
  local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  out[5] = 1 - line_take(KEYS[1], KEYS[2], KEYS[4], ARGV[2], pid, taken, now_ms, at, ARGV[3], ARGV[4])
end
return out
