#!lua
-- End a drop's line: nobody joins or is admitted any more, and every listener is told at once.
-- KEYS[1] drop:{dN}:conf   KEYS[2] drop:{dN}:state
-- ARGV[1] the drop's channel
-- Returns {'OK'}.
redis.call('HSET', KEYS[1], 'ended', '1')
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[2], 'pub_ms', now_ms, 'pub_sig', 'ended')
redis.call('SPUBLISH', ARGV[1], cjson.encode({at = now_ms, ended = true}))
return {'OK'}
