#!lua
-- Change one cart atomically and mark it dirty for write-behind; returns the cart after.
-- KEYS[1] cart:{owner}   KEYS[2] carts:dirty
-- ARGV[1] op: add | set | remove | clear   ARGV[2] product id   ARGV[3] quantity
-- ARGV[4] max units a line   ARGV[5] max lines   ARGV[6] now (ms)   ARGV[7] TTL (s)   ARGV[8] owner
-- Returns {'MISSING'} when the cart is not in Redis (the caller restores it from PostgreSQL and
-- retries), {'LINE_LIMIT', current} or {'CART_LIMIT'} when refused, else {'OK', field, value, ...}.
--#include cart
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'MISSING'}
end
local op, pid, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])
local max_units, max_lines = tonumber(ARGV[4]), tonumber(ARGV[5])
if op == 'add' or op == 'set' then
  local current = tonumber(redis.call('HGET', KEYS[1], pid) or '0')
  local wanted = qty
  if op == 'add' then
    wanted = current + qty
  end
  if wanted > max_units then
    return {'LINE_LIMIT', tostring(current)}
  end
  if current == 0 and wanted > 0 then
    -- Two meta fields (_v, _u) sit beside the lines.
    if redis.call('HLEN', KEYS[1]) - 2 >= max_lines then
      return {'CART_LIMIT'}
    end
  end
  if wanted == 0 then
    redis.call('HDEL', KEYS[1], pid)
  else
    redis.call('HSET', KEYS[1], pid, wanted)
  end
elseif op == 'remove' then
  redis.call('HDEL', KEYS[1], pid)
elseif op == 'clear' then
  cart_clear_lines(KEYS[1])
end
cart_touch(KEYS[1], KEYS[2], ARGV[6], ARGV[7], ARGV[8])
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 'OK')
return out
