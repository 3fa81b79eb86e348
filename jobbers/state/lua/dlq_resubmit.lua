-- Resubmit dead-lettered tasks. Each must still be in the DLQ and in a DEAD_LETTER status; it
-- leaves the DLQ and is made ready with its error history kept and its stall count reset (and its
-- retry count, when asked). A workflow node resubmitted resumes its run (wf_reopen).
-- KEYS: the record of each task.  ARGV[3]: reset_retry_count ('1'/'0').  ARGV[4]: packed list of
-- fresh task ids for the workflow nodes a reopened run makes anew.  ARGV[5..]: the task ids.
-- Returns per id: {id, RESUBMIT_* outcome, status}
local reset = ARGV[3] == '1'
local FRESH, fresh_at = cmsgpack.unpack(ARGV[4]), 1

-- Whether node c's edge from parent p is an error edge.
local function wf_is_error_edge(wk, p, c)
  for _, e in ipairs(cmsgpack.unpack(redis.call('HGET', wk, 'err:' .. p))) do
    if e == c then return true end
  end
  return false
end
local function wf_unend(wk, node)
  if redis.call('HDEL', wk, 'ended:' .. node) == 1 then redis.call('HINCRBY', wk, 'ended', -1) end
end
-- Node c is made anew under a fresh task id (its old task, cancelled without ever starting, stays
-- as it is); its children's parent lists name the new task. False when no fresh id is left.
local function wf_remake(wk, c)
  local fresh = FRESH[fresh_at]
  if not fresh then return false end
  fresh_at = fresh_at + 1
  local row = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. c))
  row[SUBMIT.id] = fresh
  redis.call('HSET', wk, 'row:' .. c, cmsgpack.pack(row))
  redis.call('HDEL', wk, 'made:' .. c)
  wf_unend(wk, c)
  local e = redis.call('HMGET', wk, 'succ:' .. c, 'err:' .. c)
  for _, raw in ipairs({e[1] or '\144', e[2] or '\144'}) do
    for _, child in ipairs(cmsgpack.unpack(raw)) do
      local parents = cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. child))
      for _, p in ipairs(parents) do
        if p[1] == c then p[2] = fresh end
      end
      redis.call('HSET', wk, 'par:' .. child, cmsgpack.pack(parents))
    end
  end
  return true
end
-- Workflow node `node` of run wid runs again: its end is no longer counted (the run is running
-- again, and failed only if another node failed), and every node after it that its failure
-- cancelled before it ever started is made anew and waits for its parents again (a node whose
-- edges another ended node still breaks ends cancelled again, naming it). A node after it that
-- already ran (its error edge) is left as it is. A cancelled run is not reopened.
local function wf_reopen(wid, node, now)
  local wk = K_wf(wid)
  local f = redis.call('HMGET', wk, 'ended:' .. node, 'cancel_asked', 'failed_node', 'nodes')
  if not f[1] or f[2] then return end
  wf_unend(wk, node)
  local walk, seen, waiting, i = {node}, {[node] = true}, {}, 1
  while walk[i] do
    local n = walk[i]
    i = i + 1
    local e = redis.call('HMGET', wk, 'succ:' .. n, 'err:' .. n)
    for _, raw in ipairs({e[1] or '\144', e[2] or '\144'}) do
      for _, c in ipairs(cmsgpack.unpack(raw)) do
        if not seen[c] then
          seen[c] = true
          if redis.call('HEXISTS', wk, 'made:' .. c) == 0 then
            waiting[#waiting + 1] = c
          else
            local id = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. c))[SUBMIT.id]
            local t = redis.call('HMGET', K_task(id), 'status', 'started_at', 'cancel_reason')
            if t[1] == CANCELLED and not t[2] and string.sub(t[3] or '', 1, 14) == 'workflow node '
              and wf_remake(wk, c) then
              waiting[#waiting + 1] = c
              walk[#walk + 1] = c
            end
          end
        end
      end
    end
  end
  -- Count each waiting node's edges again, from its parents' ends.
  for _, c in ipairs(waiting) do
    local need, why = 0, nil
    for _, p in ipairs(cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. c))) do
      local ended = redis.call('HGET', wk, 'ended:' .. p[1])
      if not ended then
        need = need + 1
      elseif wf_is_error_edge(wk, p[1], c) then
        if ended ~= FAILED and ended ~= STALLED then
          why = why or ('workflow node ' .. p[1] .. ' ended ' .. ended .. ' (its error edge was not taken)')
        end
      elseif ended ~= COMPLETED then
        why = why or ('workflow node ' .. p[1] .. ' ended ' .. ended)
      end
    end
    redis.call('HSET', wk, 'need:' .. c, need)
    if why then wf_make(wk, c, now, why) elseif need == 0 then wf_make(wk, c, now, nil) end
  end
  redis.call('HSET', wk, 'status', WF_RUNNING)
  redis.call('HDEL', wk, 'completed_at')
  if f[3] == node then
    redis.call('HDEL', wk, 'failed_node')
    for _, n in ipairs(cmsgpack.unpack(f[4])) do
      local ended = redis.call('HGET', wk, 'ended:' .. n)
      if ended == FAILED or ended == STALLED then
        redis.call('HSET', wk, 'failed_node', n)
        break
      end
    end
  end
end

local now = now_ms()
local out = {}
for i = 1, #KEYS do
  local id, tk = ARGV[4 + i], KEYS[i]
  local f = redis.call('HMGET', tk, 'status', 'queue', 'priority', 'concurrency_key', 'workflow_id', 'workflow_node')
  local status, queue = f[1], f[2]
  if not status or not redis.call('ZSCORE', K_dlq, id) then
    out[i] = {id, RESUBMIT_NOT_FOUND, status or ''}
  elseif not DEAD_LETTER[status] then
    out[i] = {id, RESUBMIT_CONFLICT, status}
  else
    redis.call('ZREM', K_dlq, id)
    note(EV_RESUBMITTED, 'from the dead letter queue')
    redis.call('HDEL', tk, 'completed_at', 'result', 'error', 'cancel_requested', 'run_at',
      'last_heartbeat_at', 'lease', 'lease_ms')
    if reset then
      make_ready(id, tk, queue, status, now, f[3], now, f[4], 'dead_lettered', '0', 'stall_count', '0',
        'retry_attempt', '0')
    else
      make_ready(id, tk, queue, status, now, f[3], now, f[4], 'dead_lettered', '0', 'stall_count', '0')
    end
    if f[5] and f[5] ~= '' then wf_reopen(f[5], f[6], now) end
    out[i] = {id, RESUBMIT_RESUBMITTED, SUBMITTED}
  end
end
return out
