-- Reopen a run in its home space for a node of another queue that was resubmitted from the dead
-- letter queue there (relayed from that space's outbox, see _common.lua), as dlq_resubmit.lua
-- does for a node of the home queue. Idempotent: a node whose end is no longer counted is left.
-- KEYS[1]: the run's hash.  ARGV[3]: packed list of fresh task ids for the nodes made anew.
-- ARGV[4]: the run id.  ARGV[5]: the node.
FRESH = cmsgpack.unpack(ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
wf_reopen(ARGV[4], ARGV[5], now_ms())
return 1
