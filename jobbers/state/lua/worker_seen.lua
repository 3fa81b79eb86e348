-- A worker reports that it is alive (and what it runs), judged by Redis time: its id is scored
-- with the moment the report expires, and its details hash expires then too. Reports expired for
-- an hour are dropped, so crashed workers do not pile up.
-- ARGV: prefix, worker id, ttl_ms, then field/value pairs (role, queues, running, ...)
-- Returns the Redis time of the report (ms).
local id, ttl = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local wk = K_worker(id)
redis.call('HSET', wk, 'last_seen', fmt(now), unpack(ARGV, 4))
redis.call('HSETNX', wk, 'first_seen', fmt(now))
redis.call('PEXPIRE', wk, ttl)
redis.call('ZADD', K_workers, now + ttl, id)
redis.call('ZREMRANGEBYSCORE', K_workers, '-inf', now - 3600000)
return now
