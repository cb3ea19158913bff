#!lua
-- Give back one attempt counted by ratelimit_take.lua (a sign-in that succeeded), without ever
-- creating a counter or taking one below zero.
-- KEYS[i] a counter   ARGV[i] 1 to clear the counter instead
-- Returns {'OK'}.
for i = 1, #KEYS do
  if ARGV[i] == '1' then
    redis.call('DEL', KEYS[i])
  elseif tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return {'OK'}
