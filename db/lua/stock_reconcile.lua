#!lua
-- Compare a stock counter with what PostgreSQL and the holds say it should be; repair a drift
-- only when the same drift is seen again at least ARGV[4] ms after it was first seen. Work in
-- flight between a commit and its Redis step (or a worker that died there, until the sweeper
-- finishes its Redis step) differs only for seconds, and must never be "repaired".
-- It also publishes a stock figure still owed (lib/stock_event.lua) whose owner never flushed it
-- (its process died), so a watcher is never left with a stale figure for longer than a run apart.
-- KEYS[1] stock:<pid>   KEYS[2] stock:held:<pid>   KEYS[3] stock:drift:<pid>   KEYS[4] stock:epoch:<pid>
-- KEYS[5] stock:pub:<pid>
-- ARGV[1] products.stock (read under a share lock)   ARGV[2] product id   ARGV[3] drift memory (s)
-- ARGV[4] minimum time between the two sightings (ms)   ARGV[5] the product's stock channel
-- ARGV[6] stock event window (ms)   ARGV[7] TTL of KEYS[5] (s)
-- Returns {'OK', drift repaired} (0 when none or not yet confirmed).
--#include stock_event
local current = redis.call('GET', KEYS[1])
if not current then
  return {'OK', 0}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tonumber(t[1]) + tonumber(t[2]) / 1000000
if stock_event_owed(KEYS[5], now_ms, ARGV[6]) == 0 then
  stock_event(KEYS[5], ARGV[5], ARGV[2], tonumber(current), now_ms, at, 0, ARGV[7])
end
local expected = tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[2]) or '0')
if expected < 0 then
  expected = 0
end
local drift = tonumber(current) - expected
if drift == 0 then
  redis.call('DEL', KEYS[3])
  return {'OK', 0}
end
local seen = redis.call('GET', KEYS[3])
local sep = seen and string.find(seen, ':', 1, true)
if not sep or tonumber(string.sub(seen, 1, sep - 1)) ~= drift then
  redis.call('SET', KEYS[3], drift .. ':' .. now_ms, 'EX', ARGV[3])
  return {'OK', 0}
end
if now_ms - tonumber(string.sub(seen, sep + 1)) < tonumber(ARGV[4]) then
  return {'OK', 0}
end
redis.call('SET', KEYS[1], expected)
redis.call('INCR', KEYS[4])
redis.call('DEL', KEYS[3])
-- A repair is rare and watchers must see it: published whatever the window.
stock_event(KEYS[5], ARGV[5], ARGV[2], expected, now_ms, at, 0, ARGV[7])
return {'OK', drift}
