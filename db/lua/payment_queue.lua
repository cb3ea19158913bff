#!lua
-- Queue a stored webhook event for the payment drain job.
-- KEYS[1] payments:toapply   KEYS[2] payments:pending
-- ARGV[1] event id   ARGV[2] receipt time (ms)   ARGV[3] drain-pending flag TTL (ms)
-- Returns {'OK', enqueue (1 when no drain job is pending: the caller enqueues one)}.
-- NX keeps the first receipt time of an id queued twice (webhook and sweeper).
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
local enqueue = 0
-- The flag expires by itself, so a job whose enqueue was lost only delays the next one briefly.
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  enqueue = 1
end
return {'OK', enqueue}
