-- Create tasks atomically (one per group of ARGV), each with its queue or schedule entry.
-- ARGV: prefix, then one msgpack array of tasks (one argument, so packing stays cheap), each:
--       [id, name, version, queue, params (msgpack), run_at_ms (0 = now), idempotency key ('' = none),
--        max_stalls, hb_timeout_ms, dlq_policy ('' = unknown), trace]
-- Returns per task: {'new'|'existing', id, status, submitted_at_ms}
local now = now_ms()
local now_s = fmt(now)
local out = {}
local woken = {}
local seen = {}
local scheduled = false
for _, t in ipairs(cmsgpack.unpack(ARGV[2])) do
  local id, name, version, queue, params = t[1], t[2], tostring(t[3]), t[4], t[5]
  local run_at, idem = tonumber(t[6]), t[7]
  local max_stalls, hb, dlq, trace = tostring(t[8]), tostring(t[9]), t[10], t[11]
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
      'params', params, 'status', status, 'submitted_at', now_s, 'updated_at', now_s)
    if max_stalls ~= '' then redis.call('HSET', tk, 'max_stalls', max_stalls) end
    if hb ~= '' then redis.call('HSET', tk, 'hb_timeout', hb) end
    if dlq ~= '' then redis.call('HSET', tk, 'dlq_policy', dlq) end
    if trace ~= '' then redis.call('HSET', tk, 'trace', trace) end
    if status == 'scheduled' then
      redis.call('HSET', tk, 'run_at', fmt(run_at))
      redis.call('ZADD', K_sched(queue), run_at, id)
      scheduled = true
    else
      redis.call('ZADD', K_queue(queue), now, id)
      woken[queue] = true
    end
    redis.call('ZADD', K_status(status), now, id)
    if not seen[queue] then
      redis.call('SADD', K_queues, queue)
      seen[queue] = true
    end
    if idem ~= '' then redis.call('SET', K_idem(idem), id, 'EX', 86400) end
    out[#out + 1] = {'new', id, status, now_s}
  end
end
for queue, _ in pairs(woken) do redis.call('PUBLISH', K_wake_channel, queue) end
if scheduled then redis.call('PUBLISH', K_sched_channel, '1') end
return out
