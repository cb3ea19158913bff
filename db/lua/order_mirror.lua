#!lua
-- A status change mirrored in steps (a cluster), on the customer's bucket, after every line's
-- stock_release.lua: give the allowance back once (a per-order marker), update the order's cached
-- record, publish the change. The same steps as order_status.lua (lib/status.lua).
-- KEYS[1] order:<oid>   KEYS[2] allow:<cid>   KEYS[3] order:released:<oid>
-- ARGV[1] order id   ARGV[2] status   ARGV[3] cancel reason ('' if none)   ARGV[4] when (ms)
-- ARGV[5] the order's status channel   ARGV[6] how long the marker is kept (s)
-- ARGV[7..] per line (CANCELLED only): product id, quantity
-- Returns {'OK', 1 if this call gave the allowance back else 0}.
--#include stock_event
--#include status
local gave = 0
if ARGV[2] == 'CANCELLED' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[6]) then
  gave = 1
  for a = 7, #ARGV, 2 do
    allowance_give_back(KEYS[2], ARGV[a], tonumber(ARGV[a + 1]))
  end
end
order_mark(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return {'OK', gave}
