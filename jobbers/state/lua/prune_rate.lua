-- Remove rate-limit start records older than a cutoff, across every queue ever used.
-- ARGV: prefix, cutoff_ms.  Returns the number of entries removed.
local removed = 0
for _, queue in ipairs(redis.call('SMEMBERS', K_queues)) do
  removed = removed + redis.call('ZREMRANGEBYSCORE', K_rate(queue), '-inf', tonumber(ARGV[2]))
end
return removed
