-- Make, in its own queue's space, the task of a workflow node whose run lives in another space
-- (relayed from the run's outbox, see _common.lua): ready, or ended cancelled with the reason
-- given. Idempotent: a task that exists is left as it is.
-- KEYS[1]: the task's record.  ARGV[3]: its packed submit row (params filled).  ARGV[4]: a cancel
-- reason ('' = make it ready).
-- Returns 1 (made), 0 (it existed).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local reason = ARGV[4]
if reason == '' then reason = nil end
wf_create(cmsgpack.unpack(ARGV[3]), now_ms(), reason)
return 1
