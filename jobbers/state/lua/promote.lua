-- Move due scheduled tasks of one queue to its ready queue (scheduler), and let waiters of its
-- concurrency keys in where a holder's slot lapsed (concurrency_duration). Atomic, so two
-- schedulers never promote a task twice and a killed scheduler leaves nothing half-moved.
-- KEYS: the queue's schedule, its ready set, its concurrency keys due (conc_due).
-- ARGV[3..]: queue, batch.
-- Returns {promoted_count, next_due_ms (-1 = none), now_ms, max_lag_ms (how late past its run_at
--          the most overdue promoted task was; 0 when none was promoted)}
local sched, conc_due = KEYS[1], KEYS[3]
local queue, batch = ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'WITHSCORES', 'LIMIT', 0, batch)
local promoted = 0
local max_lag = 0
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', sched, id)
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'priority', 'concurrency_key')
  if f[1] == SCHEDULED then
    make_ready(id, tk, queue, SCHEDULED, now, f[2], now, f[3])
    promoted = promoted + 1
    max_lag = math.max(max_lag, now - tonumber(due[i + 1]))
  end
end
for _, ckey in ipairs(redis.call('ZRANGEBYSCORE', conc_due, '-inf', now, 'LIMIT', 0, batch)) do
  unblock(queue, ckey, now)
end
local next_due = -1
for _, key in ipairs({sched, conc_due}) do
  local nxt = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if nxt[2] and (next_due < 0 or tonumber(nxt[2]) < next_due) then next_due = tonumber(nxt[2]) end
end
return {promoted, next_due, fmt(now), fmt(max_lag)}
