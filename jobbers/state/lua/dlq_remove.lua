-- Remove tasks from the dead letter queue. The task records stay, to be pruned by their own age.
-- KEYS: the record of each task.  ARGV[3..]: the task ids.
-- Returns the ids that were in the DLQ (and now are not).
local out = {}
for i = 1, #KEYS do
  local id, tk = ARGV[2 + i], KEYS[i]
  if redis.call('ZREM', K_dlq, id) == 1 then
    if redis.call('EXISTS', tk) == 1 then redis.call('HSET', tk, 'dead_lettered', '0') end
    out[#out + 1] = id
  end
end
return out
