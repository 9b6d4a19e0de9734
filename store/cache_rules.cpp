#include "store/cache_rules.h"

namespace consent {

namespace {

// The version a slot holds: a negative entry counts as version 0.
uint64_t held_version(const CacheSlot& slot) noexcept { return slot.exists ? slot.record.version : 0; }

}  // namespace

SlotState slot_state(const CacheSlot& slot, const CacheClock& clock) noexcept {
    if (!slot.filled || slot.held_only || !clock.subscribed) return SlotState::stale;
    // Filled before the current subscription began: an announcement may
    // have been lost in the gap. In the very millisecond it began too: the
    // read may have been answered before the subscription took effect.
    if (slot.fetched_ms <= clock.valid_since_ms) return SlotState::stale;
    // now < fetched + ttl, without overflowing near UINT64_MAX. A clock that
    // stepped back (now < fetched) is still within the ttl.
    if (clock.now_ms >= slot.fetched_ms && clock.now_ms - slot.fetched_ms >= clock.ttl_ms) return SlotState::stale;
    if (slot.announced > held_version(slot)) return SlotState::stale;
    return SlotState::fresh;
}

void slot_announce(CacheSlot* slot, uint64_t version) noexcept {
    if (version > slot->announced) slot->announced = version;
}

bool slot_store(CacheSlot* slot, const Record* record, uint64_t now_ms, bool held_only) noexcept {
    const uint64_t read_version = record ? record->version : 0;
    if (read_version < slot->announced) return false;
    slot->filled = true;
    slot->held_only = held_only;
    slot->exists = record != nullptr;
    slot->record = record ? *record : Record{};
    slot->fetched_ms = now_ms;
    return true;
}

bool slot_holds_newer(const CacheSlot& slot, const Record* record, const CacheClock& clock,
                      uint64_t since_ms) noexcept {
    const uint64_t read_version = record ? record->version : 0;
    if (!slot.filled || held_version(slot) <= read_version) return false;
    if (slot.fetched_ms <= clock.flushed_ms || slot.fetched_ms <= since_ms) return false;
    if (clock.now_ms >= slot.fetched_ms && clock.now_ms - slot.fetched_ms >= clock.ttl_ms) return false;
    return true;
}

Advance slot_may_advance(const CacheSlot& slot, const Record* record, const CacheClock& clock) noexcept {
    const uint64_t read_version = record ? record->version : 0;
    if (!slot.filled || read_version <= held_version(slot)) return Advance::no;
    if (!slot.held_only && slot.fetched_ms > clock.valid_since_ms) return Advance::servable;
    return Advance::held_only;
}

}  // namespace consent
