-- Clear a queue: end every task waiting in it (ready or scheduled) 'cancelled', with a
-- cancel_reason saying so; their records stay (until pruned) so nothing disappears without a trace.
-- Running tasks are left to finish. Works in batches: the caller repeats until a call clears fewer.
-- KEYS: the queue's ready set, its schedule.  ARGV[3..]: queue, batch, reason.
-- Returns how many tasks this call cancelled and how many entries it looked at.
local queue, batch, reason = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
local cleared, seen = 0, 0
for k = 1, 2 do
  local set, expected = KEYS[k], (k == 1) and SUBMITTED or SCHEDULED
  local ids = redis.call('ZRANGE', set, 0, batch - seen - 1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', set, id)
    local tk = K_task(id)
    if redis.call('HGET', tk, 'status') == expected then
      end_task(id, tk, queue, expected, CANCELLED, now, false, 'cancel_reason', reason)
      cleared = cleared + 1
    end
    -- any other status: a stale entry (the task moved on); dropping it loses nothing.
  end
  seen = seen + #ids
  if seen >= batch then break end
end
return {cleared, seen}
