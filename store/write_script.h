// The one Lua script every writer of consent records uses (consentctl and
// any application): it changes a record, increments its version and
// announces the new version on the channel, in one atomic step.
//
//   EVAL script 1 KEY CHANNEL SUBJECT MODE [FIELD VALUE ...]
//     KEY      the record key, PREFIX "{" SUBJECT "}" (see record.h)
//     CHANNEL  the update channel (consent_redis_channel)
//     SUBJECT  the subject, as announced: "<SUBJECT> <v>"
//     MODE     "merge": set the given fields, keep the others;
//              "replace": remove every field except v first;
//              "choice": merge, refused on an erased record (the edge's
//              consent_choice endpoint)
//   Fields:    `rev N` drops the purpose fields of a record of an older
//              revision first, and is refused over a newer one;
//              `@deadline MS` (not stored) refuses the write once Redis's
//              clock is past MS unix milliseconds.
//   Returns the new version v.
//
// docs/redis-schema.md publishes this text verbatim; a unit test checks
// that the two stay identical.
#pragma once

namespace consent {

constexpr const char* kWriteScript = R"lua(-- consent record write: KEYS[1] = record key, ARGV[1] = channel,
-- ARGV[2] = subject, ARGV[3] = "merge", "replace" or "choice",
-- ARGV[4..] = field, value, ...
local key, channel, subject, mode = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if mode ~= 'merge' and mode ~= 'replace' and mode ~= 'choice' then
  return redis.error_reply('ERR consent: mode must be merge, replace or choice')
end
if #ARGV % 2 ~= 1 then
  return redis.error_reply('ERR consent: fields and values must come in pairs')
end
local fields, rev, deadline = {}, nil, nil
for i = 4, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  if field == 'v' then
    return redis.error_reply('ERR consent: v is set by this script only')
  elseif field == '@deadline' then
    if not value:match('^%d+$') then
      return redis.error_reply('ERR consent: @deadline must be unix milliseconds')
    end
    deadline = tonumber(value)
  else
    if field == 'rev' then
      if not value:match('^%d+$') then
        return redis.error_reply('ERR consent: rev must be a non-negative integer')
      end
      rev = tonumber(value)
    end
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
end
-- A change that arrives after its writer gave up (and told its client
-- so) must not happen: the deadline is checked against Redis's own clock.
if deadline then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > deadline then
    return redis.error_reply('ERR consent: deadline passed, nothing written')
  end
end
-- These reads fail, before anything is written, on a key that is not a hash.
if mode == 'choice' and redis.call('HGET', key, 'erased') == '1' then
  return redis.error_reply('ERR consent: erased')
end
local drop_purposes = false
if rev then
  local old = tonumber(redis.call('HGET', key, 'rev') or '0') or 0
  if rev < old then
    return redis.error_reply('ERR consent: the record is of a newer policy revision')
  end
  -- Consent given under an older policy never comes back.
  drop_purposes = rev > old
end
-- The increment goes first among the writes: if v is not an integer it
-- fails before anything was written.
local v = redis.call('HINCRBY', key, 'v', 1)
if mode == 'replace' or drop_purposes then
  local keep = { v = true }
  if mode ~= 'replace' then
    keep.exp, keep.erased, keep.rev = true, true, true
  end
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if not keep[field] then redis.call('HDEL', key, field) end
  end
end
for i = 1, #fields, 2 do
  redis.call('HSET', key, fields[i], fields[i + 1])
end
-- %d, not plain concatenation: Lua would print a large v as 1e+14.
redis.call('PUBLISH', channel, subject .. ' ' .. string.format('%d', v))
return v
)lua";

}  // namespace consent
