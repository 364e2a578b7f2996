-- Take up to ARGV[2] messages from the queue straight into unacked, in one atomic step, each
-- tracked as kombu's QoS would track it (the unacked entry is [message, exchange, routing_key],
-- the index score the time taken, a step of 10 µs apart in the order taken, so a restore
-- after a crash gives them back in that order); first, if ARGV[3] is '1', the message a BLMOVE took (ARGV[4],
-- moved out of in-flight). Before that, the acknowledgements the worker holds (ARGV[5..]): their
-- deliveries leave unacked and its index, as kombu's ack does.
-- KEYS[1]  the queue                         KEYS[2]  its in-flight list (where a BLMOVE put ARGV[4])
-- KEYS[3]  the service's unacked hash        KEYS[4]  its unacked index (sorted set)
-- ARGV[1]  now (seconds)   ARGV[2]  how many to take in all   ARGV[3]  '1': ARGV[4] is a BLMOVE's item
-- ARGV[4]  the item the BLMOVE took (or '')  ARGV[5..]  delivery tags acknowledged
-- Returns {taken, unreadable}: the items tracked, and those that are not kombu messages.
local now, count, moved, first = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
local order = 0
for i = 5, #ARGV do
  redis.call('ZREM', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
-- A queue item that is not a kombu message stays in in-flight, returned apart: the consumer
-- records it as a dead letter, then removes it (or the sweep puts it back if that fails).
local function track(item)
  local ok, message = pcall(cjson.decode, item)
  local properties = ok and type(message) == 'table' and message['properties']
  local tag = type(properties) == 'table' and properties['delivery_tag']
  if type(tag) ~= 'string' then return false end
  local info = properties['delivery_info']
  if type(info) ~= 'table' then info = {} end
  redis.call('HSET', KEYS[3], tag, '[' .. item .. ',' .. cjson.encode(info['exchange'] or '') .. ','
             .. cjson.encode(info['routing_key'] or '') .. ']')
  redis.call('ZADD', KEYS[4], string.format('%.6f', now + order * 0.00001), tag)
  order = order + 1
  return true
end
local taken, unreadable = {}, {}
if moved then
  count = count - 1
  if track(first) then
    redis.call('LREM', KEYS[2], 1, first)
    taken[#taken + 1] = first
  else
    unreadable[#unreadable + 1] = first
  end
end
for _ = 1, count do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  if track(item) then
    taken[#taken + 1] = item
  else
    redis.call('LPUSH', KEYS[2], item)
    unreadable[#unreadable + 1] = item
  end
end
return {taken, unreadable}
