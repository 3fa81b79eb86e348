-- Complete a workflow node that fanned out (task.fan_out) and add what it spawned, in one call:
-- the new nodes (children, then a collector after them) join the run's graph, the node's own
-- outgoing edges move to the collector (what came after the node now waits for it), the node's
-- success edges lead to the children, and the node ends completed as finish.lua ends it, which
-- makes the children ready in this same call. In a run being cancelled, only the outcome is written.
-- KEYS[1]: the task's record.  KEYS[2]: its run's hash.  ARGV[3]: its finish row (completed).
-- ARGV[4]: the new nodes, as wf_submit's rows.  ARGV[5]: the node id.  ARGV[6]: the collector's
-- node id.  ARGV[7]: the collector's task id.
-- Returns 1 (written), 0 (rejected: not its lease, or the node ended), -1 (a new node id is taken).
local tk, wk, node, collector, collector_id = KEYS[1], KEYS[2], ARGV[5], ARGV[6], ARGV[7]
local o = cmsgpack.unpack(ARGV[3])
local id = o[FINISH.id]
local f = redis.call('HMGET', tk, 'status', 'lease', 'queue', 'concurrency_key', 'workflow_node')
if f[1] ~= STARTED or f[2] ~= o[FINISH.token] or f[5] ~= node then return 0 end
if redis.call('HEXISTS', wk, 'ended:' .. node) == 1 then return 0 end
local nodes = cmsgpack.unpack(ARGV[4])
if not redis.call('HGET', wk, 'cancel_asked') then
  for _, n in ipairs(nodes) do
    if redis.call('HEXISTS', wk, 'row:' .. n[1]) == 1 then return -1 end
  end
  local names = cmsgpack.unpack(redis.call('HGET', wk, 'nodes'))
  local children = {}
  for _, n in ipairs(nodes) do
    redis.call('HSET', wk, 'row:' .. n[1], n[2], 'succ:' .. n[1], n[3], 'err:' .. n[1], n[4],
      'par:' .. n[1], n[5], 'need:' .. n[1], n[6])
    if n[7] ~= '' then redis.call('HSET', wk, 'rp:' .. n[1], n[7]) end
    if n[8] ~= '' then redis.call('HSET', wk, 'ep:' .. n[1], n[8]) end
    names[#names + 1] = n[1]
    for _, p in ipairs(cmsgpack.unpack(n[5])) do
      if p[1] == node then children[#children + 1] = n[1] end
    end
  end
  -- The collector takes over the node's outgoing edges: their targets' parent lists name it.
  local e = redis.call('HMGET', wk, 'succ:' .. node, 'err:' .. node)
  local succ, err = e[1] or '\144', e[2] or '\144'
  for _, raw in ipairs({succ, err}) do
    for _, x in ipairs(cmsgpack.unpack(raw)) do
      local parents = cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. x))
      for _, p in ipairs(parents) do
        if p[1] == node then p[1], p[2] = collector, collector_id end
      end
      redis.call('HSET', wk, 'par:' .. x, cmsgpack.pack(parents))
    end
  end
  redis.call('HSET', wk, 'succ:' .. collector, succ, 'err:' .. collector, err,
    'succ:' .. node, cmsgpack.pack(children), 'err:' .. node, '\144', 'nodes', cmsgpack.pack(names))
  redis.call('HINCRBY', wk, 'total', #nodes)
end
local now = now_ms()
local queue = f[3]
release(id, queue)
if o[FINISH.result] ~= '' then
  end_task(id, tk, queue, STARTED, COMPLETED, now, false, f[4], 'result', o[FINISH.result])
else
  end_task(id, tk, queue, STARTED, COMPLETED, now, false, f[4])
end
return 1
