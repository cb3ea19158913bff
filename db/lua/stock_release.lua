#!lua
-- A cancellation mirrored in steps (a cluster), on a product's slot: give the line's units back
-- once (a per-order marker on the product's own slot, so a repeated or swept step gives nothing
-- twice), as order_status.lua does (lib/status.lua).
-- KEYS[1] stock:<pid>   KEYS[2] stock:epoch:<pid>   KEYS[3] stock:pub:<pid>   KEYS[4] stock:released:<pid>:<oid>
-- ARGV[1] product id   ARGV[2] quantity   ARGV[3] epoch read in the transaction ('' = none yet)
-- ARGV[4] the product's stock channel   ARGV[5] stock event window (ms)   ARGV[6] TTL of stock:pub (s)
-- ARGV[7] how long the marker is kept (s)
-- Returns {'OK', 1 if this call gave units back else 0, 1 if the stock figure is owed else 0}.
--#include stock_event
--#include status
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', ARGV[7]) then
  return {'OK', 0, 0}
end
return {'OK', 1, release_line(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5],
  ARGV[6])}
