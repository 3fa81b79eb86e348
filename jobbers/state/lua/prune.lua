-- Delete terminal tasks that reached their status before a cutoff. Dead-lettered tasks are kept
-- (the DLQ has its own age) and counted as skipped, as is any task whose record is not in that
-- status: queued work can never be pruned.
-- KEYS: the space's index of the status, its DLQ.  ARGV[3..]: status, cutoff_ms, limit, offset.
-- Returns {removed_ids, skipped_count}
local index, dlq = KEYS[1], KEYS[2]
local status, cutoff = ARGV[3], tonumber(ARGV[4])
if not TERMINAL[status] then return redis.error_reply('prune: ' .. status .. ' is not a terminal status') end
local limit, offset = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', offset, limit)
local removed, skipped = {}, 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', dlq, id) or redis.call('HGET', K_task(id), 'status') ~= status then
    skipped = skipped + 1
  else
    redis.call('DEL', K_task(id))
    redis.call('ZREM', index, id)
    removed[#removed + 1] = id
  end
end
return {removed, skipped}
