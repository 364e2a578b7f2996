-- Publish one event to every queue subscribed to its type, atomically, in one round trip.
-- KEYS[1]  the subscription table: kombu's binding set of the `events` exchange
-- ARGV[1]  the event type (routing key)
-- ARGV[2]  the queue-name prefix of services ("events.")
-- ARGV[3]  the global key prefix of queue lists ("" unless configured)
-- ARGV[4]  the message, with \1 where the service name goes (task id, delivery tag) and \2
--          where the queue name goes (delivery info); raw control characters never occur in JSON
-- Returns how many queues got a copy.
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

local event_type = ARGV[1]
local prefix = ARGV[2]
local keyprefix = ARGV[3]
local words = split(event_type)
local sep = '\6\22'
-- Cut the message once at its slots (plain finds: fast); each copy is then one table.concat.
local message = ARGV[4]
local found = {}
for _, ch in ipairs({'\1', '\2'}) do
  local at = string.find(message, ch, 1, true)
  while at do
    found[#found + 1] = at
    at = string.find(message, ch, at + 1, true)
  end
end
table.sort(found)
local parts, slots = {}, {}
local pos = 1
for _, at in ipairs(found) do
  parts[#parts + 1] = string.sub(message, pos, at - 1)
  parts[#parts + 1] = false
  slots[#parts] = string.byte(message, at)
  pos = at + 1
end
parts[#parts + 1] = string.sub(message, pos)
local done, pushed = {}, 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local a = string.find(member, sep, 1, true)
  if a then
    local routing_key = string.sub(member, 1, a - 1)
    local b = string.find(member, sep, a + 2, true)
    local queue = b and string.sub(member, b + 2) or ''
    if queue ~= '' and not done[queue]
       and (routing_key == event_type or match(split(routing_key), 1, words, 1)) then
      done[queue] = true
      local service = queue
      if string.sub(queue, 1, #prefix) == prefix then service = string.sub(queue, #prefix + 1) end
      for i, kind in pairs(slots) do
        parts[i] = (kind == 1) and service or queue
      end
      redis.call('LPUSH', keyprefix .. queue, table.concat(parts))
      pushed = pushed + 1
    end
  end
end
return pushed
