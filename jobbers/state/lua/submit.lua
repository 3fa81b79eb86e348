-- Create tasks atomically (one per group of ARGV), each with its queue or schedule entry.
-- ARGV: prefix, n, then per task: id, name, version, queue, params, run_at_ms (0 = now),
--       idempotency key ('' = none), max_stalls, hb_timeout_ms, dlq_policy ('' = unknown), trace
-- Returns per task: {'new'|'existing', id, status, submitted_at_ms}
local n = tonumber(ARGV[2])
local now = now_ms()
local out = {}
local woken = {}
local scheduled = false
local i = 3
for _ = 1, n do
  local id, name, version, queue, params = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local run_at, idem = tonumber(ARGV[i + 5]), ARGV[i + 6]
  local max_stalls, hb, dlq, trace = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
  i = i + 11
  if idem ~= '' then
    local prior = redis.call('GET', K_idem(idem))
    if prior and redis.call('EXISTS', K_task(prior)) == 1 then id = prior end
  end
  local tk = K_task(id)
  local prior = redis.call('HMGET', tk, 'status', 'submitted_at')
  if prior[1] then
    out[#out + 1] = {'existing', id, prior[1], prior[2]}
  else
    local status = 'submitted'
    if run_at > now then status = 'scheduled' end
    redis.call('HSET', tk, 'id', id, 'name', name, 'version', version, 'queue', queue,
      'params', params, 'status', status, 'submitted_at', fmt(now), 'updated_at', fmt(now),
      'retry_attempt', '0', 'stall_count', '0', 'max_stalls', max_stalls, 'hb_timeout', hb,
      'dlq_policy', dlq, 'trace', trace)
    if status == 'scheduled' then
      redis.call('HSET', tk, 'run_at', fmt(run_at))
      redis.call('ZADD', K_sched(queue), run_at, id)
      scheduled = true
    else
      redis.call('ZADD', K_queue(queue), now, id)
      woken[queue] = true
    end
    redis.call('ZADD', K_status(status), now, id)
    redis.call('SADD', K_queues, queue)
    if idem ~= '' then redis.call('SET', K_idem(idem), id, 'EX', 86400) end
    out[#out + 1] = {'new', id, status, fmt(now)}
  end
end
for queue, _ in pairs(woken) do redis.call('PUBLISH', K_wake_channel, queue) end
if scheduled then redis.call('PUBLISH', K_sched_channel, '1') end
return out
