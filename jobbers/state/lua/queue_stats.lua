-- Read-only figures of queues: how many tasks are ready, scheduled and running, whether the queue
-- is paused, and when its oldest ready task entered it. A ready set is ordered by priority first,
-- so the oldest entry is the oldest of each priority band's first: one look-up per band present.
-- KEYS: the ready set of each queue.  ARGV[3..]: the queue names, in KEYS order.
-- Returns {now_ms, {ready, scheduled, running, paused (0/1), oldest_enqueued_ms (-1 = none),
--          completed, failed (this minute), completed, failed (the minute before),
--          blocked (waiting for a concurrency key's slot), external (ready tasks of external types)}...}
local now = now_ms()
local minute = math.floor(now / 60000)
local this_minute, last_minute = K_throughput(fmt(minute)), K_throughput(fmt(minute - 1))
local out = {}
for i = 1, #KEYS do
  local ready, queue = KEYS[i], ARGV[2 + i]
  local oldest = -1
  local from = '-inf'
  while true do
    local first = redis.call('ZRANGEBYSCORE', ready, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #first == 0 then break end
    local band = math.floor(tonumber(first[2]) / PRIORITY_STEP)
    local enqueued = tonumber(first[2]) - band * PRIORITY_STEP
    if oldest < 0 or enqueued < oldest then oldest = enqueued end
    from = fmt((band + 1) * PRIORITY_STEP)
  end
  local blocked = 0
  for _, ckey in ipairs(redis.call('ZRANGE', K_conc_due(queue), 0, -1)) do
    blocked = blocked + redis.call('ZCARD', K_blocked(queue .. ':' .. ckey))
  end
  local external = 0
  for _, name in ipairs(redis.call('SMEMBERS', K_extnames(queue))) do
    external = external + redis.call('ZCARD', K_external(queue .. ':' .. name))
  end
  local now_counts = redis.call('HMGET', this_minute, queue .. ':' .. COMPLETED, queue .. ':' .. FAILED)
  local last_counts = redis.call('HMGET', last_minute, queue .. ':' .. COMPLETED, queue .. ':' .. FAILED)
  out[i] = {redis.call('ZCARD', ready), redis.call('ZCARD', K_sched(queue)), redis.call('ZCARD', K_status(STARTED)),
    redis.call('EXISTS', K_paused(queue)), fmt(oldest), now_counts[1] or '0', now_counts[2] or '0',
    last_counts[1] or '0', last_counts[2] or '0', blocked, external}
end
return {fmt(now), out}
