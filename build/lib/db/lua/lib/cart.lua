-- Steps every script that changes a cart shares; db.scripts puts this text where a script asks
-- for the library "cart". A cart hash holds "<product id>" -> quantity plus meta fields starting
-- with '_' (_v version, _u last change in ms).

-- Remove every line of a cart, keeping its meta fields.
local function cart_clear_lines(cart)
  for _, field in ipairs(redis.call('HKEYS', cart)) do
    if string.sub(field, 1, 1) ~= '_' then
      redis.call('HDEL', cart, field)
    end
  end
end

-- After a change: bump the version (checkout and the flush compare it), stamp the time, refresh
-- the TTL and mark the owner dirty for write-behind (keeping the first dirty time).
local function cart_touch(cart, dirty, now_ms, ttl, owner)
  redis.call('HINCRBY', cart, '_v', 1)
  redis.call('HSET', cart, '_u', now_ms)
  redis.call('EXPIRE', cart, ttl)
  redis.call('ZADD', dirty, 'NX', now_ms, owner)
end
