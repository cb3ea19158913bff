#!lua
-- Write a drop's admission policy where its line's scripts read it (on creation, and again from
-- PostgreSQL when Redis lost it). The line's state is kept if it is there.
-- KEYS[1] drop:{dN}:conf
-- ARGV[1] starts (ms)   ARGV[2] admissions a second ('' none)   ARGV[3] max passes out at once ('' none)
-- ARGV[4] pass lifetime (ms)   ARGV[5] units per admitted shopper   ARGV[6] product ids (comma list)
-- ARGV[7] ended (0/1)
-- Returns {'OK'}.
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'rate', ARGV[2], 'max_active', ARGV[3], 'pass_ttl_ms', ARGV[4],
  'per_buyer', ARGV[5], 'pids', ARGV[6], 'ended', ARGV[7])
return {'OK'}
