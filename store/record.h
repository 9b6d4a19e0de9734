// Consent records as Redis stores them, and the messages that announce
// their changes. Pure: no I/O, no allocation on the request path.
//
//   key      PREFIX "{" subject "}"            (a hash)
//   fields   v        version, a decimal integer, incremented by every write
//            NAME     one per purpose: "1" granted, "0" denied
//            exp      optional unix seconds; at or after it the record is dead
//            erased   optional "1": the customer asked to be forgotten
//            rev      optional: the policy revision the purposes were given
//                     under (absent: 0)
//   channel  "<subject> <v>" after a write; "*" asks every edge to drop its cache
//
// docs/redis-schema.md is the long form, with the Lua script writers use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/purposes.h"

namespace consent {

// The purposes this edge declared, by index (index = bit in PurposeMask).
struct PurposeNames {
    const std::string_view* names = nullptr;
    size_t count = 0;
};

enum class RecordParse : uint8_t {
    ok,         // *out holds the record
    none,       // no fields at all: Redis has no record for the subject
    malformed,  // v, exp or erased is not what the schema says: treat as a store failure
};

// Parses HGETALL's reply: `n` strings, field and value alternating. Fields
// for purposes this edge does not declare are ignored. A purpose field whose
// value is neither "1" nor "0" counts as denied: a malformed field never
// grants anything. A record without `v` has version 0.
RecordParse parse_record(const std::string_view* items, size_t n, const PurposeNames& purposes,
                         Record* out) noexcept;

// The Redis key of a subject's record: prefix + "{" + subject + "}". The
// braces make the subject the Redis Cluster hash tag. Returns the length
// written to `out`, which must hold prefix.size() + subject.size() + 2 bytes.
size_t record_key(std::string_view prefix, std::string_view subject, char* out) noexcept;

struct UpdateMessage {
    bool flush_all = false;       // "*"
    std::string_view subject;     // else: the subject ...
    uint64_t version = 0;         // ... and its new version
};

// Parses a channel message. False for anything else (ignored by edges).
// The subject is everything before the last space: 1..64 printable ASCII.
bool parse_update(std::string_view message, UpdateMessage* out) noexcept;

}  // namespace consent
