-- Remove dead letter entries older than a cutoff (the task record is then pruned by its own age).
-- ARGV: prefix, cutoff_ms, limit.  Returns the removed ids.
local ids = redis.call('ZRANGEBYSCORE', K_dlq, '-inf', tonumber(ARGV[2]), 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', K_dlq, id)
  if redis.call('EXISTS', K_task(id)) == 1 then redis.call('HSET', K_task(id), 'dead_lettered', '0') end
end
return ids
