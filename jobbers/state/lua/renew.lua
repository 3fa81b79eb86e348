-- Renew the leases of one worker's running tasks, record heartbeats, report lost/cancelled ones.
-- ARGV: prefix, lease_ms, n, then per task: id, token, heartbeat ('1' = task heartbeat since last)
-- Returns {lost_ids, cancel_requested_ids}
local lease_ms, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local lost, cancel = {}, {}
local i = 4
for _ = 1, n do
  local id, token, hb = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  local tk = K_task(id)
  local f = redis.call('HMGET', tk, 'status', 'lease', 'cancel_requested')
  if f[1] == 'started' and f[2] == token then
    redis.call('ZADD', K_inflight, now + lease_ms, id)
    if hb == '1' then redis.call('HSET', tk, 'last_heartbeat_at', fmt(now)) end
    if f[3] == '1' then cancel[#cancel + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {lost, cancel}
