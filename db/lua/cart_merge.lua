#!lua
-- Attach a guest cart to a customer's cart on sign-in, atomically; the guest cart is emptied.
-- KEYS[1] guest cart   KEYS[2] customer cart   KEYS[3] the customer cart's carts:dirty
-- KEYS[4] the guest cart's carts:dirty (each cart is marked in its own bucket's set)
-- ARGV[1] strategy: MERGE | KEEP_CUSTOMER_CART | REPLACE_WITH_GUEST_CART
-- ARGV[2] max units a line   ARGV[3] max lines   ARGV[4] now (ms)
-- ARGV[5] customer cart TTL (s)   ARGV[6] guest cart TTL (s)   ARGV[7] guest owner   ARGV[8] customer owner
-- Returns {'MISSING'} if either cart is not in Redis, else
-- {'OK', guest lines, lines added, lines combined, capped product id, ...}.
--#include cart
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return {'MISSING'}
end
local strategy = ARGV[1]
local max_units, max_lines = tonumber(ARGV[2]), tonumber(ARGV[3])

local guest = {}
local raw = redis.call('HGETALL', KEYS[1])
for i = 1, #raw, 2 do
  if string.sub(raw[i], 1, 1) ~= '_' then
    table.insert(guest, {raw[i], tonumber(raw[i + 1])})
  end
end
table.sort(guest, function(a, b) return tonumber(a[1]) < tonumber(b[1]) end)

local added, combined, capped = 0, 0, {}
local changed = false
if strategy == 'MERGE' then
  local lines = redis.call('HLEN', KEYS[2]) - 2
  for _, line in ipairs(guest) do
    local pid, qty = line[1], line[2]
    local current = tonumber(redis.call('HGET', KEYS[2], pid) or '0')
    if current > 0 then
      local total = current + qty
      if total > max_units then
        total = max_units
        table.insert(capped, pid)
      end
      redis.call('HSET', KEYS[2], pid, total)
      combined = combined + 1
      changed = true
    elseif lines >= max_lines then
      -- The customer's cart is full: the line cannot be kept, and is reported as capped.
      table.insert(capped, pid)
    else
      redis.call('HSET', KEYS[2], pid, math.min(qty, max_units))
      lines = lines + 1
      added = added + 1
      changed = true
    end
  end
elseif strategy == 'REPLACE_WITH_GUEST_CART' and #guest > 0 then
  cart_clear_lines(KEYS[2])
  for _, line in ipairs(guest) do
    redis.call('HSET', KEYS[2], line[1], line[2])
  end
  added = #guest
  changed = true
end

if changed then
  cart_touch(KEYS[2], KEYS[3], ARGV[4], ARGV[5], ARGV[8])
end
if #guest > 0 then
  cart_clear_lines(KEYS[1])
  cart_touch(KEYS[1], KEYS[4], ARGV[4], ARGV[6], ARGV[7])
end

local out = {'OK', #guest, added, combined}
for _, pid in ipairs(capped) do
  table.insert(out, pid)
end
return out
