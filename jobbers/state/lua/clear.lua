-- Clear a queue: end every task waiting in it (ready, external ready, scheduled, or blocked on a
-- concurrency key)
-- 'cancelled', with a cancel_reason saying so; their records stay (until pruned) so nothing
-- disappears without a trace. Running tasks are left to finish. Works in batches: the caller
-- repeats until a call looks at fewer entries than its batch.
-- KEYS: the queue's ready set, its schedule, its concurrency keys with waiters (conc_due).
-- ARGV[3..]: queue, batch, reason.
-- Returns how many tasks this call cancelled and how many entries it looked at.
local queue, batch, reason = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
local cleared, seen = 0, 0
-- The waiters first: a cleared holder frees its slot, which would let a waiter into the ready set.
local sets = {}
for _, ckey in ipairs(redis.call('ZRANGE', KEYS[3], 0, batch - 1)) do
  sets[#sets + 1] = {K_blocked(queue .. ':' .. ckey), SUBMITTED}
end
sets[#sets + 1] = {KEYS[1], SUBMITTED}
for _, name in ipairs(redis.call('SMEMBERS', K_extnames(queue))) do
  sets[#sets + 1] = {K_external(queue .. ':' .. name), SUBMITTED}
end
sets[#sets + 1] = {KEYS[2], SCHEDULED}
for _, entry in ipairs(sets) do
  local set, expected = entry[1], entry[2]
  local ids = redis.call('ZRANGE', set, 0, batch - seen - 1)
  for _, id in ipairs(ids) do
    redis.call('ZREM', set, id)
    local tk = K_task(id)
    if redis.call('HGET', tk, 'status') == expected then
      note(EV_CANCELLED, reason)
      end_task(id, tk, queue, expected, CANCELLED, now, false, nil, 'cancel_reason', reason)
      cleared = cleared + 1
    end
    -- any other status: a stale entry (the task moved on); dropping it loses nothing.
  end
  seen = seen + #ids
  if seen >= batch then break end
end
return {cleared, seen}
