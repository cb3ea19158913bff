#!lua
-- A guest cart attached in steps (a cluster), last step, on the guest's bucket: empty the guest
-- cart its lines were merged from, unless it changed since they were read (then it keeps its lines).
-- KEYS[1] guest cart   KEYS[2] its carts:dirty
-- ARGV[1] the version the lines were read at   ARGV[2] now (ms)   ARGV[3] guest cart TTL (s)   ARGV[4] guest owner
-- Returns {'OK', 1 if emptied else 0}.
--#include cart
if redis.call('HGET', KEYS[1], '_v') ~= ARGV[1] then
  return {'OK', 0}
end
cart_clear_lines(KEYS[1])
cart_touch(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4])
return {'OK', 1}
