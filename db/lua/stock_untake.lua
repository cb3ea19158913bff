#!lua
-- Undo a step of a reservation that will not be committed, on a product's slot: give back what
-- stock_take.lua took for the order (unless the counter was rebuilt since, which counted them
-- already), once; and mark the order undone here, so that a take still on its way takes nothing.
-- KEYS[1] stock:<pid>   KEYS[2] stock:held:<pid>   KEYS[3] stock:pub:<pid>   KEYS[4] stock:epoch:<pid>
-- KEYS[5] stock:taken:<pid>:<oid>
-- ARGV[1] product id   ARGV[2] the product's stock channel   ARGV[3] stock event window (ms)
-- ARGV[4] TTL of stock:pub (s)   ARGV[5] TTL of the mark (s)
-- Returns {'OK', units given back, 1 if the stock figure is owed else 0}.
--#include stock_event
local mark = redis.call('GET', KEYS[5])
if mark == 'persisted' then
  -- The order was committed and persisted: its units are no undo's to give back.
  return {'OK', 0, 0}
end
redis.call('SET', KEYS[5], 'undone', 'EX', ARGV[5])
if not mark or mark == 'undone' then
  return {'OK', 0, 0}
end
local sep = string.find(mark, '|', 1, true)
local qty, epoch = tonumber(string.sub(mark, 1, sep - 1)), string.sub(mark, sep + 1)
if redis.call('EXISTS', KEYS[1]) == 0 or (redis.call('GET', KEYS[4]) or '') ~= epoch then
  return {'OK', 0, 0}
end
local left = redis.call('INCRBY', KEYS[1], qty)
redis.call('DECRBY', KEYS[2], qty)
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {'OK', qty, 1 - stock_event(KEYS[3], ARGV[2], ARGV[1], left, now_ms, at, ARGV[3], ARGV[4])}
