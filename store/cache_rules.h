// When a cached consent record may be served, and which reads may replace
// it. The rules live here, apart from the shared-memory plumbing, so they
// can be tested alone. A CacheSlot is plain data: it lives in shared memory.
//
// Pub/sub is at-most-once: a message published while an edge is not
// subscribed is lost. So a slot filled before the current subscription
// began (valid_since) can't be trusted, and while there is no subscription
// nothing can.
#pragma once

#include <cstdint>
#include <type_traits>

#include "policy/purposes.h"

namespace consent {

struct CacheSlot {
    uint64_t fetched_ms = 0;   // when the value was read from Redis; 0: never
    uint64_t announced = 0;    // highest version announced on the channel
    bool filled = false;       // a read filled the slot (exists says what it found)
    bool exists = false;       // Redis had a record; false: a negative entry
    bool held_only = false;    // never served: kept only to outrank older reads (slot_may_advance)
    Record record;             // when exists
};
static_assert(std::is_trivially_copyable<CacheSlot>::value, "CacheSlot lives in shared memory");

enum class SlotState : uint8_t {
    fresh,  // serve it
    stale,  // read Redis again
};

struct CacheClock {
    uint64_t now_ms = 0;
    uint64_t ttl_ms = 0;
    bool subscribed = false;     // the channel subscription is up
    uint64_t valid_since_ms = 0; // when the current subscription began
    uint64_t flushed_ms = 0;     // when "*" last dropped the whole cache
};

// Fresh when: filled and not held_only, subscribed, fetched after
// valid_since_ms (strictly: a read of that same millisecond may have been
// answered before the subscription took effect), within ttl (now < fetched
// + ttl), and no newer version was announced since.
SlotState slot_state(const CacheSlot& slot, const CacheClock& clock) noexcept;

// Applies "<subject> <v>": remembers the highest announced version. A slot
// holding an older version becomes stale by that (see slot_state).
void slot_announce(CacheSlot* slot, uint64_t version) noexcept;

// Stores a read: `record` (nullptr when Redis had none) fetched at now_ms,
// which must be when the read was sent, not when its reply came: a reply
// can arrive after a resubscription that followed a lost announcement.
// Refused (false, slot unchanged) when an announced version is newer than
// what was read: a read that raced an update never replaces the newer value.
// A negative read counts as version 0. `held_only`: see slot_may_advance.
bool slot_store(CacheSlot* slot, const Record* record, uint64_t now_ms, bool held_only = false) noexcept;

// Whether the slot holds a newer version than a read returned (`record`
// nullptr: none, version 0), so that the slot, not the read, answers the
// requests that waited for it. A server's versions only grow, so a read
// older than what another read already brought came from a server further
// behind: a replica that lags, or one whose link broke and that this
// worker has not left yet while another worker already has. Serving it
// would take back what the edge already served.
//
// Versions only grow while a server keeps its data, though: one that
// restarts empty, or a replica promoted before it had the last writes,
// starts lower. Both close every connection, so the slot outranks a read
// only if it was read after `since_ms`, when the connection that carried
// the read was begun, and after the last "*" (which may follow a deletion).
// And only within its ttl: past that, nothing cached is served at all.
bool slot_holds_newer(const CacheSlot& slot, const Record* record, const CacheClock& clock,
                      uint64_t since_ms) noexcept;

// How a read from a server other than the one the subscription hears
// (another replica: ngx_http_consent_cache_store) may be stored. Such a
// server may be behind an announced update, so only to move a slot
// forward: a newer version than it holds, so that the edge does not go
// backwards while its workers read different replicas. It never fills an
// empty slot: for a subject without a node, an announcement leaves only a
// time, which such a read may pass while it still has the version before.
enum class Advance : uint8_t {
    no,
    // The slot has heard every announcement of its subject since the
    // subscription began (a servable slot filled after valid_since_ms):
    // an update the read lags behind was announced into the slot, and
    // slot_store refuses the read. It may be served.
    servable,
    // Otherwise (the slot was filled before a resubscription, or is held
    // only itself), an announcement lost in the gap may be newer than the
    // read: it is kept with held_only, never served, and only outranks
    // older reads (slot_holds_newer) until a read of the subscription's
    // own server or of the primary fills the slot again.
    held_only,
};
Advance slot_may_advance(const CacheSlot& slot, const Record* record, const CacheClock& clock) noexcept;

}  // namespace consent
