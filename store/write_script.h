// The one Lua script every writer of consent records uses (consentctl and
// any application): it changes a record, increments its version and
// announces the new version on the channel, in one atomic step.
//
//   EVAL script 1 KEY CHANNEL SUBJECT MODE [FIELD VALUE ...]
//     KEY      the record key, PREFIX "{" SUBJECT "}" (see record.h)
//     CHANNEL  the update channel (consent_redis_channel)
//     SUBJECT  the subject, as announced: "<SUBJECT> <v>"
//     MODE     "merge": set the given fields, keep the others;
//              "replace": remove every field except v first
//   Returns the new version v.
//
// docs/redis-schema.md publishes this text verbatim; a unit test checks
// that the two stay identical.
#pragma once

namespace consent {

constexpr const char* kWriteScript = R"lua(-- consent record write: KEYS[1] = record key, ARGV[1] = channel,
-- ARGV[2] = subject, ARGV[3] = "merge" or "replace", ARGV[4..] = field, value, ...
local key, channel, subject, mode = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if mode ~= 'merge' and mode ~= 'replace' then
  return redis.error_reply('ERR consent: mode must be merge or replace')
end
if #ARGV % 2 ~= 1 then
  return redis.error_reply('ERR consent: fields and values must come in pairs')
end
for i = 4, #ARGV, 2 do
  if ARGV[i] == 'v' then
    return redis.error_reply('ERR consent: v is set by this script only')
  end
end
-- The increment goes first: if the key is not a hash or v is not an
-- integer it fails before anything was written.
local v = redis.call('HINCRBY', key, 'v', 1)
if mode == 'replace' then
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if field ~= 'v' then redis.call('HDEL', key, field) end
  end
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
-- %d, not plain concatenation: Lua would print a large v as 1e+14.
redis.call('PUBLISH', channel, subject .. ' ' .. string.format('%d', v))
return v
)lua";

}  // namespace consent
