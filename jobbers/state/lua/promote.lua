-- Move due scheduled tasks of one queue to its ready queue (scheduler). Atomic, so two
-- schedulers never promote a task twice and a killed scheduler leaves nothing half-moved.
-- ARGV: prefix, queue, batch.
-- Returns {promoted_count, next_due_ms (-1 = none), now_ms, max_lag_ms (how late past its run_at
--          the most overdue promoted task was; 0 when none was promoted)}
local queue, batch = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', K_sched(queue), '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
local promoted = 0
local max_lag = 0
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', K_sched(queue), id)
  local tk = K_task(id)
  if redis.call('HGET', tk, 'status') == 'scheduled' then
    redis.call('HSET', tk, 'status', 'submitted', 'updated_at', fmt(now))
    redis.call('ZADD', K_queue(queue), now, id)
    move_status(id, 'scheduled', 'submitted', now)
    promoted = promoted + 1
    max_lag = math.max(max_lag, now - tonumber(due[i + 1]))
  end
end
if promoted > 0 then redis.call('PUBLISH', K_wake_channel, queue) end
local nxt = redis.call('ZRANGE', K_sched(queue), 0, 0, 'WITHSCORES')
local next_due = -1
if nxt[2] then next_due = tonumber(nxt[2]) end
return {promoted, next_due, fmt(now), fmt(max_lag)}
