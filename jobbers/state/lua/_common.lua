-- Shared helpers, after the generated preamble. Every status change goes through move_status
-- (checked against ALLOWED); a task becomes ready only through make_ready, is scheduled only
-- through make_scheduled, leaves 'started' through release and ends through end_task. Their
-- side effects (wake-ups, the schedule signal, throughput counts, the status changes published
-- for followers) are collected here and flushed once when the script ends.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
-- fmt for timestamps: a script uses one 'now' throughout, so it is formatted once.
local last_ts, last_ts_s = nil, nil
local function ts_s(ts)
  if ts ~= last_ts then last_ts, last_ts_s = ts, fmt(ts) end
  return last_ts_s
end

local WOKEN = {}             -- queue -> true: publish a wake-up for it
local FREED = {}             -- queue -> true: a running slot was freed (max_concurrent may allow more)
local COUNTS = {}            -- minute -> {'queue:status' -> terminal outcomes}
local SCHEDULE_CHANGED = false
local TRANSITIONS = {}       -- id, old, new of each status change, flat: published for `jobbers tail`
local TRANSITIONS_AT = nil   -- when they happened (a script uses one 'now' throughout)

local function move_status(id, old, new, ts)
  local moves = ALLOWED[old]
  if not (moves and moves[new]) then
    error('jobbers: transition ' .. tostring(old) .. ' -> ' .. tostring(new) .. ' of ' .. id .. ' is not allowed')
  end
  if old ~= UNSUBMITTED then redis.call('ZREM', K_status(old), id) end
  redis.call('ZADD', K_status(new), ts, id)
  local n = #TRANSITIONS
  TRANSITIONS[n + 1], TRANSITIONS[n + 2], TRANSITIONS[n + 3] = id, old, new
  TRANSITIONS_AT = ts
end

-- Put a task into its queue's ready set: the one way a task becomes ready (submit, retry, lease
-- recovery, promotion, DLQ resubmit). Its score is enqueued_at (ms) less priority steps, so a
-- higher priority is claimed first and equal priorities in enqueue order (ties break by id);
-- priority is the stored field (false / '' when absent = 0). ...: more record field/value pairs,
-- written in the same HSET.
local function make_ready(id, tk, queue, old, enqueued_at, priority, now, ...)
  move_status(id, old, SUBMITTED, now)
  redis.call('HSET', tk, 'status', SUBMITTED, 'updated_at', ts_s(now), ...)
  local score = enqueued_at
  if priority and priority ~= '' and priority ~= 0 then score = enqueued_at - tonumber(priority) * PRIORITY_STEP end
  redis.call('ZADD', K_ready(queue), score, id)
  WOKEN[queue] = true
end
-- Put a task into its queue's schedule until run_at (ms): a delayed submit or a retry delay.
local function make_scheduled(id, tk, queue, old, run_at, now, ...)
  move_status(id, old, SCHEDULED, now)
  redis.call('HSET', tk, 'status', SCHEDULED, 'run_at', fmt(run_at), 'updated_at', ts_s(now), ...)
  redis.call('ZADD', K_sched(queue), run_at, id)
  SCHEDULE_CHANGED = true
end
-- Leave 'started': drop the lease from the in-flight index and count the task out of its queue.
-- (The lease field itself may stay: every fenced write also requires status 'started'.)
local function release(id, queue)
  redis.call('ZREM', K_inflight, id)
  redis.call('SREM', K_running(queue), id)
  FREED[queue] = true
end
-- Count one terminal outcome in the minute of ts, for the admin overview's throughput chart.
local function count_terminal(queue, status, ts)
  local minute = math.floor(ts / 60000)
  local counts = COUNTS[minute]
  if not counts then counts = {}; COUNTS[minute] = counts end
  local by_status = counts[queue]
  if not by_status then by_status = {}; counts[queue] = by_status end
  by_status[status] = (by_status[status] or 0) + 1
end
-- End a task in terminal status new (dead-lettered when asked); ...: more record field/value
-- pairs, written in the same HSET (the result, the cancel flag, the stall count).
local function end_task(id, tk, queue, old, new, now, dead_letter, ...)
  move_status(id, old, new, now)
  local now_s = ts_s(now)
  redis.call('HSET', tk, 'status', new, 'completed_at', now_s, 'updated_at', now_s, ...)
  if dead_letter then
    redis.call('ZADD', K_dlq, now, id)
    redis.call('HSET', tk, 'dead_lettered', '1')
  end
  count_terminal(queue, new, now)
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
-- Publish what the script made ready or scheduled, and write its throughput counts.
local function flush_effects()
  for queue, _ in pairs(FREED) do
    if not WOKEN[queue] and redis.call('ZCARD', K_ready(queue)) > 0 then WOKEN[queue] = true end
  end
  for minute, counts in pairs(COUNTS) do
    local key = K_throughput(fmt(minute))
    for queue, by_status in pairs(counts) do
      for status, n in pairs(by_status) do redis.call('HINCRBY', key, queue .. ':' .. status, n) end
    end
    redis.call('EXPIRE', key, 3600)
  end
  for queue, _ in pairs(WOKEN) do redis.call('PUBLISH', C_wake, queue) end
  if SCHEDULE_CHANGED then redis.call('PUBLISH', C_sched, '1') end
  if TRANSITIONS_AT then
    redis.call('PUBLISH', C_transitions, fmt(TRANSITIONS_AT) .. ' ' .. table.concat(TRANSITIONS, ' '))
  end
end
