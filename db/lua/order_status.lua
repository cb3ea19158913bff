#!lua
-- Mirror a status change committed in PostgreSQL into Redis: give back stock and allowance when
-- cancelled, update the order's cached record, and publish the change. Runs after the commit,
-- only for the caller whose conditional UPDATE won (or the outbox's sweeper). One call on one node;
-- a cluster runs the same steps one slot each (stock_release.lua, then order_mirror.lua).
-- Safe to run again (a retry after a lost reply, a second caller): the give-back happens once,
-- guarded by a per-order marker.
-- KEYS[1] order:<oid>   KEYS[2] allow:<cid>   KEYS[3] order:released:<oid>
-- KEYS[4..3+n] stock:<pid>   KEYS[4+n..3+2n] stock:epoch:<pid>   KEYS[4+2n..3+3n] stock:pub:<pid>
-- ARGV[1] order id   ARGV[2] status   ARGV[3] cancel reason ('' if none)   ARGV[4] when (ms)
-- ARGV[5] the order's status channel   ARGV[6] how long the marker is kept (s)
-- ARGV[7] stock event window (ms)   ARGV[8] TTL of stock:pub (s)
-- ARGV[9..] per line (CANCELLED only): product id, quantity, epoch read in the transaction
-- ('' = none yet), the product's stock channel
-- Returns {'OK', 1 if this call gave units back else 0, product id whose stock figure is owed, ...}.
--#include stock_event
--#include status
local n = (#KEYS - 3) / 3
local gave = 0
local out = {'OK'}
if ARGV[2] == 'CANCELLED' and redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[6]) then
  gave = 1
  for i = 1, n do
    local a = 5 + 4 * i
    local pid, qty = ARGV[a], tonumber(ARGV[a + 1])
    if release_line(KEYS[3 + i], KEYS[3 + n + i], KEYS[3 + 2 * n + i], pid, qty, ARGV[a + 2], ARGV[a + 3],
        ARGV[7], ARGV[8]) == 1 then
      table.insert(out, pid)
    end
    allowance_give_back(KEYS[2], pid, qty)
  end
end
order_mark(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
table.insert(out, 2, gave)
return out
