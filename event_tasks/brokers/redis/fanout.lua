-- Publish events to every queue subscribed to their types, atomically, in one round trip.
-- KEYS[1]  the subscription table: kombu's binding set of the `events` exchange
-- KEYS[2]  the routes worked out from it (a hash: event type -> its queues), a cache of ours
-- ARGV[1]  the queue-name prefix of services ("events.")
-- ARGV[2]  the global key prefix of queue lists ("" unless configured)
-- ARGV[3]  how long (microseconds) the routes may be used before they are worked out again
-- ARGV[4]  the archive's retention in milliseconds, or "" (no archive: EVENT_TASKS_ARCHIVE_DAYS)
-- ARGV[5], ...  per event: its type (routing key); its slots, a string of \1 (where the service
--          name goes: task id, delivery tag) and \2 (where the queue name goes: delivery info),
--          one character per slot; then the message cut at its slots (one more piece than slots);
--          with the archive, then its id, its task body and its envelope time
-- KEYS[3]  with the archive: the stream every event is appended to once (XADD, trimmed by MINID ~)
-- Returns, per event, how many queues got a copy. Each queue gets one LPUSH of all its copies, in
-- order.
--
-- Routes: the queues of a type are worked out from the whole table (every member read and
-- matched) once, kept in KEYS[2] and used by every later call while they hold: the cache is
-- dropped when the table's size differs from the size it was worked out from (a binding added or
-- removed by anyone, kombu's SADD/SREM), when the fabric's own tools drop it (they change the
-- table: `topology.invalidate_routes`), and after ARGV[3] (a binding replaced by another one
-- between two sends, by a client that is not ours, which leaves the size as it was).
local function split(s)
  local t, i = {}, 1
  while true do
    local j = string.find(s, '.', i, true)
    if not j then t[#t + 1] = string.sub(s, i); return t end
    t[#t + 1] = string.sub(s, i, j - 1)
    i = j + 1
  end
end

-- AMQP topic semantics: '*' is exactly one word, '#' zero or more.
local function match(p, pi, k, ki)
  if pi > #p then return ki > #k end
  local w = p[pi]
  if w == '#' then
    for x = ki, #k + 1 do
      if match(p, pi + 1, k, x) then return true end
    end
    return false
  end
  if ki > #k then return false end
  if w == '*' or w == k[ki] then return match(p, pi + 1, k, ki + 1) end
  return false
end

local prefix = ARGV[1]
local keyprefix = ARGV[2]
local max_age = tonumber(ARGV[3])
local sep = '\6\22'

-- the routes kept from an earlier call, if the table is still the one they were worked out from
local size = redis.call('SCARD', KEYS[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local kept = redis.call('HMGET', KEYS[2], '\0size', '\0since')
if tonumber(kept[1]) ~= size or not tonumber(kept[2]) or now - tonumber(kept[2]) > max_age then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], '\0size', size, '\0since', now)
end

-- the subscription table, read only when a type's routes are not kept; each member is
-- "<routing key>\6\22<pattern>\6\22<queue>"
local members

-- the queues of an event type (each once), worked out once per type in a call: a member whose
-- routing key is the type is found by a plain find (no string is made for the others); only
-- routing keys with a wildcard are cut out and matched
local routes = {}
-- a type's queues kept as "queue\0service\0queue\0service..." ("" for none)
local function encode(found)
  local flat = {}
  for _, t in ipairs(found) do flat[#flat + 1] = t[1]; flat[#flat + 1] = t[2] end
  return table.concat(flat, '\0')
end
local function decode(text)
  local found, i = {}, 1
  while i <= #text do
    local a = string.find(text, '\0', i, true)
    local b = string.find(text, '\0', a + 1, true) or (#text + 1)
    found[#found + 1] = {string.sub(text, i, a - 1), string.sub(text, a + 1, b - 1)}
    i = b + 1
  end
  return found
end
local function queues_of(event_type)
  local found = routes[event_type]
  if found then return found end
  local text = redis.call('HGET', KEYS[2], event_type)
  if text then
    found = decode(text)
    routes[event_type] = found
    return found
  end
  members = members or redis.call('SMEMBERS', KEYS[1])
  found = {}
  local exact, words, done = event_type .. sep, nil, {}
  for _, member in ipairs(members) do
    local a = string.find(member, sep, 1, true)
    local hit = false
    if a then
      if a == #event_type + 1 and string.find(member, exact, 1, true) == 1 then
        hit = true
      else
        local wild = string.find(member, '[%*#]')
        if wild and wild < a then
          words = words or split(event_type)
          hit = match(split(string.sub(member, 1, a - 1)), 1, words, 1)
        end
      end
    end
    if hit then
      local b = string.find(member, sep, a + 2, true)
      local queue = b and string.sub(member, b + 2) or ''
      if queue ~= '' and not done[queue] then
        done[queue] = true
        local service = queue
        if string.sub(queue, 1, #prefix) == prefix then service = string.sub(queue, #prefix + 1) end
        found[#found + 1] = {queue, service}
      end
    end
  end
  routes[event_type] = found
  redis.call('HSET', KEYS[2], event_type, encode(found))
  return found
end

-- a message's copies: its pieces with each slot filled in, one table.concat per copy
local function copies(kinds, first)
  local parts, slots = {ARGV[first]}, {}
  for k = 1, #kinds do
    parts[#parts + 1] = false
    slots[#parts] = string.byte(kinds, k)
    parts[#parts + 1] = ARGV[first + k]
  end
  return function(queue, service)
    for i, kind in pairs(slots) do
      parts[i] = (kind == 1) and service or queue
    end
    return table.concat(parts)
  end
end

-- the archive: one entry per event (not per copy), the oldest past the retention trimmed (approximately)
local keep = tonumber(ARGV[4])
local extra, minid = 0, nil
if keep then extra = 3; minid = tostring(math.max(0, math.floor(now / 1000) - keep)) end

local pending, order, counts = {}, {}, {}
local i = 5
while i <= #ARGV do
  local targets, kinds = queues_of(ARGV[i]), ARGV[i + 1]
  if keep then
    local a = i + 3 + #kinds
    redis.call('XADD', KEYS[3], 'MINID', '~', minid, '*',
      'type', ARGV[i], 'id', ARGV[a], 'body', ARGV[a + 1], 'time', ARGV[a + 2])
  end
  counts[#counts + 1] = #targets
  if #targets > 0 then
    local copy = copies(kinds, i + 2)
    for _, t in ipairs(targets) do
      local list = pending[t[1]]
      if not list then list = {}; pending[t[1]] = list; order[#order + 1] = t[1] end
      list[#list + 1] = copy(t[1], t[2])
    end
  end
  i = i + 3 + #kinds + extra
end
for _, queue in ipairs(order) do
  redis.call('LPUSH', keyprefix .. queue, unpack(pending[queue]))
end
return counts
