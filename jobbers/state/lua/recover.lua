-- Recover tasks whose worker died or froze: their lease expired, or (within horizon_ms of expiry)
-- was not renewed for two renewal intervals (worker_dead). Each is re-queued up to its stall
-- budget (max_stalls), then marked 'stalled' (dead-lettered under the SAVE policy). A task whose
-- cancellation was requested ends 'cancelled' instead.
-- KEYS: the space's in-flight index.  ARGV[3..]: batch, horizon_ms (0: expired leases only).
-- Returns {requeued_ids, stalled_ids, cancelled_ids}
local batch, horizon = tonumber(ARGV[3]), tonumber(ARGV[4] or '0')
local now = now_ms()
local rows = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + horizon, 'WITHSCORES', 'LIMIT', 0, batch)
local out = {{}, {}, {}}  -- re-queued, stalled, cancelled (recover_task's answer)
for i = 1, #rows, 2 do
  local id, lease_at = rows[i], tonumber(rows[i + 1])
  local tk = K_task(id)
  if redis.call('HGET', tk, 'status') ~= STARTED then
    redis.call('ZREM', KEYS[1], id)
  elseif worker_dead(tk, lease_at, now) then
    redis.call('ZREM', KEYS[1], id)
    local outcome = recover_task(id, tk, now)
    out[outcome][#out[outcome] + 1] = id
  end
end
return out
