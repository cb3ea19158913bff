#!lua
-- Give a shopper a place in a drop's line, once: joining again keeps the place it has.
-- Before the start the place is a random score below every post-start score, which is the same
-- as shuffling everyone who came early at the start (refreshing at T-0 buys nothing); after the
-- start it is the arrival number (first come, first served). The start is judged by Redis' own
-- clock, the one the admission script uses.
-- KEYS[1] drop:{dN}:conf   KEYS[2] drop:{dN}:line   KEYS[3] drop:{dN}:seq
-- ARGV[1] shopper   ARGV[2] a random score in [0, 1), used only before the start
-- Returns {'MISSING'} (no conf: load it and call again) | {'ENDED'} | {'OK', 1 if this call made the place else 0}.
local conf = redis.call('HMGET', KEYS[1], 'starts_ms', 'ended')
if not conf[1] then
  return {'MISSING'}
end
if conf[2] == '1' then
  return {'ENDED'}
end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return {'OK', 0}
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score
if now_ms < tonumber(conf[1]) then
  score = ARGV[2]
else
  score = 1 + redis.call('INCR', KEYS[3])
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
return {'OK', 1}
