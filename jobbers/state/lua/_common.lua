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
-- Leave 'started' for a terminal status; releases the lease and counts the task out of its queue.
local function release(id, tk, queue)
  redis.call('ZREM', K_inflight, id)
  redis.call('SREM', K_running(queue), id)
  redis.call('HDEL', tk, 'lease')
end
local function end_task(id, tk, old, new, ts, dead_letter)
  redis.call('HSET', tk, 'status', new, 'completed_at', fmt(ts), 'updated_at', fmt(ts))
  move_status(id, old, new, ts)
  if dead_letter then
    redis.call('ZADD', K_dlq, ts, id)
    redis.call('HSET', tk, 'dead_lettered', '1')
  end
end
