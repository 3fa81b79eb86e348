-- Write the outcome of attempts, each fenced by its lease token (a late writer is rejected).
-- KEYS: the record of each task.  ARGV[3]: one msgpack array of finish rows (task_schema.FINISH_ROW).
-- A row's status is a terminal status, or RETRY / REQUEUE: back to the ready queue (keeping its
-- place by submission time), or to its schedule when delay_ms > 0.
-- Returns a list of 1 (written) / 0 (rejected).
local now = now_ms()
local out = {}
for i, o in ipairs(cmsgpack.unpack(ARGV[3])) do
  local id, new = o[FINISH.id], o[FINISH.status]
  local tk = KEYS[i]
  local f = redis.call('HMGET', tk, 'status', 'lease', 'queue', 'submitted_at', 'retry_attempt', 'priority',
    'concurrency_key', 'worker_id', 'name', 'correlation_id', 'workflow_id', 'workflow_node')
  if f[1] ~= STARTED or f[2] ~= o[FINISH.token] then
    out[i] = 0
  else
    local queue = f[3]
    know(id, f[5], f[8], f[9], f[10])
    know_workflow(id, f[11], f[12])
    release(id, queue)
    local etype = o[FINISH.error_type]
    local error_text = ''
    if etype ~= '' then
      append_error(tk, etype, o[FINISH.error_message], now, tonumber(f[5]))
      error_text = etype .. ': ' .. o[FINISH.error_message]
    end
    if new == RETRY or new == REQUEUE then
      local attempt = tostring(o[FINISH.retry_attempt])
      local fields = NO_FIELDS
      if new == RETRY and attempt ~= '' then fields = {'retry_attempt', attempt} end
      local delay = tonumber(o[FINISH.delay_ms])
      if new == RETRY then
        local detail = 'retry in ' .. fmt(delay) .. ' ms'
        if error_text ~= '' then detail = error_text .. '; ' .. detail end
        note(EV_RETRIED, detail)
      else
        note(EV_RESUBMITTED, 'put back by its worker shutting down')
      end
      if delay > 0 then
        make_scheduled(id, tk, queue, STARTED, now + delay, now, unpack(fields))
      else
        make_ready(id, tk, queue, STARTED, tonumber(f[4]), f[6], now, f[7], unpack(fields))
      end
    else
      note(new, error_text)
      local result = o[FINISH.result]
      if result ~= '' then
        end_task(id, tk, queue, STARTED, new, now, o[FINISH.dead_letter] == 1, f[7], 'result', result)
      else
        end_task(id, tk, queue, STARTED, new, now, o[FINISH.dead_letter] == 1, f[7])
      end
    end
    out[i] = 1
  end
end
return out
