-- After a BLMOVE took one message: track it (out of in-flight, into unacked) and take up to ARGV[3]
-- more from the queue, tracked the same way, in one atomic step (each as kombu's QoS would track
-- it: the unacked entry is [message, exchange, routing_key], the index score the time taken).
-- KEYS[1]  the queue                         KEYS[2]  its in-flight list (where the BLMOVE put ARGV[2])
-- KEYS[3]  the service's unacked hash        KEYS[4]  its unacked index (sorted set)
-- ARGV[1]  now (seconds)   ARGV[2]  the item the BLMOVE took   ARGV[3]  how many more to take
-- Returns {taken, unreadable}: the items tracked, and those that are not kombu messages.
local now, first, more = ARGV[1], ARGV[2], tonumber(ARGV[3])
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
  redis.call('ZADD', KEYS[4], now, tag)
  return true
end
local taken, unreadable = {}, {}
if track(first) then
  redis.call('LREM', KEYS[2], 1, first)
  taken[#taken + 1] = first
else
  unreadable[#unreadable + 1] = first
end
for _ = 1, more do
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
