-- Settle, in the runs' home space, the ends of nodes whose tasks live in another queue's space
-- (relayed from that space's outbox, see _common.lua): each node's status, result and error are
-- kept in its run's hash (for the nodes that ask for their parents' results or error) and its
-- edges are settled as if it had ended here (wf_advance). Idempotent: an end already counted
-- changes nothing.
-- KEYS: each run's hash.  ARGV[3]: one msgpack array of {run id, node, terminal status, result
-- (packed, '' = none), error ('' = none)}, in the order of KEYS.
-- Returns how many ends were settled.
local settled = 0
for i, e in ipairs(cmsgpack.unpack(ARGV[3])) do
  local wk, wid, node, status = KEYS[i], e[1], e[2], e[3]
  if redis.call('EXISTS', wk) == 1 and redis.call('HEXISTS', wk, 'ended:' .. node) == 0 then
    redis.call('HSET', wk, 'fst:' .. node, status)
    if e[4] ~= '' then redis.call('HSET', wk, 'fres:' .. node, e[4]) end
    if e[5] ~= '' then redis.call('HSET', wk, 'ferr:' .. node, e[5]) end
    WF_ENDED[#WF_ENDED + 1] = {wid, node, status}
    settled = settled + 1
  end
end
return settled
