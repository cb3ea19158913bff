#!lua
-- Count one attempt against several limits at once, before the attempt is made, so concurrent
-- attempts cannot all pass a check that none of them has counted yet.
-- KEYS[i] a counter per limit   ARGV[1] window (s)   ARGV[1 + i] the limit of KEYS[i]
-- Returns {'OK'} when every counter is within its limit (all were incremented), or
-- {'LIMITED', i, seconds until KEYS[i] resets} for the first one that is not (nothing counted).
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[1 + i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
      ttl = tonumber(ARGV[1])
    end
    return {'LIMITED', i, ttl}
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return {'OK'}
