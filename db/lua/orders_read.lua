-- Every order record named in KEYS (order:{oid}), as flat HGETALL arrays (empty for a missing one):
-- one reply for a batch instead of one per order.
local records = {}
for i = 1, #KEYS do
  records[i] = redis.call('HGETALL', KEYS[i])
end
return records
