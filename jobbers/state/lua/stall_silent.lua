-- Mark started tasks whose own heartbeat went silent as 'stalled': silent longer than their
-- max_heartbeat_interval, or than stale_ms when given. The silence is measured from the last
-- heartbeat, or from the start if the task never sent one. Needs no task module. Only a task
-- whose worker renewed its lease after the silence passed the limit is hung: a dead worker's task
-- (no renewal since) is left to lease recovery (worker_dead), which re-queues it within max_stalls.
-- KEYS: the space's index of started tasks, its in-flight index.
-- ARGV[3..]: stale_ms (0 = only per-task intervals), min_submitted_ms, max_submitted_ms
-- Returns the ids marked stalled.
local stale_ms, min_sub, max_sub = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {}
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'last_heartbeat_at', 'started_at', 'queue', 'submitted_at',
    'retry_attempt')
  local submitted = tonumber(f[5] or '0')
  if f[1] == STARTED and submitted >= min_sub and submitted <= max_sub then
    -- last_heartbeat_at may be left from an earlier attempt: the later of it and the start counts.
    -- Measured up to the worker's last lease renewal: silence it did not outlive proves nothing.
    local silent = renewed_at(tk, tonumber(redis.call('ZSCORE', KEYS[2], id) or ''), now)
      - math.max(tonumber(f[2] or '0'), tonumber(f[3] or '0'))
    local own, _, dlq = stall_config(tk)
    if (own > 0 and silent > own) or (stale_ms > 0 and silent > stale_ms) then
      release(id, f[4])
      append_error(tk, 'HeartbeatTimeout', 'no heartbeat for ' .. fmt(silent) .. ' ms', now,
        tonumber(f[6] or '0'))
      note(EV_HEARTBEAT_STALE, 'no heartbeat for ' .. fmt(silent) .. ' ms')
      end_task(id, tk, f[4], STARTED, STALLED, now, dlq == 'save', nil)
      redis.call('PUBLISH', C_cancel, id)
      out[#out + 1] = id
    end
  end
end
return out
