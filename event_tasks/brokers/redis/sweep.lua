-- Put back in-flight messages whose delivery tag is in no unacked hash after the grace period
-- (their consumer died between the BLMOVE and tracking them; see transport.py).
-- KEYS[1]  the queue's in-flight list        KEYS[2]  the service's unacked hash
-- KEYS[3]  when each in-flight item was first seen (tag -> time)
-- KEYS[4]  the queue (where an unclaimed item goes back)
-- ARGV[1]  now (seconds)                     ARGV[2]  the grace period (seconds)
-- Returns the number of items put back.
local now, grace = tonumber(ARGV[1]), tonumber(ARGV[2])
local restored = 0
for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  -- Its delivery tag, read as take.lua reads it; an item that is not a kombu message (one the
  -- consumer could not record as a dead letter) is keyed by itself, and goes back all the same.
  local ok, message = pcall(cjson.decode, item)
  local properties = ok and type(message) == 'table' and message['properties']
  local tag = type(properties) == 'table' and properties['delivery_tag']
  if type(tag) ~= 'string' then tag = nil end
  if tag and redis.call('HEXISTS', KEYS[2], tag) == 1 then
    redis.call('LREM', KEYS[1], 1, item)
    redis.call('HDEL', KEYS[3], tag)
  else
    tag = tag or item
    local seen = redis.call('HGET', KEYS[3], tag)
    if not seen then
      redis.call('HSET', KEYS[3], tag, now)
    elseif now - tonumber(seen) >= grace then
      redis.call('LREM', KEYS[1], 1, item)
      redis.call('RPUSH', KEYS[4], item)
      redis.call('HDEL', KEYS[3], tag)
      restored = restored + 1
    end
  end
end
return restored
