-- Resubmit dead-lettered tasks. Each must still be in the DLQ and 'failed' or 'stalled'; it leaves
-- the DLQ and is re-queued 'submitted' with its error history kept and its stall count reset
-- (and its retry count, when asked), then its queue's workers are woken.
-- ARGV: prefix, reset_retry_count ('1'/'0'), then task ids.
-- Returns per id: {id, outcome, status}; outcome: resubmitted | not_found | conflict
local reset = ARGV[2] == '1'
local now = now_ms()
local out = {}
local woken = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'queue')
  local status, queue = f[1], f[2]
  if not status or not redis.call('ZSCORE', K_dlq, id) then
    out[#out + 1] = {id, 'not_found', status or ''}
  elseif status ~= 'failed' and status ~= 'stalled' then
    out[#out + 1] = {id, 'conflict', status}
  else
    redis.call('ZREM', K_dlq, id)
    redis.call('HDEL', tk, 'completed_at', 'result', 'error', 'cancel_requested', 'run_at',
      'last_heartbeat_at', 'lease')
    redis.call('HSET', tk, 'status', 'submitted', 'dead_lettered', '0', 'stall_count', '0',
      'updated_at', fmt(now))
    if reset then redis.call('HSET', tk, 'retry_attempt', '0') end
    redis.call('ZADD', K_queue(queue), now, id)
    redis.call('SADD', K_queues, queue)
    move_status(id, status, 'submitted', now)
    woken[queue] = true
    out[#out + 1] = {id, 'resubmitted', 'submitted'}
  end
end
for queue, _ in pairs(woken) do redis.call('PUBLISH', K_wake_channel, queue) end
return out
