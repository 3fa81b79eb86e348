-- Remove rate-limit start records older than a cutoff.
-- KEYS: the rate window of each queue.  ARGV[3]: cutoff_ms.  Returns the number of entries removed.
local removed = 0
for _, rate in ipairs(KEYS) do
  removed = removed + redis.call('ZREMRANGEBYSCORE', rate, '-inf', tonumber(ARGV[3]))
end
return removed
