-- Claim up to N ready tasks of external types of one queue for an outside process (POST
-- /tasks/claim): pop, record the lease in the in-flight index, mark 'started', in one step, as a
-- worker's claim does; the oldest (highest priority) first across the names asked for. A paused
-- queue hands out nothing; the queue's max_concurrent counts these tasks with its workers'.
-- Tasks whose cancellation was requested end 'cancelled' here. The lease is recovered only when
-- it expires (no lease_ms: an outside process heartbeats at its own pace, within ext_lease_ms).
-- KEYS: the external ready set of each task name asked for (K_external('<queue>:<name>')).
-- ARGV[3..]: claimer, lease_ms, max_count, token_base (random, from the caller), queue,
--            max_concurrent (0 = none)
-- Returns {now_ms, {id, token}...}
local claimer, lease_ms, remaining, base = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local queue, maxc = ARGV[7], tonumber(ARGV[8])
local now = now_ms()
local now_s = fmt(now)
local claimed = {}
if redis.call('EXISTS', K_paused(queue)) == 1 then return {now_s, claimed} end
if maxc > 0 then remaining = math.min(remaining, maxc - redis.call('ZCARD', K_status(STARTED))) end
while remaining > 0 do
  local best, best_score, best_set = nil, nil, nil
  for _, set in ipairs(KEYS) do
    local head = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    if head[1] and (not best or tonumber(head[2]) < best_score) then
      best, best_score, best_set = head[1], tonumber(head[2]), set
    end
  end
  if not best then break end
  redis.call('ZREM', best_set, best)
  local tk = K_task(best)
  local f = redis.call('HMGET', tk, 'status', 'cancel_requested', 'retry_attempt', 'name', 'correlation_id')
  if f[1] == SUBMITTED then
    if f[2] == '1' then
      note(EV_CANCELLED, 'cancel requested before it started')
      end_task(best, tk, queue, SUBMITTED, CANCELLED, now, false, nil)
    else
      local token = base .. ':' .. fmt(#claimed + 1)
      know(best, f[3], claimer, f[4], f[5])
      local evf, evv = move_status(best, SUBMITTED, STARTED, now)
      redis.call('HSET', tk, 'status', STARTED, 'started_at', now_s, 'updated_at', now_s,
        'worker_id', claimer, 'lease', token, 'ext_lease_ms', ARGV[4], evf, evv)
      index_add(K_inflight, now + lease_ms, best)
      claimed[#claimed + 1] = {best, token}
      remaining = remaining - 1
    end
  end
  -- any other status: a stale entry (the task moved on); dropping it loses nothing.
end
return {now_s, claimed}
