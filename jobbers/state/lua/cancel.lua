-- Cancel tasks. Queued or scheduled: 'cancelled' at once. Started: the request is written to the
-- record first (durable), then published so the running worker interrupts the task quickly.
-- ARGV: prefix, then task ids.  Returns per id: {id, outcome, status, queue, name}
-- outcome: cancelled | requested | not_found | conflict
local now = now_ms()
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'queue', 'name')
  local status, queue, name = f[1], f[2], f[3] or ''
  if not status then
    out[#out + 1] = {id, 'not_found', '', '', ''}
  elseif status == 'submitted' or status == 'scheduled' then
    if status == 'submitted' then redis.call('ZREM', K_queue(queue), id)
    else redis.call('ZREM', K_sched(queue), id) end
    redis.call('HSET', tk, 'cancel_requested', '1')
    end_task(id, tk, status, 'cancelled', now, false)
    out[#out + 1] = {id, 'cancelled', 'cancelled', queue, name}
  elseif status == 'started' then
    redis.call('HSET', tk, 'cancel_requested', '1', 'updated_at', fmt(now))
    redis.call('PUBLISH', K_cancel_channel, id)
    out[#out + 1] = {id, 'requested', status, queue, name}
  else
    out[#out + 1] = {id, 'conflict', status, queue, name}
  end
end
return out
