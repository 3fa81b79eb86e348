-- Resubmit dead-lettered tasks. Each must still be in the DLQ and in a DEAD_LETTER status; it
-- leaves the DLQ and is made ready with its error history kept and its stall count reset (and its
-- retry count, when asked). A workflow node resubmitted resumes its run (wf_reopen).
-- KEYS: the record of each task.  ARGV[3]: reset_retry_count ('1'/'0').  ARGV[4]: packed list of
-- fresh task ids for the workflow nodes a reopened run makes anew.  ARGV[5..]: the task ids.
-- Returns per id: {id, RESUBMIT_* outcome, status}
local reset = ARGV[3] == '1'
FRESH = cmsgpack.unpack(ARGV[4])

local now = now_ms()
local out = {}
for i = 1, #KEYS do
  local id, tk = ARGV[4 + i], KEYS[i]
  local f = redis.call('HMGET', tk, 'status', 'queue', 'priority', 'concurrency_key', 'workflow_id', 'workflow_node')
  local status, queue = f[1], f[2]
  if not status or not redis.call('ZSCORE', K_dlq, id) then
    out[i] = {id, RESUBMIT_NOT_FOUND, status or ''}
  elseif not DEAD_LETTER[status] then
    out[i] = {id, RESUBMIT_CONFLICT, status}
  else
    redis.call('ZREM', K_dlq, id)
    note(EV_RESUBMITTED, 'from the dead letter queue')
    redis.call('HDEL', tk, 'completed_at', 'result', 'error', 'cancel_requested', 'run_at',
      'last_heartbeat_at', 'lease', 'lease_ms')
    if reset then
      make_ready(id, tk, queue, status, now, f[3], now, f[4], 'dead_lettered', '0', 'stall_count', '0',
        'retry_attempt', '0')
    else
      make_ready(id, tk, queue, status, now, f[3], now, f[4], 'dead_lettered', '0', 'stall_count', '0')
    end
    if f[5] and f[5] ~= '' then wf_reopen(f[5], f[6], now) end
    out[i] = {id, RESUBMIT_RESUBMITTED, SUBMITTED}
  end
end
return out
