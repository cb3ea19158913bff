#!lua
-- The sweeper's claim on reservations in steps past their deadline, on one bucket: each is marked
-- UNDOING (so that its commit, if its process is still alive, is refused) and returned with its
-- lines, for the sweeper to undo every line and then abandon it (order_abandon.lua).
-- KEYS[1] orders:reserving   then KEYS[2..] reserving:<oid> of the ids ARGV names
-- ARGV[1] now (ms)   ARGV[2..] the order ids the caller read as due (ZRANGEBYSCORE beforehand)
-- Returns {'OK', oid, lines JSON, customer id, its idempotency lock's name, ...} ('' for each of the
-- last three when its note is gone).
local out = {'OK'}
for i = 2, #ARGV do
  local oid = ARGV[i]
  local due = redis.call('ZSCORE', KEYS[1], oid)
  if due and tonumber(due) <= tonumber(ARGV[1]) then
    local note = redis.call('HMGET', KEYS[i], 'lines', 'customer_id', 'lock')
    if note[1] then
      redis.call('HSET', KEYS[i], 'state', 'UNDOING')
    end
    table.insert(out, oid)
    table.insert(out, note[1] or '')
    table.insert(out, note[2] or '')
    table.insert(out, note[3] or '')
  end
end
return out
