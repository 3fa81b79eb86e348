-- Settle, in a run's home space, the end of a node whose task lives in another queue's space
-- (relayed from that space's outbox, see _common.lua): its status, result and error are kept in
-- the run's hash (for the nodes that ask for their parents' results or error) and its edges are
-- settled as if it had ended here (wf_advance). Idempotent: an end already counted changes nothing.
-- KEYS[1]: the run's hash.  ARGV[3]: the run id.  ARGV[4]: the node.  ARGV[5]: its terminal status.
-- ARGV[6]: its result (packed, '' = none).  ARGV[7]: its error ('' = none).
-- Returns 1 (settled), 0 (already settled, or no such run).
local wk, wid, node, status = KEYS[1], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', wk) == 0 or redis.call('HEXISTS', wk, 'ended:' .. node) == 1 then return 0 end
redis.call('HSET', wk, 'fst:' .. node, status)
if ARGV[6] ~= '' then redis.call('HSET', wk, 'fres:' .. node, ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', wk, 'ferr:' .. node, ARGV[7]) end
WF_ENDED[#WF_ENDED + 1] = {wid, node, status}
return 1
