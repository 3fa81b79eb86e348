-- Count the events of one queue's audit stream in a window, by type and task name (read-only):
-- at most ARGV[5] entries per call, so no call holds Redis long; the caller goes on from the last.
-- KEYS[1]: the space's audit stream.  ARGV[3..]: start id, end id (XRANGE forms), count,
--            task name ('' = any), correlation id ('' = any).
-- Returns {last id examined ('' when the window was read to its end), {type, task name, n, ...}}
local rows = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[4], 'COUNT', tonumber(ARGV[5]))
local name_wanted, corr_wanted = ARGV[6], ARGV[7]
local counts, order = {}, {}
for _, row in ipairs(rows) do
  local f = row[2]
  local kind, name, corr = '', '', ''
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 'y' then kind = f[i + 1] elseif k == 'n' then name = f[i + 1] elseif k == 'c' then corr = f[i + 1] end
  end
  if (name_wanted == '' or name == name_wanted) and (corr_wanted == '' or corr == corr_wanted) then
    local key = kind .. '\0' .. name
    if not counts[key] then counts[key] = 0; order[#order + 1] = {kind, name, key} end
    counts[key] = counts[key] + 1
  end
end
local flat = {}
for _, o in ipairs(order) do
  flat[#flat + 1] = o[1]; flat[#flat + 1] = o[2]; flat[#flat + 1] = counts[o[3]]
end
local last = ''
if #rows >= tonumber(ARGV[5]) then last = rows[#rows][1] end
return {last, flat}
