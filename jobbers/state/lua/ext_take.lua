-- Take one 'submitted' task of an external type out of its external ready set and mark it
-- 'started' under the lease token the caller chose, so the finish that follows in the same
-- pipeline ends it (a complete or fail without a claim). Nothing is written unless the task is
-- submitted, external and not asked to cancel.
-- KEYS[1]: the task's record.  ARGV[3..]: claimer, lease_ms, token.
-- Returns 1 (taken) or 0.
local tk = KEYS[1]
local f = redis.call('HMGET', tk, 'status', 'external', 'queue', 'name', 'id', 'cancel_requested', 'retry_attempt',
  'correlation_id')
if f[1] ~= SUBMITTED or f[2] ~= '1' or f[6] == '1' then return 0 end
local id, queue = f[5], f[3]
local now = now_ms()
local now_s = fmt(now)
redis.call('ZREM', K_external(queue .. ':' .. f[4]), id)
know(id, f[7], ARGV[3], f[4], f[8])
local evf, evv = move_status(id, SUBMITTED, STARTED, now)
redis.call('HSET', tk, 'status', STARTED, 'started_at', now_s, 'updated_at', now_s,
  'worker_id', ARGV[3], 'lease', ARGV[5], 'ext_lease_ms', ARGV[4], evf, evv)
index_add(K_inflight, now + tonumber(ARGV[4]), id)
return 1
