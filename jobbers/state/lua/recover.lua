-- Recover tasks whose lease expired (their worker died or froze): re-queue each up to its stall
-- budget (max_stalls), then mark it 'stalled' (dead-lettered under the SAVE policy). A task whose
-- cancellation was requested ends 'cancelled' instead.
-- KEYS: the space's in-flight index.  ARGV[3]: batch.
-- Returns {requeued_ids, stalled_ids, cancelled_ids}
local batch = tonumber(ARGV[3])
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, batch)
local requeued, stalled, cancelled = {}, {}, {}
for _, id in ipairs(ids) do
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'queue', 'stall_count', 'cancel_requested', 'submitted_at',
    'retry_attempt', 'priority', 'concurrency_key')
  redis.call('ZREM', KEYS[1], id)
  if f[1] == STARTED then
    local queue = f[2]
    release(id, queue)
    if f[4] == '1' then
      end_task(id, tk, queue, STARTED, CANCELLED, now, false, f[8])
      cancelled[#cancelled + 1] = id
    else
      local stalls = tonumber(f[3] or '0') + 1
      append_error(tk, 'LeaseExpired', 'worker lease expired (worker died or froze)', now, tonumber(f[6] or '0'))
      local _, max_stalls, dlq = stall_config(tk)
      if stalls > max_stalls then
        end_task(id, tk, queue, STARTED, STALLED, now, dlq == 'save', f[8], 'stall_count', stalls)
        stalled[#stalled + 1] = id
      else
        make_ready(id, tk, queue, STARTED, tonumber(f[5]), f[7], now, f[8], 'stall_count', stalls)
        requeued[#requeued + 1] = id
      end
    end
  end
end
return {requeued, stalled, cancelled}
