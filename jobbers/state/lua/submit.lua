-- Create tasks atomically, each with its queue or schedule entry, in one key space.
-- KEYS: the ready set of the queue the rows name; KEYS[2], when given (not on a cluster, where it
-- lies in another slot and is written beside the call): the locator, given each new task's queue.  ARGV[3]: one msgpack array of submit rows
-- (task_schema.SUBMIT_ROW; one argument, so packing stays cheap).  ARGV[4], ARGV[5]: the
-- Idempotency-Key of the whole request and its body's fingerprint ('' = none): recorded like a
-- row's key (without a task), so the same key with another body conflicts as a whole.
-- ARGV[6]: '1' when the request or any row has an Idempotency-Key (else no key is looked up).
-- A row whose task id, or Idempotency-Key (SUBMIT.idem), is already recorded returns that task.
-- An Idempotency-Key recorded with another request's fingerprint is a conflict: then nothing of
-- the call is written, and every row answers SUBMIT_CONFLICT (with the recorded task's id on the
-- rows whose key conflicted, '' on the others).
-- Returns per row: {SUBMIT_NEW | SUBMIT_EXISTING | SUBMIT_CONFLICT, id, status, submitted_at_ms,
--                  cancel_reason ('' unless a concurrency key discarded the new task)}
local now = now_ms()
local now_s = fmt(now)
local rows = cmsgpack.unpack(ARGV[3])

local request_key, request_fingerprint = ARGV[4], ARGV[5]

-- The task an Idempotency-Key names (false when none, or when its task is gone), and whether
-- the key was recorded with a fingerprint other than given.
local function recorded(idem, given)
  if idem == '' then return false, false end
  local record = redis.call('GET', K_idem(idem))
  if not record then return false, false end
  local prior, fingerprint = string.match(record, '^(%S*) ?(.*)$')
  if fingerprint ~= '' and given ~= '' and fingerprint ~= given then return prior, true end
  if prior ~= '' and redis.call('EXISTS', K_task(prior)) == 1 then return prior, false end
  return false, false
end

local keyed = ARGV[6] == '1'  -- whether any row, or the request, has an Idempotency-Key
local _, whole_conflict = recorded(request_key, request_fingerprint)
local conflicts = {}
if keyed then
  for i, t in ipairs(rows) do
    if t[SUBMIT.idem] ~= '' then
      local prior, conflict = recorded(t[SUBMIT.idem], t[SUBMIT.fingerprint])
      if conflict then conflicts[i] = prior end
    end
  end
end
if whole_conflict or next(conflicts) then
  local out = {}
  for i = 1, #rows do out[i] = {SUBMIT_CONFLICT, conflicts[i] or '', '', '0', ''} end
  return out
end
if request_key ~= '' then redis.call('SET', K_idem(request_key), ' ' .. request_fingerprint, 'EX', 86400) end

local out = {}
for i, t in ipairs(rows) do
  -- Again: an earlier row of this call may have recorded the same key.
  local prior, conflict = false, false
  if keyed and t[SUBMIT.idem] ~= '' then prior, conflict = recorded(t[SUBMIT.idem], t[SUBMIT.fingerprint]) end
  local id = prior or t[SUBMIT.id]
  local tk = K_task(id)
  local existing = redis.call('HMGET', tk, 'status', 'submitted_at')
  if conflict then
    out[i] = {SUBMIT_CONFLICT, prior, '', '0', ''}
  elseif existing[1] then
    out[i] = {SUBMIT_EXISTING, id, existing[1], existing[2], ''}
  else
    local queue, run_at = t[SUBMIT.queue], tonumber(t[SUBMIT.run_at])
    know(id, 0, '', t[SUBMIT.name], t[SUBMIT.correlation_id], t[SUBMIT.external])
    local status, reason = SUBMITTED, ''
    if run_at > now then
      status = SCHEDULED
      make_scheduled(id, tk, queue, UNSUBMITTED, run_at, now, submitted_fields(t, now_s))
    else
      status, reason = make_ready(id, tk, queue, UNSUBMITTED, now, t[SUBMIT.priority], now,
        t[SUBMIT.concurrency_key], submitted_fields(t, now_s))
    end
    if t[SUBMIT.idem] ~= '' then
      redis.call('SET', K_idem(t[SUBMIT.idem]), id .. ' ' .. t[SUBMIT.fingerprint], 'EX', 86400)
    end
    if KEYS[2] then redis.call('HSET', KEYS[2], id, queue) end
    out[i] = {SUBMIT_NEW, id, status, now_s, reason or ''}
  end
end
return out
