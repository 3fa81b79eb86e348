-- Delete terminal tasks that reached their status before a cutoff. Dead-lettered tasks are kept
-- (the DLQ has its own age) and counted as skipped, as is any task whose record is not in that
-- status: queued work can never be pruned.
-- ARGV: prefix, status, cutoff_ms, limit, offset.  Returns {removed_ids, skipped_count}
local status, cutoff = ARGV[2], tonumber(ARGV[3])
local terminal = {completed = true, failed = true, cancelled = true, stalled = true, dropped = true}
if not terminal[status] then return redis.error_reply('prune: ' .. status .. ' is not a terminal status') end
local limit, offset = tonumber(ARGV[4]), tonumber(ARGV[5])
local ids = redis.call('ZRANGEBYSCORE', K_status(status), '-inf', cutoff, 'LIMIT', offset, limit)
local removed, skipped = {}, 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', K_dlq, id) or redis.call('HGET', K_task(id), 'status') ~= status then
    skipped = skipped + 1
  else
    redis.call('DEL', K_task(id))
    redis.call('ZREM', K_status(status), id)
    removed[#removed + 1] = id
  end
end
return {removed, skipped}
