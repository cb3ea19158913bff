#!lua flags=no-writes
-- Every order record named in KEYS (order:{oid}), as flat HGETALL arrays (empty for a missing one):
-- one reply for a batch instead of one per order. Returns {'OK', record, ...}.
local records = {'OK'}
for i = 1, #KEYS do
  records[i + 1] = redis.call('HGETALL', KEYS[i])
end
return records
