#!lua
-- Publish a product's owed stock figure (see lib/stock_event.lua) once its window is over.
-- KEYS[1] stock:<pid>   KEYS[2] stock:pub:<pid>
-- ARGV[1] product id   ARGV[2] the product's stock channel   ARGV[3] window (ms)   ARGV[4] TTL of KEYS[2] (s)
-- Returns {'OK', 1 if published else 0} or {'WAIT', ms until the window is over}.
--#include stock_event
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local owed = stock_event_owed(KEYS[2], now_ms, ARGV[3])
if owed > 0 then
  return {'WAIT', owed}
end
local value = redis.call('GET', KEYS[1])
if owed < 0 or not value then
  -- Nothing owed, or no counter: its rebuild is the next figure watchers read.
  return {'OK', 0}
end
return {'OK', stock_event(KEYS[2], ARGV[2], ARGV[1], tonumber(value), now_ms,
  tonumber(t[1]) + tonumber(t[2]) / 1000000, 0, ARGV[4])}
