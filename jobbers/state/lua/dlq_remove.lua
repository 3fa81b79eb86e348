-- Remove tasks from the dead letter queue. The task records stay, to be pruned by their own age.
-- ARGV: prefix, then task ids.  Returns the ids that were in the DLQ (and now are not).
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', K_dlq, id) == 1 then
    if redis.call('EXISTS', K_task(id)) == 1 then redis.call('HSET', K_task(id), 'dead_lettered', '0') end
    out[#out + 1] = id
  end
end
return out
