#!lua
-- A reservation made with a taken pass was refused: the pass is the shopper's again, until its
-- expiry, for another try.
-- KEYS[1] drop:{dN}:taken   ARGV[1] shopper
-- Returns {'OK'}.
redis.call('HDEL', KEYS[1], ARGV[1])
return {'OK'}
