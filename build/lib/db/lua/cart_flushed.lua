#!lua
-- After a cart was written to PostgreSQL at version ARGV[2], clear its dirty mark unless it
-- changed again meanwhile (then the next flush writes the newer version).
-- KEYS[1] cart:{owner}   KEYS[2] carts:dirty   ARGV[1] owner   ARGV[2] version written
-- Returns {'OK', 1 if the mark was cleared else 0}.
local version = redis.call('HGET', KEYS[1], '_v')
if version == false or version == ARGV[2] then
  return {'OK', redis.call('ZREM', KEYS[2], ARGV[1])}
end
return {'OK', 0}
