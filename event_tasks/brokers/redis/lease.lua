-- The lease of an ordered service's queue: one consumer at a time (brokers/redis/lease.py).
-- KEYS[1]  the lease key (<queue>␆␖lease)
-- ARGV[1]  'take' (take it, or renew it if this holder has it) or 'release'
-- ARGV[2]  the holder (worker node name and pid)      ARGV[3]  time to live (ms)
-- Returns 1 when this holder has the lease (take) or gave it up (release); else the holder's name.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'release' then
  if holder == ARGV[2] then redis.call('DEL', KEYS[1]) end
  return 1
end
if holder and holder ~= ARGV[2] then
  return holder
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
