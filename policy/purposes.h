// Purposes, consent records and the per-request decision.
//
// Purposes are the privacy policy's declared uses of personal data
// (service, billing, analysis, marketing, ...). An edge declares at most 32
// of them, so a set of purposes is a 32-bit mask indexed by declaration
// order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace consent {

constexpr size_t kMaxPurposes = 32;
using PurposeMask = uint32_t;

constexpr PurposeMask purpose_bit(unsigned index) { return PurposeMask(1) << index; }

// Where the decision came from, as $consent_source reports it.
enum class Source : uint8_t {
    none,      // no subject: purposes' defaults
    cache,     // a record from the shared-memory cache
    redis,     // a record just read from Redis
    defaults,  // a subject, but no live record (none stored, expired, or no store configured)
    failure,   // the store could not answer in time: consent_on_failure
    cookie,    // no record in force: the answers of a choice cookie of the current revision
};
const char* source_name(Source s);

// A consent record, as stored in Redis (see docs/redis-schema.md).
struct Record {
    uint64_t version = 0;
    PurposeMask granted = 0;  // fields set to "1"
    PurposeMask denied = 0;   // fields set to "0"; purposes in neither take their default
    bool has_exp = false;
    uint64_t exp = 0;         // unix seconds; the record is dead when exp <= now
    bool erased = false;
    uint64_t rev = 0;         // the policy revision it was given under; absent: 0
};

// The answers of a valid choice cookie (crypto/choice_token.h), by purpose.
struct Choices {
    PurposeMask answered = 0;
    PurposeMask granted = 0;  // within answered
    uint64_t revision = 0;
};

// What the lookup step produced for a request with a subject.
enum class LookupOutcome : uint8_t {
    no_store,   // no store configured: the subject has no record
    no_record,  // the store answered: no record
    record,     // the store answered with a record
    failure,    // the store failed or timed out
};

struct DecisionInput {
    PurposeMask declared = 0;    // every declared purpose
    PurposeMask defaults = 0;    // purposes granted by default
    PurposeMask gpc = 0;         // purposes denied by Sec-GPC: 1
    bool sec_gpc = false;        // the request carries Sec-GPC: 1
    bool has_subject = false;
    LookupOutcome outcome = LookupOutcome::no_store;
    Source record_source = Source::redis;  // cache or redis, for no_record and record
    const Record* record = nullptr;        // for outcome == record
    bool failure_uses_defaults = false;    // consent_on_failure default (else deny)
    uint64_t now = 0;
    uint64_t policy_revision = 0;          // consent_policy_revision
    const Choices* choices = nullptr;      // a valid choice cookie, if any
};

struct Decision {
    PurposeMask granted = 0;
    Source source = Source::none;
    bool erased = false;
    bool has_version = false;
    uint64_t version = 0;
    bool reprompt = true;        // no consent of the current revision in force
    bool has_revision = false;   // the revision of the consent in force
    uint64_t revision = 0;
};

// The contract's decision rules 2 to 5 and its choice rules, in one place.
// Each purpose takes the first of: its field in a record in force (live,
// not erased, `rev` at least the policy revision), its answer in a choice
// cookie of the current revision, its default. An erased record denies
// everything, even past its exp: erasure is not undone by a retention
// date, nor by a revision. A store failure gives consent_on_failure. Then
// Sec-GPC: 1 denies the gpc purposes.
Decision decide(const DecisionInput& in) noexcept;

}  // namespace consent
