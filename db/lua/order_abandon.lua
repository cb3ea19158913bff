#!lua
-- A reservation in steps that will not be committed, on the customer's bucket: ends its note and
-- frees its idempotency key (a retry may try again), once every line is undone (stock_untake.lua).
-- KEYS[1] reserving:<oid>   KEYS[2] orders:reserving   KEYS[3] the idempotency key's lock (absent when
-- its note was lost with it)
-- ARGV[1] order id
-- Returns {'OK'}.
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[1] then
  redis.call('DEL', KEYS[3])
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {'OK'}
