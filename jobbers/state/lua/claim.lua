-- Claim up to N ready tasks across queues: pop, record the lease, mark 'started', in one step.
-- Enforces each queue's max_concurrent and sliding-window rate limit across all workers;
-- over-limit work stays queued, and so does the work of a paused queue. Tasks whose cancellation
-- was requested end 'cancelled' here.
-- KEYS: the ready set of each queue, in ARGV order.
-- ARGV[3..]: worker_id, lease_ms, max_total, then per queue:
--            name, max_concurrent (0 = none), rate_limit (0 = none), rate_window_ms
-- Returns {now_ms, retry_in_ms (-1 = none), {claim row (task_schema.CLAIM_ROW)...}}
local worker, lease_ms, remaining = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local retry_in = -1
local claimed = {}
local lease_base = nil  -- one counter bump per call that claims; tokens are worker:call:position
local now_s = fmt(now)
local j = 6
for qi = 1, #KEYS do
  if remaining <= 0 then break end
  local ready = KEYS[qi]
  local queue, maxc, rlim, rwin = ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), tonumber(ARGV[j + 3])
  j = j + 4
  local allowed = remaining
  if redis.call('EXISTS', K_paused(queue)) == 1 then allowed = 0 end  -- paused: start nothing from it
  if maxc > 0 and allowed > 0 then
    -- Its space holds this queue's tasks alone, so its started index counts the queue's running
    -- tasks (those outside processes run included).
    allowed = math.min(allowed, maxc - redis.call('ZCARD', K_status(STARTED)))
  end
  if rlim > 0 and allowed > 0 then
    local rk = K_rate(queue)
    redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - rwin)
    local used = redis.call('ZCARD', rk)
    if used >= rlim then
      local oldest = redis.call('ZRANGE', rk, 0, 0, 'WITHSCORES')
      local wait = tonumber(oldest[2]) + rwin - now + 1
      if redis.call('ZCARD', ready) > 0 and (retry_in < 0 or wait < retry_in) then retry_in = wait end
    end
    allowed = math.min(allowed, rlim - used)
  end
  while allowed > 0 do
    local popped = redis.call('ZPOPMIN', ready, allowed)
    if #popped == 0 then break end
    for p = 1, #popped, 2 do
      local id = popped[p]
      local tk = K_task(id)
      local f = redis.call('HMGET', tk, unpack(CLAIM_READ))
      if f[1] == SUBMITTED then
        if f[2] == '1' then
          note(EV_CANCELLED, 'cancel requested before it started')
          end_task(id, tk, queue, SUBMITTED, CANCELLED, now, false, nil)
        else
          if not lease_base then lease_base = worker .. ':' .. redis.call('INCR', K_lease_counter) .. ':' end
          local token = lease_base .. (#claimed + 1)
          know(id, f[CLAIM_READ.retry_attempt], worker, f[CLAIM_READ.name], f[CLAIM_READ.correlation_id])
          local evf, evv = move_status(id, SUBMITTED, STARTED, now)
          redis.call('HSET', tk, 'status', STARTED, 'started_at', now_s, 'updated_at', now_s,
            'worker_id', worker, 'lease', token, 'lease_ms', ARGV[4], evf, evv)
          index_add(K_inflight, now + lease_ms, id)
          if rlim > 0 then redis.call('ZADD', K_rate(queue), now, token) end
          claimed[#claimed + 1] = claim_row(f, id, queue, token, popped[p + 1])
          allowed = allowed - 1
          remaining = remaining - 1
        end
      end
      -- any other status: a stale queue entry (the task moved on); dropping it loses nothing.
    end
  end
end
return {now_s, retry_in, claimed}
