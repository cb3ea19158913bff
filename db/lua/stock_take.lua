#!lua
-- A reservation in steps (a cluster), on a product's slot: take one line's units if they are
-- there, as order_reserve.lua does, and mark them taken for this order, so that taking again
-- changes nothing and an undo (stock_untake.lua) gives back exactly what was taken, once. An order
-- already undone here (by the sweeper) takes nothing: {'UNDONE'}.
-- KEYS[1] stock:<pid>   KEYS[2] stock:held:<pid>   KEYS[3] pinfo:<pid>   KEYS[4] stock:pub:<pid>
-- KEYS[5] stock:epoch:<pid>   KEYS[6] stock:taken:<pid>:<oid>
-- ARGV[1] product id   ARGV[2] quantity   ARGV[3] the product's stock channel   ARGV[4] stock event
-- window (ms)   ARGV[5] TTL of stock:pub (s)   ARGV[6] ',id,id,' drops whose pass the caller holds
-- ARGV[7] TTL of the mark (s)
-- Returns {'OK', price, currency, limit, 1 if the stock figure is owed else 0} | {'UNDONE'}
-- | {'MISSING', pid} | {'NEEDS_PASS', pid, drop id} | {'OUT_OF_STOCK', pid, available}.
--#include cart
--#include stock_event
--#include reserve
local mark = redis.call('GET', KEYS[6])
if mark == 'undone' then
  return {'UNDONE'}
end
local pid, qty = ARGV[1], tonumber(ARGV[2])
local refusal, info
if mark then
  info = redis.call('HMGET', KEYS[3], 'price', 'currency', 'limit')
  return {'OK', info[1], info[2], info[3] or '', 0}
end
refusal, info = line_refusal(KEYS[1], KEYS[3], pid, qty, ARGV[6])
if refusal then
  return refusal
end
local t = redis.call('TIME')
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local published = line_take(KEYS[1], KEYS[2], KEYS[4], ARGV[3], pid, qty, now_ms, at, ARGV[4], ARGV[5])
-- The epoch the units were taken under: a rebuild after it counted them already (db.stock).
redis.call('SET', KEYS[6], qty .. '|' .. (redis.call('GET', KEYS[5]) or ''), 'EX', ARGV[7])
return {'OK', info[1], info[2], info[3] or '', 1 - published}
