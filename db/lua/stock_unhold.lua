#!lua
-- After a batch's rows are committed in PostgreSQL, in steps (a cluster), on a product's slot: drop
-- the holds the batch's orders reserved in steps left on stock:held, once each: the order's take
-- mark (stock_take.lua) says how many units it took and becomes 'persisted', so a repeated step
-- drops nothing twice. The bucket's part is orders_persisted.lua, called after this one.
-- KEYS[1] stock:held:<pid>   KEYS[2..] stock:taken:<pid>:<oid> of the batch's orders with a line of pid
-- Returns {'OK', units no longer held}.
local dropped = 0
for i = 2, #KEYS do
  local mark = redis.call('GET', KEYS[i])
  local sep = mark and string.find(mark, '|', 1, true)
  if sep then
    local qty = tonumber(string.sub(mark, 1, sep - 1))
    redis.call('DECRBY', KEYS[1], qty)
    redis.call('SET', KEYS[i], 'persisted', 'KEEPTTL')
    dropped = dropped + qty
  end
end
return {'OK', dropped}
