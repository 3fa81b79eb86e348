-- Make, in their own queue's space, the tasks of workflow nodes whose runs live in another space
-- (relayed from the runs' outboxes, see _common.lua): each ready, or ended cancelled with the
-- reason given. Idempotent: a task that exists is left as it is.
-- KEYS: each task's record.  ARGV[3]: one msgpack array of {packed submit row (params filled),
-- cancel reason ('' = make it ready)}, in the order of KEYS.
-- Returns how many tasks were made.
local now = now_ms()
local made = 0
for i, d in ipairs(cmsgpack.unpack(ARGV[3])) do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local reason = d[2]
    if reason == '' then reason = nil end
    wf_create(cmsgpack.unpack(d[1]), now, reason)
    made = made + 1
  end
end
return made
