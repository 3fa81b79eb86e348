-- Cancel a workflow run: every node not made yet ends cancelled, every queued one is cancelled,
-- every running one is asked to stop (as a task cancel does). The run then ends cancelled
-- (or failed, when a node had failed) once its running nodes end. A node in another queue than
-- the run's home is cancelled through the outbox (see _common.lua).
-- KEYS[1]: the run's hash.  ARGV[3]: the reason.
-- Returns the run's status before ('' = no such run).
local wk = KEYS[1]
local f = redis.call('HMGET', wk, 'status', 'nodes')
if not f[1] then return '' end
if f[1] ~= WF_RUNNING then return f[1] end
local now = now_ms()
redis.call('HSETNX', wk, 'cancel_asked', '1')
local reason = ARGV[3]
for _, node in ipairs(cmsgpack.unpack(f[2])) do
  if redis.call('HEXISTS', wk, 'made:' .. node) == 0 then
    wf_make(wk, node, now, reason)
  else
    local row = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. node))
    local id = row[SUBMIT.id]
    local tk = K_task(id)
    local t = redis.call('HMGET', tk, 'status', 'queue')
    local status, queue = t[1], t[2]
    local home = redis.call('HGET', wk, 'home')
    if home and row[SUBMIT.queue] ~= home then
      -- A node of another queue is cancelled there, through the outbox (if it has not ended).
      if redis.call('HEXISTS', wk, 'ended:' .. node) == 0 then
        redis.call('HSET', K_wf_outbox, 'c ' .. wf_id_of(wk) .. ' ' .. node, id)
        SCHEDULE_CHANGED = true
      end
    elseif status == STARTED then
      redis.call('HSET', tk, 'cancel_requested', '1', 'updated_at', ts_s(now))
      redis.call('PUBLISH', C_cancel, id)
      add_event(id, EV_CANCEL_REQUESTED, reason, now)
    elseif status and CANCELLABLE[status] then
      if status == SUBMITTED then redis.call('ZREM', ready_set_of(tk, queue), id)
      else redis.call('ZREM', K_sched(queue), id) end
      note(EV_CANCELLED, reason)
      end_task(id, tk, queue, status, CANCELLED, now, false, nil, 'cancel_requested', '1', 'cancel_reason', reason)
    end
  end
end
return WF_RUNNING
