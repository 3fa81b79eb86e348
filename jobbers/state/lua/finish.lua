-- Write the outcome of attempts, each fenced by its lease token (a late writer is rejected).
-- ARGV: prefix, then one msgpack array of outcomes, each:
--       [id, token, new_status, result (msgpack or ''), error_type, error_message,
--        retry_attempt ('' = unchanged), delay_ms (for a retry; 0 = re-queue now), dead_letter (0/1)]
-- new_status: completed | failed | cancelled | stalled | dropped | retry
-- Returns a list of 1 (written) / 0 (rejected).
local now = now_ms()
local now_s = fmt(now)
local out = {}
local freed = {}
local woken = {}
local done = {}  -- 'queue:status' -> terminal outcomes written by this call
local scheduled = false
for _, o in ipairs(cmsgpack.unpack(ARGV[2])) do
  local id, token, new, result, etype, emsg = o[1], o[2], o[3], o[4], o[5], o[6]
  local attempt, delay, dead = tostring(o[7]), tonumber(o[8]), o[9] == 1
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'lease', 'queue', 'submitted_at', 'retry_attempt')
  if f[1] ~= 'started' or f[2] ~= token then
    out[#out + 1] = 0
  else
    local queue = f[3]
    redis.call('ZREM', K_inflight, id)
    redis.call('SREM', K_running(queue), id)
    freed[queue] = true
    if etype ~= '' then append_error(tk, etype, emsg, now, tonumber(f[5])) end
    if new == 'retry' then
      if attempt ~= '' then redis.call('HSET', tk, 'retry_attempt', attempt) end
      if delay > 0 then
        local run_at = now + delay
        redis.call('HSET', tk, 'status', 'scheduled', 'run_at', fmt(run_at), 'updated_at', now_s)
        redis.call('ZADD', K_sched(queue), run_at, id)
        move_status(id, 'started', 'scheduled', now)
        scheduled = true
      else
        redis.call('HSET', tk, 'status', 'submitted', 'updated_at', now_s)
        redis.call('ZADD', K_queue(queue), tonumber(f[4]), id)
        move_status(id, 'started', 'submitted', now)
        woken[queue] = true
      end
    else
      if result ~= '' then
        redis.call('HSET', tk, 'status', new, 'completed_at', now_s, 'updated_at', now_s, 'result', result)
      else
        redis.call('HSET', tk, 'status', new, 'completed_at', now_s, 'updated_at', now_s)
      end
      move_status(id, 'started', new, now)
      done[queue .. ':' .. new] = (done[queue .. ':' .. new] or 0) + 1
      if dead then
        redis.call('ZADD', K_dlq, now, id)
        redis.call('HSET', tk, 'dead_lettered', '1')
      end
    end
    out[#out + 1] = 1
  end
end
-- A freed slot may unblock a queue held back by max_concurrent: wake its workers.
for queue, _ in pairs(freed) do
  if not woken[queue] and redis.call('ZCARD', K_queue(queue)) > 0 then woken[queue] = true end
end
for field, n in pairs(done) do count_terminal(field, now, n) end
for queue, _ in pairs(woken) do redis.call('PUBLISH', K_wake_channel, queue) end
if scheduled then redis.call('PUBLISH', K_sched_channel, '1') end
return out
