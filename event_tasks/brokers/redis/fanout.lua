-- Publish events to every queue subscribed to their types, atomically, in one round trip.
-- KEYS[1]  the subscription table: kombu's binding set of the `events` exchange
-- ARGV[1]  the queue-name prefix of services ("events.")
-- ARGV[2]  the global key prefix of queue lists ("" unless configured)
-- ARGV[3], ...  per event: its type (routing key); its slots, a string of \1 (where the service
--          name goes: task id, delivery tag) and \2 (where the queue name goes: delivery info),
--          one character per slot; then the message cut at its slots (one more piece than slots)
-- Returns, per event, how many queues got a copy. The table is read once per call and the
-- queues of a type are worked out once; each queue gets one LPUSH of all its copies, in order.
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
local sep = '\6\22'

-- the subscription table, read once per call; each member is "<routing key>\6\22<pattern>\6\22<queue>"
local members = redis.call('SMEMBERS', KEYS[1])

-- the queues of an event type (each once), worked out once per type in a call: a member whose
-- routing key is the type is found by a plain find (no string is made for the others); only
-- routing keys with a wildcard are cut out and matched
local routes = {}
local function queues_of(event_type)
  local found = routes[event_type]
  if found then return found end
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

local pending, order, counts = {}, {}, {}
local i = 3
while i <= #ARGV do
  local targets, kinds = queues_of(ARGV[i]), ARGV[i + 1]
  counts[#counts + 1] = #targets
  if #targets > 0 then
    local copy = copies(kinds, i + 2)
    for _, t in ipairs(targets) do
      local list = pending[t[1]]
      if not list then list = {}; pending[t[1]] = list; order[#order + 1] = t[1] end
      list[#list + 1] = copy(t[1], t[2])
    end
  end
  i = i + 3 + #kinds
end
for _, queue in ipairs(order) do
  redis.call('LPUSH', keyprefix .. queue, unpack(pending[queue]))
end
return counts
