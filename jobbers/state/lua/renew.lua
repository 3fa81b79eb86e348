-- Renew the leases of one worker's running tasks, record heartbeats and progress, report
-- lost/cancelled ones.
-- KEYS: the record of each task.  ARGV[3..]: lease_ms, then per task: id, token, heartbeat
-- ('1' = the task called heartbeat() since the last renewal), progress (msgpack [current, total,
-- message, attempt]; '' = no new report), progress text (for the event log)
-- A new progress report is stored ('progress', 'progress_at'); it becomes a progress event when
-- the task's last one is PROGRESS_EVENT_MS old or more ('progress_event_at').
-- Returns {lost_tokens, cancel_requested_ids}: a lease is lost when the task moved on or is held
-- under another lease (it was recovered, and maybe claimed again).
-- Renewal runs even while Redis is out of memory (scripts.OOM_RULES), and must not grow it then:
-- a progress event (a record field, an audit stream entry) waits for a report after the episode.
local lease_ms = tonumber(ARGV[3])
local now = now_ms()
local full = nil
local function memory_full()  -- as INFO tells it, read at most once a call (only for an event)
  if full == nil then
    local info = redis.call('INFO', 'memory')
    local used, max = string.match(info, 'used_memory:(%d+)'), string.match(info, 'maxmemory:(%d+)')
    local uncounted = string.match(info, 'mem_not_counted_for_evict:(%d+)') or '0'
    full = tonumber(max or '0') > 0 and tonumber(used or '0') - tonumber(uncounted) > tonumber(max)
  end
  return full
end
local lost, cancel = {}, {}
for i = 1, #KEYS do
  local at = 4 + (i - 1) * 5
  local id, token, hb, progress = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
  local tk = KEYS[i]
  local f = redis.call('HMGET', tk, 'status', 'lease', 'cancel_requested', 'progress_event_at', 'evp')
  if f[1] == STARTED and f[2] == token then
    redis.call('ZADD', K_inflight, now + lease_ms, id)
    if hb == '1' then redis.call('HSET', tk, 'last_heartbeat_at', fmt(now)) end
    if progress ~= '' then
      redis.call('HSET', tk, 'progress', progress, 'progress_at', fmt(now))
      if now - tonumber(f[4] or '0') >= PROGRESS_EVENT_MS and not memory_full() then
        redis.call('HSET', tk, 'progress_event_at', fmt(now))
        -- The record keeps its latest progress event only ('evp' names it); the audit log each.
        local field = add_event(id, EV_PROGRESS, ARGV[at + 4], now)
        if f[5] then redis.call('HDEL', tk, f[5]) end
        redis.call('HSET', tk, 'evp', field)
      end
    end
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = token
  end
end
return {lost, cancel}
