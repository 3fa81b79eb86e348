-- Create a workflow run: its graph, written once into one hash (see the workflow helpers in
-- _common.lua), and the tasks of its nodes without incoming edges, ready. Idempotent: a run whose
-- id exists is left as it is.
-- KEYS[1]: the run's hash.  ARGV[3]: the run id.  ARGV[4]: one msgpack array of nodes, each
-- {node id, packed submit row, packed success targets, packed error targets, packed parents,
--  incoming edges, results param, error param}.  ARGV[5]: the run's name.
-- ARGV[6]: the recurring entry that fires it ('' = none): the run is recorded as the entry's last
-- (K_wf_recurring).  ARGV[7]: '1' = skip_if_running: when the entry's last run is still running,
-- nothing is written.  ARGV[8]: the run's home queue (whose space this is); a node of another
-- queue is made there through the outbox (see _common.lua).
-- Returns {1 = created | 0 = existed | 2 = skipped, status, the running run's id when skipped}.
local wk, wid, entry = KEYS[1], ARGV[3], ARGV[6] or ''
local status = redis.call('HGET', wk, 'status')
if status then return {0, status} end
if entry ~= '' and ARGV[7] == '1' then
  local last = redis.call('HGET', K_wf_recurring, entry)
  if last and redis.call('HGET', K_wf(last), 'status') == WF_RUNNING then return {2, WF_RUNNING, last} end
end
if entry ~= '' then redis.call('HSET', K_wf_recurring, entry, wid) end
local now = now_ms()
local nodes = cmsgpack.unpack(ARGV[4])
local names = {}
for i, n in ipairs(nodes) do
  local node = n[1]
  names[i] = node
  redis.call('HSET', wk, 'row:' .. node, n[2], 'succ:' .. node, n[3], 'err:' .. node, n[4],
    'par:' .. node, n[5], 'need:' .. node, n[6])
  if n[7] ~= '' then redis.call('HSET', wk, 'rp:' .. node, n[7]) end
  if n[8] ~= '' then redis.call('HSET', wk, 'ep:' .. node, n[8]) end
end
redis.call('HSET', wk, 'home', ARGV[8], 'status', WF_RUNNING, 'name', ARGV[5], 'total', #nodes, 'ended', 0,
  'created_at', fmt(now), 'nodes', cmsgpack.pack(names))
redis.call('ZADD', K_wfs, now, wid)
for _, n in ipairs(nodes) do
  if n[6] == 0 then wf_make(wk, n[1], now, nil) end
end
return {1, WF_RUNNING}
