-- Shared helpers, prepended to every script after the key preamble.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
local function move_status(id, old, new, ts)
  redis.call('ZREM', K_status(old), id)
  redis.call('ZADD', K_status(new), ts, id)
end
-- Append one error record to a task's msgpack-encoded error history.
local function append_error(tk, etype, message, ts, attempt)
  local raw = redis.call('HGET', tk, 'errors')
  local errors = {}
  if raw and raw ~= '' then errors = cmsgpack.unpack(raw) end
  errors[#errors + 1] = {exception_type = etype, message = message, at = ts, attempt = attempt}
  redis.call('HSET', tk, 'errors', cmsgpack.pack(errors), 'error', etype .. ': ' .. message)
end
-- The stall budget, own heartbeat interval (ms, 0 = none) and DLQ policy of a task: as published
-- by the workers that run its type, else as stored at submit, else the defaults.
local function stall_config(tk)
  local f = redis.call('HMGET', tk, 'hb_timeout', 'max_stalls', 'dlq_policy', 'name', 'version')
  local t = redis.call('HMGET', K_tasktype((f[4] or '') .. ':' .. (f[5] or '')), 'hb_timeout', 'max_stalls',
    'dlq_policy')
  local function pick(a, b, default)
    if a and a ~= '' then return a end
    if b and b ~= '' then return b end
    return default
  end
  return tonumber(pick(t[1], f[1], '0')), tonumber(pick(t[2], f[2], '1')), pick(t[3], f[3], 'none')
end
-- Leave 'started': drop the lease from the in-flight index and count the task out of its queue.
-- (The lease field itself may stay: every fenced write also requires status 'started'.)
local function release(id, queue)
  redis.call('ZREM', K_inflight, id)
  redis.call('SREM', K_running(queue), id)
end
-- Count n terminal outcomes ('queue:status') in the minute of ts, for the admin overview's
-- throughput chart: one hash per minute, kept an hour. Hot paths aggregate before calling this.
local function count_terminal(field, ts, n)
  local key = K_throughput(fmt(math.floor(ts / 60000)))
  redis.call('HINCRBY', key, field, n)
  redis.call('EXPIRE', key, 3600)
end
local function end_task(id, tk, old, new, ts, dead_letter)
  redis.call('HSET', tk, 'status', new, 'completed_at', fmt(ts), 'updated_at', fmt(ts))
  move_status(id, old, new, ts)
  count_terminal((redis.call('HGET', tk, 'queue') or '') .. ':' .. new, ts, 1)
  if dead_letter then
    redis.call('ZADD', K_dlq, ts, id)
    redis.call('HSET', tk, 'dead_lettered', '1')
  end
end
