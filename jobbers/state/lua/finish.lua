-- Write the outcome of attempts, each fenced by its lease token (a late writer is rejected).
-- ARGV: prefix, n, then per task: id, token, new_status, result, error_type, error_message,
--       retry_attempt ('' = unchanged), delay_ms (for a retry; 0 = re-queue now),
--       dead_letter ('1'/'0')
-- new_status: completed | failed | cancelled | stalled | dropped | retry
-- Returns a list of 1 (written) / 0 (rejected).
local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local woken = {}
local scheduled = false
local i = 3
for _ = 1, n do
  local id, token, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local result, etype, emsg = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  local attempt, delay, dead = ARGV[i + 6], tonumber(ARGV[i + 7]), ARGV[i + 8]
  i = i + 9
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'lease', 'queue', 'submitted_at', 'retry_attempt')
  if f[1] ~= 'started' or f[2] ~= token then
    out[#out + 1] = 0
  else
    local queue = f[3]
    release(id, tk, queue)
    -- A freed slot may unblock a queue held back by max_concurrent: wake its workers.
    if redis.call('ZCARD', K_queue(queue)) > 0 then woken[queue] = true end
    if etype ~= '' then append_error(tk, etype, emsg, now, tonumber(f[5])) end
    if new == 'retry' then
      if attempt ~= '' then redis.call('HSET', tk, 'retry_attempt', attempt) end
      if delay > 0 then
        local run_at = now + delay
        redis.call('HSET', tk, 'status', 'scheduled', 'run_at', fmt(run_at), 'updated_at', fmt(now))
        redis.call('ZADD', K_sched(queue), run_at, id)
        move_status(id, 'started', 'scheduled', now)
        scheduled = true
      else
        redis.call('HSET', tk, 'status', 'submitted', 'updated_at', fmt(now))
        redis.call('ZADD', K_queue(queue), tonumber(f[4]), id)
        move_status(id, 'started', 'submitted', now)
        woken[queue] = true
      end
    else
      if result ~= '' then redis.call('HSET', tk, 'result', result) end
      end_task(id, tk, 'started', new, now, dead == '1')
    end
    out[#out + 1] = 1
  end
end
for queue, _ in pairs(woken) do redis.call('PUBLISH', K_wake_channel, queue) end
if scheduled then redis.call('PUBLISH', K_sched_channel, '1') end
return out
