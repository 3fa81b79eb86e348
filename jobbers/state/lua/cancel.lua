-- Cancel tasks. Queued or scheduled: 'cancelled' at once. Started: the request is written to the
-- record first (durable), then published so the running worker interrupts the task quickly.
-- KEYS: the record of each task.  ARGV[3]: who asks (for the event log).  ARGV[4..]: the task ids.
-- Returns per id: {id, CANCEL_* outcome, status, queue, name}
local now = now_ms()
local out = {}
local by = 'requested by ' .. ARGV[3]
for i = 1, #KEYS do
  local id, tk = ARGV[3 + i], KEYS[i]
  local f = redis.call('HMGET', tk, 'status', 'queue', 'name')
  local status, queue, name = f[1], f[2], f[3] or ''
  if not status then
    out[i] = {id, CANCEL_NOT_FOUND, '', '', ''}
  elseif not CANCELLABLE[status] then
    out[i] = {id, CANCEL_CONFLICT, status, queue, name}
  elseif status == STARTED then
    redis.call('HSET', tk, 'cancel_requested', '1', 'updated_at', fmt(now))
    redis.call('PUBLISH', C_cancel, id)
    add_event(id, EV_CANCEL_REQUESTED, by, now)
    out[i] = {id, CANCEL_REQUESTED, status, queue, name}
  else
    if status == SUBMITTED then redis.call('ZREM', ready_set_of(tk, queue), id)
    else redis.call('ZREM', K_sched(queue), id) end
    note(EV_CANCELLED, by)
    end_task(id, tk, queue, status, CANCELLED, now, false, nil, 'cancel_requested', '1')
    out[i] = {id, CANCEL_CANCELLED, CANCELLED, queue, name}
  end
end
return out
