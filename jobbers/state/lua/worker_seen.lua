-- A worker reports that it is alive (and what it runs), judged by Redis time: its id is scored
-- with the moment the report expires, and its details hash expires then too. Reports expired for
-- an hour are dropped, so crashed workers do not pile up. Touches only global keys.
-- KEYS: the workers registry, this worker's details.
-- ARGV[3..]: worker id, ttl_ms, then field/value pairs (role, queues, running, ...)
-- Returns the Redis time of the report (ms).
local workers, wk = KEYS[1], KEYS[2]
local id, ttl = ARGV[3], tonumber(ARGV[4])
local now = now_ms()
redis.call('HSET', wk, 'last_seen', fmt(now), unpack(ARGV, 5))
redis.call('HSETNX', wk, 'first_seen', fmt(now))
redis.call('PEXPIRE', wk, ttl)
redis.call('ZADD', workers, now + ttl, id)
redis.call('ZREMRANGEBYSCORE', workers, '-inf', now - 3600000)
return now
