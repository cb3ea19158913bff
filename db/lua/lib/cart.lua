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

-- A cart's lines, sorted by product id: {{pid, qty}, ...}.
local function cart_lines(cart)
  local lines = {}
  local raw = redis.call('HGETALL', cart)
  for i = 1, #raw, 2 do
    if string.sub(raw[i], 1, 1) ~= '_' then
      table.insert(lines, {raw[i], tonumber(raw[i + 1])})
    end
  end
  table.sort(lines, function(a, b) return tonumber(a[1]) < tonumber(b[1]) end)
  return lines
end

-- Attach a guest's lines ({{pid, qty}, ...}) to a customer's cart by strategy (MERGE |
-- KEEP_CUSTOMER_CART | REPLACE_WITH_GUEST_CART), touching it if it changed. A line past the units a
-- line may hold is capped; a new line that finds the cart full is left out and reported capped.
-- Returns {'OK', guest lines, lines added, lines combined, capped product id, ...}.
local function cart_merge_lines(cart, dirty, guest, strategy, max_units, max_lines, now_ms, ttl, owner)
  local added, combined, capped = 0, 0, {}
  local changed = false
  if strategy == 'MERGE' then
    local lines = redis.call('HLEN', cart) - 2
    for _, line in ipairs(guest) do
      local pid, qty = line[1], line[2]
      local current = tonumber(redis.call('HGET', cart, pid) or '0')
      if current > 0 then
        local total = current + qty
        if total > max_units then
          total = max_units
          table.insert(capped, pid)
        end
        redis.call('HSET', cart, pid, total)
        combined = combined + 1
        changed = true
      elseif lines >= max_lines then
        table.insert(capped, pid)
      else
        redis.call('HSET', cart, pid, math.min(qty, max_units))
        lines = lines + 1
        added = added + 1
        changed = true
      end
    end
  elseif strategy == 'REPLACE_WITH_GUEST_CART' and #guest > 0 then
    cart_clear_lines(cart)
    for _, line in ipairs(guest) do
      redis.call('HSET', cart, line[1], line[2])
    end
    added = #guest
    changed = true
  end
  if changed then
    cart_touch(cart, dirty, now_ms, ttl, owner)
  end
  local out = {'OK', #guest, added, combined}
  for _, pid in ipairs(capped) do
    table.insert(out, pid)
  end
  return out
end
