-- Stock events coalesced at the source; db.scripts puts this text where a script asks for the
-- library "stock_event". A hot product changes once per order, but its watchers want the latest
-- figure a few times a second, not every step: a product publishes at most once per window, and
-- a change inside the window is owed instead. The owed figure goes out with the next change after
-- the window or, if none comes, with the flush of the process that was told it is owed
-- (db.stock_events), so the last figure always reaches the watchers.
-- stock:pub:<pid> holds the time of the last publish (ms), followed by '+' while a figure is owed.

-- Publish `available` unless the product published less than `window` ms ago; then owe it.
-- Returns 1 when published, 0 when owed.
local function stock_event(pub_key, channel, pid, available, now_ms, at, window, ttl)
  local last = redis.call('GET', pub_key)
  if last and now_ms - tonumber(string.match(last, '^%d+')) < tonumber(window) then
    if string.sub(last, -1) ~= '+' then
      redis.call('SET', pub_key, last .. '+', 'KEEPTTL')
    end
    return 0
  end
  redis.call('SET', pub_key, now_ms, 'EX', ttl)
  redis.call('SPUBLISH', channel, cjson.encode({productId = tostring(pid), available = available, at = at}))
  return 1
end

-- Whether a figure is owed: -1 when none is, 0 when one is and may go out now, else the ms to wait.
local function stock_event_owed(pub_key, now_ms, window)
  local last = redis.call('GET', pub_key)
  if not last or string.sub(last, -1) ~= '+' then
    return -1
  end
  return math.max(0, tonumber(window) - (now_ms - tonumber(string.match(last, '^%d+'))))
end
