-- Shared helpers, after the generated preamble. Every status change goes through move_status
-- (checked against ALLOWED); a task becomes ready only through make_ready, is scheduled only
-- through make_scheduled, leaves 'started' through release and ends through end_task. Their
-- side effects (wake-ups, the schedule signal, throughput counts, the status changes published
-- for followers) are collected here and flushed once when the script ends.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
-- fmt for timestamps: a script uses one 'now' throughout, so it is formatted once.
local last_ts, last_ts_s = nil, nil
local function ts_s(ts)
  if ts ~= last_ts then last_ts, last_ts_s = ts, fmt(ts) end
  return last_ts_s
end

local WOKEN = {}             -- queue -> true: publish a wake-up for it
local FREED = {}             -- queue -> true: a running slot was freed (max_concurrent may allow more)
local COUNTS = {}            -- minute -> {'queue:status' -> terminal outcomes}
local SCHEDULE_CHANGED = false
local TRANSITIONS = {}       -- id, old, new of each status change, flat: published for `jobbers tail`
local TRANSITIONS_AT = nil   -- when they happened (a script uses one 'now' throughout)
local WF_ENDED = {}          -- {workflow id, node id, status, task id} of each workflow node that ended
-- The sorted-set indexes a script only writes (the status indexes, the in-flight leases): each
-- entry's last write, per key (id -> score, or false: removed), written when the script ends in
-- one ZADD and one ZREM per key, not one command per task. No script reads them after writing
-- them (recover and stall_silent read theirs first), so the deferral is invisible.
local INDEX = {}             -- key -> {id -> score | false}
local INDEX_KEYS = {}        -- those keys, in the order first written
local function index_entry(key)
  local m = INDEX[key]
  if not m then m = {}; INDEX[key] = m; INDEX_KEYS[#INDEX_KEYS + 1] = key end
  return m
end
local function index_add(key, score, id) index_entry(key)[id] = score end
local function index_rem(key, id) index_entry(key)[id] = false end
local INDEX_CHUNK = 4000     -- arguments per command (unpack's limit is about 8000)
local function index_write(cmd, key, args)
  for from = 1, #args, INDEX_CHUNK do
    redis.call(cmd, key, unpack(args, from, math.min(#args, from + INDEX_CHUNK - 1)))
  end
end
local function flush_index()
  for _, key in ipairs(INDEX_KEYS) do
    local add, rem = {}, {}
    for id, score in pairs(INDEX[key]) do
      if score then add[#add + 1] = score; add[#add + 1] = id else rem[#rem + 1] = id end
    end
    if rem[1] then index_write('ZREM', key, rem) end
    if add[1] then index_write('ZADD', key, add) end
  end
  INDEX, INDEX_KEYS = {}, {}
end

-- The event log. Every status change (move_status) appends an event in the call that makes it,
-- so the log and the state never disagree; so do a cancel request and a progress report
-- (add_event). An event goes to the space's audit stream (K_audit, capped at AUDIT_MAXLEN:
-- task id, type, attempt, worker, task name, correlation id, detail) and into the task's record as
-- the field 'ev:<its stream id>' = '<ms>|<type>|<attempt>|<worker>|<detail>' (no key of its own,
-- no counter; it goes when the task is pruned), where worker is the claimer on a start, '1' for
-- "the worker of this attempt" (the last start's) and '' for none. move_status returns that
-- field and value for the caller's own HSET of the move, so the record costs no extra command.
-- The attempt is the record's retry_attempt before the move (for a retry: the attempt that
-- failed). What a move was, when the statuses alone do not say (a retry, a recovery, why a
-- cancel), its caller says with note() just before it; the task's attempt, worker, name and
-- correlation id come from know() when the script read them anyway, else from one HMGET.
local NOTE_TYPE, NOTE_DETAIL = false, ''
local function note(etype, detail)
  NOTE_TYPE, NOTE_DETAIL = etype, detail or ''
end
local KNOWN = {}             -- id -> {attempt, worker, name, correlation id}
-- external: the task's external flag ('1' / ''), when the caller has its submit row (make_ready
-- then needs no read for it); nil when unknown.
local function know(id, attempt, worker, name, corr, external)
  KNOWN[id] = {tonumber(attempt or '0') or 0, worker or '', name or '', corr or '', external}
end
-- The workflow run and node of a task (false / '' = none), when the script read them anyway (else
-- end_task reads them).
local WORKFLOW_OF = {}       -- id -> {workflow id, node id}
local function know_workflow(id, wid, node) WORKFLOW_OF[id] = {wid, node} end
-- Append one event of task id; returns the record field and value that hold it there.
local function log_event(id, etype, detail, ts, with_worker)
  local k = KNOWN[id]
  if not k then
    local f = redis.call('HMGET', K_task(id), 'retry_attempt', 'worker_id', 'name', 'correlation_id')
    k = {tonumber(f[1] or '0') or 0, f[2] or '', f[3] or '', f[4] or ''}
  end
  local worker, own = '', ''
  if with_worker then
    worker = k[2]
    if etype == EV_STARTED then own = worker else own = '1' end
  end
  if #detail > MAX_EVENT_DETAIL then detail = string.sub(detail, 1, MAX_EVENT_DETAIL) end
  local sid = redis.call('XADD', K_audit, 'MAXLEN', '~', AUDIT_MAXLEN, '*', 't', id, 'y', etype,
    'a', k[1], 'w', worker, 'n', k[3], 'c', k[4], 'd', detail)
  return 'ev:' .. sid, ts_s(ts) .. '|' .. etype .. '|' .. k[1] .. '|' .. own .. '|' .. detail
end
-- An event that is no move (a cancel request, a progress report), written at once.
local function add_event(id, etype, detail, ts)
  local field, value = log_event(id, etype, detail, ts, true)
  redis.call('HSET', K_task(id), field, value)
  return field
end
-- The event of a move old -> new that no note() named (a terminal status is its own event).
local function default_event(old, new)
  if new == STARTED then return EV_STARTED end
  if TERMINAL[new] then return new end
  if old == UNSUBMITTED then
    if new == SCHEDULED then return EV_SCHEDULED end
    return EV_SUBMITTED
  end
  if old == SCHEDULED then return EV_PROMOTED end
  if old == STARTED then return EV_RETRIED end
  return EV_RESUBMITTED
end

-- Move a task's status (checked against ALLOWED) and log its event; returns the record field and
-- value of the event, for the caller's HSET of the move.
local function move_status(id, old, new, ts)
  local moves = ALLOWED[old]
  if not (moves and moves[new]) then
    error('jobbers: transition ' .. tostring(old) .. ' -> ' .. tostring(new) .. ' of ' .. id .. ' is not allowed')
  end
  if old ~= UNSUBMITTED then index_rem(K_status(old), id) end
  index_add(K_status(new), ts, id)
  local n = #TRANSITIONS
  TRANSITIONS[n + 1], TRANSITIONS[n + 2], TRANSITIONS[n + 3] = id, old, new
  TRANSITIONS_AT = ts
  local etype, detail = NOTE_TYPE, NOTE_DETAIL
  if etype then NOTE_TYPE, NOTE_DETAIL = false, '' else etype = default_event(old, new) end
  return log_event(id, etype, detail, ts, old == STARTED or new == STARTED)
end

-- A ready-queue score: enqueued_at (ms) less priority steps, so a higher priority is claimed
-- first and equal priorities in enqueue order (ties break by id). priority is the stored field
-- (false / '' when absent = 0).
local function ready_score(enqueued_at, priority)
  if priority and priority ~= '' and priority ~= 0 then return enqueued_at - tonumber(priority) * PRIORITY_STEP end
  return enqueued_at
end
-- Concurrency keys. A task with a concurrency_key holds one of the key's concurrency_limit slots
-- from the moment it is made ready until it ends, is scheduled (a retry delay) or is made ready
-- again: K_conc('<queue>:<key>') holds the holders, each scored by when its slot lapses (made
-- ready + concurrency_duration ms). A task that finds no free slot waits in K_blocked (scored as
-- it would be in the ready set; its record's blocked_on names the key) and is moved to the ready
-- set by unblock the moment a slot frees: when a holder ends or is recovered, or when a slot
-- lapses (K_conc_due(queue) scores each key that has waiters by its earliest lapse; the
-- scheduler's promotion pass runs unblock then, so nothing polls).
local function unblock(queue, ckey, now)
  local name = queue .. ':' .. ckey
  local ck, bk = K_conc(name), K_blocked(name)
  redis.call('ZREMRANGEBYSCORE', ck, '-inf', now)
  while true do
    local first = redis.call('ZRANGE', bk, 0, 0, 'WITHSCORES')
    if #first == 0 then break end
    local id = first[1]
    local tk = K_task(id)
    local c = redis.call('HMGET', tk, 'status', 'concurrency_limit', 'concurrency_duration')
    if c[1] ~= SUBMITTED then
      redis.call('ZREM', bk, id)  -- a stale entry: the task moved on
    else
      if redis.call('ZCARD', ck) >= tonumber(c[2] or '1') then break end
      redis.call('ZREM', bk, id)
      redis.call('ZADD', ck, now + tonumber(c[3] or '0'), id)
      redis.call('HDEL', tk, 'blocked_on')
      redis.call('ZADD', K_ready(queue), first[2], id)
      WOKEN[queue] = true
    end
  end
  if redis.call('ZCARD', bk) > 0 then
    -- The scheduler is told when the key is due sooner than it knew.
    local holder = redis.call('ZRANGE', ck, 0, 0, 'WITHSCORES')
    local at, known = tonumber(holder[2] or now), redis.call('ZSCORE', K_conc_due(queue), ckey)
    redis.call('ZADD', K_conc_due(queue), at, ckey)
    if not known or at < tonumber(known) then SCHEDULE_CHANGED = true end
  else
    redis.call('ZREM', K_conc_due(queue), ckey)
  end
end
-- Give up the slot task id holds under ckey (if it holds one), letting the next waiter in.
local function release_slot(id, queue, ckey, now)
  if ckey and ckey ~= '' and redis.call('ZREM', K_conc(queue .. ':' .. ckey), id) == 1 then
    unblock(queue, ckey, now)
  end
end
-- Count one terminal outcome in the minute of ts, for the admin overview's throughput chart.
local function count_terminal(queue, status, ts)
  local minute = math.floor(ts / 60000)
  local counts = COUNTS[minute]
  if not counts then counts = {}; COUNTS[minute] = counts end
  local by_status = counts[queue]
  if not by_status then by_status = {}; counts[queue] = by_status end
  by_status[status] = (by_status[status] or 0) + 1
end
-- End a task in terminal status new (dead-lettered when asked); ...: more record field/value
-- pairs, written in the same HSET (the result, the cancel flag, the stall count).
-- An ending task gives up its concurrency slot, or its place among a key's waiters: ckey is its
-- concurrency key when the caller read it (false = none), nil to look it up here. (A started
-- task is never waiting, so a caller ending one only needs its key.)
local function end_task(id, tk, queue, old, new, now, dead_letter, ckey, ...)
  local evf, evv = move_status(id, old, new, now)
  local now_s = ts_s(now)
  local waiting = false
  if ckey == nil then ckey, waiting = unpack(redis.call('HMGET', tk, 'concurrency_key', 'blocked_on')) end
  redis.call('HSET', tk, 'status', new, 'completed_at', now_s, 'updated_at', now_s, evf, evv, ...)
  if waiting then
    redis.call('ZREM', K_blocked(queue .. ':' .. waiting), id)
    redis.call('HDEL', tk, 'blocked_on')
  end
  release_slot(id, queue, ckey, now)
  if dead_letter then
    redis.call('ZADD', K_dlq, now, id)
    redis.call('HSET', tk, 'dead_lettered', '1')
  end
  count_terminal(queue, new, now)
  -- A workflow node's successors are released (or cancelled) by wf_advance, in this same call.
  local w = WORKFLOW_OF[id] or redis.call('HMGET', tk, 'workflow_id', 'workflow_node')
  if w[1] and w[1] ~= '' then WF_ENDED[#WF_ENDED + 1] = {w[1], w[2], new, id} end
end
-- Put a task into its queue's ready set: the one way a task becomes ready (submit, retry, lease
-- recovery, promotion, DLQ resubmit). enqueued_at and priority give its score (ready_score).
-- ckey: its concurrency key ('' / false = none): the task takes a free slot of the key, or
-- waits blocked for one (on_conflict 'block'); a submit (old = UNSUBMITTED) of an 'discard' task
-- that finds none ends 'cancelled' with a cancel_reason naming the key instead.
-- ...: more record field/value pairs, written in the same HSET.
-- Returns the task's status: SUBMITTED (ready or blocked), or CANCELLED and the reason.
local function make_ready(id, tk, queue, old, enqueued_at, priority, now, ckey, ...)
  local evf, evv = move_status(id, old, SUBMITTED, now)
  redis.call('HSET', tk, 'status', SUBMITTED, 'updated_at', ts_s(now), evf, evv, ...)
  local score = ready_score(enqueued_at, priority)
  local known, ext = KNOWN[id], nil
  if known and known[5] ~= nil then ext = {known[5], known[3]} else ext = redis.call('HMGET', tk, 'external', 'name') end
  if ext[1] == '1' then
    -- An external task (no concurrency key: register_external_task offers none) waits where only
    -- ext_claim looks, and wakes no worker.
    redis.call('ZADD', K_external(queue .. ':' .. ext[2]), score, id)
    redis.call('SADD', K_extnames(queue), ext[2])
    return SUBMITTED
  end
  if ckey and ckey ~= '' then
    release_slot(id, queue, ckey, now)
    local c = redis.call('HMGET', tk, 'concurrency_limit', 'concurrency_duration', 'on_conflict')
    local limit = tonumber(c[1] or '1')
    local name = queue .. ':' .. ckey
    local ck = K_conc(name)
    if redis.call('ZCARD', K_blocked(name)) > 0 then unblock(queue, ckey, now) end  -- waiters first
    if redis.call('ZCARD', ck) >= limit or redis.call('ZCARD', K_blocked(name)) > 0 then
      if old == UNSUBMITTED and c[3] == 'discard' then
        local reason = 'concurrency key ' .. ckey .. ' is at its limit (' .. fmt(limit) .. ')'
        note(EV_CANCELLED, reason)
        end_task(id, tk, queue, SUBMITTED, CANCELLED, now, false, ckey, 'cancel_reason', reason)
        return CANCELLED, reason
      end
      redis.call('ZADD', K_blocked(name), score, id)
      redis.call('HSET', tk, 'blocked_on', ckey)
      local holder = redis.call('ZRANGE', ck, 0, 0, 'WITHSCORES')
      if redis.call('ZADD', K_conc_due(queue), 'NX', tonumber(holder[2] or now), ckey) == 1 then
        SCHEDULE_CHANGED = true
      end
      return SUBMITTED
    end
    redis.call('ZADD', ck, now + tonumber(c[2] or '0'), id)
  end
  redis.call('ZADD', K_ready(queue), score, id)
  WOKEN[queue] = true
  return SUBMITTED
end
-- The set a ready (submitted) task waits in: its queue's ready set, or, for a task of an external
-- type, the external ready set of its name.
local function ready_set_of(tk, queue)
  local ext = redis.call('HMGET', tk, 'external', 'name')
  if ext[1] == '1' then return K_external(queue .. ':' .. ext[2]) end
  return K_ready(queue)
end
-- Put a task into its queue's schedule until run_at (ms): a delayed submit or a retry delay
-- (which gives up its concurrency slot, if it holds one).
local function make_scheduled(id, tk, queue, old, run_at, now, ...)
  local evf, evv = move_status(id, old, SCHEDULED, now)
  redis.call('HSET', tk, 'status', SCHEDULED, 'run_at', fmt(run_at), 'updated_at', ts_s(now), evf, evv, ...)
  redis.call('ZADD', K_sched(queue), run_at, id)
  SCHEDULE_CHANGED = true
  if old ~= UNSUBMITTED then release_slot(id, queue, redis.call('HGET', tk, 'concurrency_key'), now) end
end
-- Leave 'started': drop the lease from the in-flight index (the queue's running count, for
-- max_concurrent, is its space's index of started tasks, which move_status keeps).
-- (The lease field itself may stay: every fenced write also requires status 'started'.)
local function release(id, queue)
  index_rem(K_inflight, id)
  FREED[queue] = true
end
-- Append one error record to a task's msgpack-encoded error history.
local function append_error(tk, etype, message, ts, attempt)
  local raw = redis.call('HGET', tk, 'errors')
  local errors = {}
  if raw and raw ~= '' then errors = cmsgpack.unpack(raw) end
  errors[#errors + 1] = {exception_type = etype, message = message, at = ts, attempt = attempt}
  redis.call('HSET', tk, 'errors', cmsgpack.pack(errors), 'error', etype .. ': ' .. message)
end
-- The stall budget, own heartbeat interval (ms, 0 = none) and DLQ policy of a task: as published
-- by the workers that run its type, else as stored at submit, else the defaults.
local function stall_config(tk)
  local f = redis.call('HMGET', tk, 'hb_timeout', 'max_stalls', 'dlq_policy', 'name', 'version')
  local t = redis.call('HMGET', K_tasktype((f[4] or '') .. ':' .. (f[5] or '')), 'hb_timeout', 'max_stalls',
    'dlq_policy')
  local function pick(a, b, default)
    if a and a ~= '' then return a end
    if b and b ~= '' then return b end
    return default
  end
  return tonumber(pick(t[1], f[1], '0')), tonumber(pick(t[2], f[2], '1')), pick(t[3], f[3], 'none')
end
-- Whether the worker holding a started task has stopped renewing its lease (expiring at lease_at)
-- for two renewal intervals: it renews every third of its lease (lease_ms, stored at claim), so
-- such a lease has less than a third left. A record without lease_ms counts only at expiry.
local function worker_dead(tk, lease_at, now)
  if not lease_at then return false end
  if lease_at <= now then return true end
  local lease_ms = tonumber(redis.call('HGET', tk, 'lease_ms') or '')
  return lease_ms ~= nil and lease_at - lease_ms / 3 < now
end
-- The last moment a started task's worker proved alive: its last lease renewal (the lease, expiring
-- at lease_at, is renewed for lease_ms, stored at claim). A record without them counts as alive now.
local function renewed_at(tk, lease_at, now)
  local lease_ms = lease_at and tonumber(redis.call('HGET', tk, 'lease_ms') or '')
  if not lease_ms then return now end
  return math.min(now, lease_at - lease_ms)
end
-- Take a started task back from its dead worker: re-queue it within its stall budget (max_stalls),
-- else mark it 'stalled' (dead-lettered under the SAVE policy); 'cancelled' if that was requested.
-- The caller removed it from the in-flight index. Returns 1 (re-queued), 2 (stalled) or 3 (cancelled).
local function recover_task(id, tk, now)
  local f = redis.call('HMGET', tk, 'status', 'queue', 'stall_count', 'cancel_requested', 'submitted_at',
    'retry_attempt', 'priority', 'concurrency_key')
  local queue = f[2]
  release(id, queue)
  if f[4] == '1' then
    note(EV_CANCELLED, 'cancel requested; its worker died before ending it')
    end_task(id, tk, queue, STARTED, CANCELLED, now, false, f[8])
    return 3
  end
  local stalls = tonumber(f[3] or '0') + 1
  append_error(tk, 'LeaseExpired', 'worker lease expired (worker died or froze)', now, tonumber(f[6] or '0'))
  local _, max_stalls, dlq = stall_config(tk)
  local budget = ' (stall ' .. fmt(stalls) .. ', max_stalls ' .. fmt(max_stalls) .. ')'
  if stalls > max_stalls then
    note(EV_STALLED, 'worker lease expired; stall budget spent' .. budget)
    end_task(id, tk, queue, STARTED, STALLED, now, dlq == 'save', f[8], 'stall_count', stalls)
    return 2
  end
  note(EV_RECOVERED, 'worker lease expired; re-queued' .. budget)
  make_ready(id, tk, queue, STARTED, tonumber(f[5]), f[7], now, f[8], 'stall_count', stalls)
  return 1
end
-- Workflows. A run's graph is one hash K_wf(id) in the space of its queue, written once at submit:
-- per node 'row:<n>' (its packed submit row, task id included), 'succ:<n>' (packed list of the
-- nodes its success edges lead to), 'err:<n>' (its error edges), 'par:<n>' (packed {node, task id}
-- of its parents), 'need:<n>' (incoming edges not yet satisfied), 'rp:<n>' / 'ep:<n>' (the param
-- that receives the parents' results / the failed parent's error) and 'made:<n>' (set once the
-- node's task exists: the guard that makes every node's task exactly once). A success edge is
-- satisfied when its parent completes, an error edge when it fails or stalls; a node is made ready
-- when all its edges are, and ends cancelled (with a reason) the moment one cannot be. A node's
-- end is counted once ('ended:<n>'); when 'ended' reaches 'total' the run ends completed, or
-- failed when a node failed or stalled, or cancelled when it was cancelled. Nothing expires.
--
-- A run's nodes may sit in other queues than its first (its 'home', where the hash is): their
-- tasks live in their own queues' key spaces, which a script of the home space cannot touch (on
-- a Redis Cluster they are on other shards). Every effect across spaces goes through the outbox
-- of the space it starts in (K_wf_outbox, relayed by the scheduler: relay_workflow_outbox):
-- 'm <run> <node>' makes a node's task in its queue (its row, params filled, and a cancel reason
-- or ''), 'c <run> <node>' asks a made one to stop (a run cancel), and 'e <run> <node>' (written
-- in the node's space when its task ends there) settles its end in the home space (wf_settle,
-- which keeps its status, result and error as 'fst:' / 'fres:' / 'ferr:'). Each delivery is
-- idempotent (a task made once, an end counted once), so an entry delivered twice after a crash
-- changes nothing the second time; it is deleted once delivered.
local function wf_id_of(wk) return string.sub(wk, #K_wf('') + 1) end
local function wf_results(wk, node, row)
  local rp, ep = unpack(redis.call('HMGET', wk, 'rp:' .. node, 'ep:' .. node))
  if (not rp or rp == '') and (not ep or ep == '') then return end
  local params = cmsgpack.unpack(row[SUBMIT.params])
  local results, err = {}, nil
  for _, p in ipairs(cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. node))) do
    local f = redis.call('HMGET', K_task(p[2]), 'status', 'result', 'error')
    if not f[1] then f = redis.call('HMGET', wk, 'fst:' .. p[1], 'fres:' .. p[1], 'ferr:' .. p[1]) end
    if f[1] == COMPLETED then
      if f[2] and f[2] ~= '' then results[p[1]] = cmsgpack.unpack(f[2]) else results[p[1]] = false end
    elseif f[1] == FAILED or f[1] == STALLED then
      err = {node = p[1], task_id = p[2], status = f[1], error = f[3] or ''}
    end
  end
  if rp and rp ~= '' then params[rp] = results end
  if ep and ep ~= '' and err then params[ep] = err end
  row[SUBMIT.params] = cmsgpack.pack(params)
end
-- Create the task of a node's row in this space: ready, or ended cancelled with reason.
local function wf_create(row, now, reason)
  local id = row[SUBMIT.id]
  local tk, queue = K_task(id), row[SUBMIT.queue]
  know(id, 0, '', row[SUBMIT.name], row[SUBMIT.correlation_id], row[SUBMIT.external])
  if reason then
    local evf, evv = move_status(id, UNSUBMITTED, SUBMITTED, now)
    redis.call('HSET', tk, evf, evv, submitted_fields(row, ts_s(now)))
    note(EV_CANCELLED, reason)
    end_task(id, tk, queue, SUBMITTED, CANCELLED, now, false, false, 'cancel_reason', reason)
  else
    make_ready(id, tk, queue, UNSUBMITTED, now, row[SUBMIT.priority], now, row[SUBMIT.concurrency_key],
      submitted_fields(row, ts_s(now)))
  end
end
-- Make node's task (once): ready, or ended cancelled with reason when reason is given; a node of
-- another queue than the run's home through the outbox.
local function wf_make(wk, node, now, reason)
  if redis.call('HSETNX', wk, 'made:' .. node, '1') == 0 then return end
  local row = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. node))
  if not reason then wf_results(wk, node, row) end
  local home = redis.call('HGET', wk, 'home')
  if home and row[SUBMIT.queue] ~= home then
    redis.call('HSET', K_wf_outbox, 'm ' .. wf_id_of(wk) .. ' ' .. node,
      cmsgpack.pack({cmsgpack.pack(row), reason or ''}))
    SCHEDULE_CHANGED = true
    return
  end
  wf_create(row, now, reason)
end
-- One incoming edge of node is satisfied (ok) or can no longer be (not ok, reason says why).
local function wf_edge(wk, node, ok, now, reason)
  if redis.call('HEXISTS', wk, 'made:' .. node) == 1 then return end
  if not ok then return wf_make(wk, node, now, reason) end
  if redis.call('HINCRBY', wk, 'need:' .. node, -1) <= 0 then wf_make(wk, node, now, nil) end
end
-- Settle the edges out of every workflow node that ended in this call (and of those this ends).
local function wf_advance(now)
  local i = 1
  while WF_ENDED[i] do
    local wid, node, new, id = unpack(WF_ENDED[i])
    i = i + 1
    local wk = K_wf(wid)
    if redis.call('EXISTS', wk) == 0 then
      -- The run lives in another space: its end is settled there (wf_settle, through the outbox).
      redis.call('HSET', K_wf_outbox, 'e ' .. wid .. ' ' .. node, new .. ' ' .. (id or ''))
      SCHEDULE_CHANGED = true
    elseif redis.call('HSETNX', wk, 'ended:' .. node, new) == 1 then
      local failed = new == FAILED or new == STALLED
      if failed then redis.call('HSETNX', wk, 'failed_node', node) end
      local edges = redis.call('HMGET', wk, 'succ:' .. node, 'err:' .. node)
      local why = 'workflow node ' .. node .. ' ended ' .. new
      if edges[1] then
        for _, s in ipairs(cmsgpack.unpack(edges[1])) do wf_edge(wk, s, new == COMPLETED, now, why) end
      end
      if edges[2] then
        local not_taken = 'workflow node ' .. node .. ' ended ' .. new .. ' (its error edge was not taken)'
        for _, s in ipairs(cmsgpack.unpack(edges[2])) do wf_edge(wk, s, failed, now, not_taken) end
      end
      local ended = redis.call('HINCRBY', wk, 'ended', 1)
      local f = redis.call('HMGET', wk, 'total', 'failed_node', 'cancel_asked')
      if ended >= tonumber(f[1]) then
        local status = WF_COMPLETED
        if f[2] then status = WF_FAILED elseif f[3] then status = WF_CANCELLED end
        redis.call('HSET', wk, 'status', status, 'completed_at', ts_s(now))
      end
    end
  end
  WF_ENDED = {}
end
-- Reopening a run when a node is resubmitted from the dead letter queue (dlq_resubmit.lua, and
-- wf_reopen.lua for a node of another queue than its run's). FRESH: the fresh task ids the
-- caller was given for the nodes made anew, taken in order.
local FRESH, FRESH_AT = {}, 1
-- Whether node c's edge from parent p is an error edge.
local function wf_is_error_edge(wk, p, c)
  for _, e in ipairs(cmsgpack.unpack(redis.call('HGET', wk, 'err:' .. p))) do
    if e == c then return true end
  end
  return false
end
local function wf_unend(wk, node)
  if redis.call('HDEL', wk, 'ended:' .. node) == 1 then redis.call('HINCRBY', wk, 'ended', -1) end
end
-- Node c is made anew under a fresh task id (its old task, cancelled without ever starting, stays
-- as it is); its children's parent lists name the new task. False when no fresh id is left.
local function wf_remake(wk, c)
  local fresh = FRESH[FRESH_AT]
  if not fresh then return false end
  FRESH_AT = FRESH_AT + 1
  local row = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. c))
  row[SUBMIT.id] = fresh
  redis.call('HSET', wk, 'row:' .. c, cmsgpack.pack(row))
  redis.call('HDEL', wk, 'made:' .. c)
  wf_unend(wk, c)
  local e = redis.call('HMGET', wk, 'succ:' .. c, 'err:' .. c)
  for _, raw in ipairs({e[1] or '\144', e[2] or '\144'}) do
    for _, child in ipairs(cmsgpack.unpack(raw)) do
      local parents = cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. child))
      for _, p in ipairs(parents) do
        if p[1] == c then p[2] = fresh end
      end
      redis.call('HSET', wk, 'par:' .. child, cmsgpack.pack(parents))
    end
  end
  return true
end
-- Workflow node `node` of run wid runs again: its end is no longer counted (the run is running
-- again, and failed only if another node failed), and every node after it that its failure
-- cancelled before it ever started is made anew and waits for its parents again (a node whose
-- edges another ended node still breaks ends cancelled again, naming it). A node after it that
-- already ran (its error edge) is left as it is. A cancelled run is not reopened.
local function wf_reopen(wid, node, now)
  local wk = K_wf(wid)
  if redis.call('EXISTS', wk) == 0 then
    -- The run lives in another space: it is reopened there (wf_reopen.lua, through the outbox),
    -- before this node's next end is settled (the relay holds that end back until then).
    redis.call('HSET', K_wf_outbox, 'r ' .. wid .. ' ' .. node, '')
    SCHEDULE_CHANGED = true
    return
  end
  local f = redis.call('HMGET', wk, 'ended:' .. node, 'cancel_asked', 'failed_node', 'nodes')
  if not f[1] or f[2] then return end
  wf_unend(wk, node)
  local walk, seen, waiting, i = {node}, {[node] = true}, {}, 1
  while walk[i] do
    local n = walk[i]
    i = i + 1
    local e = redis.call('HMGET', wk, 'succ:' .. n, 'err:' .. n)
    for _, raw in ipairs({e[1] or '\144', e[2] or '\144'}) do
      for _, c in ipairs(cmsgpack.unpack(raw)) do
        if not seen[c] then
          seen[c] = true
          if redis.call('HEXISTS', wk, 'made:' .. c) == 0 then
            waiting[#waiting + 1] = c
          else
            local id = cmsgpack.unpack(redis.call('HGET', wk, 'row:' .. c))[SUBMIT.id]
            local t = redis.call('HMGET', K_task(id), 'status', 'started_at', 'cancel_reason')
            if not t[1] then t = redis.call('HMGET', wk, 'fst:' .. c, 'fsa:' .. c, 'fwhy:' .. c) end
            if t[1] == CANCELLED and not t[2] and string.sub(t[3] or '', 1, 14) == 'workflow node '
              and wf_remake(wk, c) then
              waiting[#waiting + 1] = c
              walk[#walk + 1] = c
            end
          end
        end
      end
    end
  end
  -- Count each waiting node's edges again, from its parents' ends.
  for _, c in ipairs(waiting) do
    local need, why = 0, nil
    for _, p in ipairs(cmsgpack.unpack(redis.call('HGET', wk, 'par:' .. c))) do
      local ended = redis.call('HGET', wk, 'ended:' .. p[1])
      if not ended then
        need = need + 1
      elseif wf_is_error_edge(wk, p[1], c) then
        if ended ~= FAILED and ended ~= STALLED then
          why = why or ('workflow node ' .. p[1] .. ' ended ' .. ended .. ' (its error edge was not taken)')
        end
      elseif ended ~= COMPLETED then
        why = why or ('workflow node ' .. p[1] .. ' ended ' .. ended)
      end
    end
    redis.call('HSET', wk, 'need:' .. c, need)
    if why then wf_make(wk, c, now, why) elseif need == 0 then wf_make(wk, c, now, nil) end
  end
  redis.call('HSET', wk, 'status', WF_RUNNING)
  redis.call('HDEL', wk, 'completed_at')
  if f[3] == node then
    redis.call('HDEL', wk, 'failed_node')
    for _, n in ipairs(cmsgpack.unpack(f[4])) do
      local ended = redis.call('HGET', wk, 'ended:' .. n)
      if ended == FAILED or ended == STALLED then
        redis.call('HSET', wk, 'failed_node', n)
        break
      end
    end
  end
end

-- Publish what the script made ready or scheduled, and write its throughput counts.
local function flush_effects()
  if WF_ENDED[1] then wf_advance(now_ms()) end
  for queue, _ in pairs(FREED) do
    if not WOKEN[queue] and redis.call('ZCARD', K_ready(queue)) > 0 then WOKEN[queue] = true end
  end
  for minute, counts in pairs(COUNTS) do
    local key = K_throughput(fmt(minute))
    for queue, by_status in pairs(counts) do
      for status, n in pairs(by_status) do redis.call('HINCRBY', key, queue .. ':' .. status, n) end
    end
    redis.call('EXPIRE', key, 3600)
  end
  for queue, _ in pairs(WOKEN) do redis.call('PUBLISH', C_wake, queue) end
  if SCHEDULE_CHANGED then redis.call('PUBLISH', C_sched, '1') end
  if TRANSITIONS_AT then
    redis.call('PUBLISH', C_transitions, fmt(TRANSITIONS_AT) .. ' ' .. table.concat(TRANSITIONS, ' '))
  end
  flush_index()
end
