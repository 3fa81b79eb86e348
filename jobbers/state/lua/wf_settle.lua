-- Settle, in the runs' home space, the ends of nodes whose tasks live in another queue's space
-- (relayed from that space's outbox, see _common.lua): each node's status, result, error, start
-- and cancel reason are kept in its run's hash (for the nodes that ask for their parents' results
-- or error, and for a reopen) and its edges are settled as if it had ended here (wf_advance).
-- Idempotent: an end already counted changes nothing.
-- KEYS: each run's hash.  ARGV[3]: one msgpack array of {run id, node, terminal status, result
-- (packed, '' = none), error, started_at, cancel_reason ('' = none)}, in the order of KEYS.
-- Returns how many ends were settled.
local settled = 0
for i, e in ipairs(cmsgpack.unpack(ARGV[3])) do
  local wk, wid, node, status = KEYS[i], e[1], e[2], e[3]
  if redis.call('EXISTS', wk) == 1 and redis.call('HEXISTS', wk, 'ended:' .. node) == 0 then
    redis.call('HDEL', wk, 'fres:' .. node, 'ferr:' .. node, 'fsa:' .. node, 'fwhy:' .. node)
    redis.call('HSET', wk, 'fst:' .. node, status)
    for k, name in ipairs({'fres:', 'ferr:', 'fsa:', 'fwhy:'}) do
      if e[3 + k] ~= '' then redis.call('HSET', wk, name .. node, e[3 + k]) end
    end
    WF_ENDED[#WF_ENDED + 1] = {wid, node, status}
    settled = settled + 1
  end
end
return settled
