-- Remove dead letter entries older than a cutoff (the task record is then pruned by its own age).
-- KEYS: the space's DLQ.  ARGV[3..]: cutoff_ms, limit.  Returns the removed ids.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[3]), 'LIMIT', 0, tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  if redis.call('EXISTS', K_task(id)) == 1 then redis.call('HSET', K_task(id), 'dead_lettered', '0') end
end
return ids
