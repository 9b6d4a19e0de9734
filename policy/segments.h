// A query string or a Cookie header, split once.
//
// The extract step splits the request's query and Cookie headers before the
// decision is known: it must find the token argument and the UID cookie
// anyway, and whose each name is (StripRules::owners) does not depend on
// the decision. The rewrite step and $consent_stripped then read that
// table instead of splitting the same bytes again: one split per request
// instead of three.
#pragma once

#include <cstddef>
#include <cstdint>

#include "policy/purposes.h"

namespace consent {

// One '&'-separated argument or ';'-separated cookie pair, by offsets into
// the bytes that were scanned (which must outlive the table).
struct Segment {
    uint32_t start;      // the argument, or the pair without its blanks
    uint32_t len;
    uint32_t name_len;   // its raw name: [start, start + name_len)
    PurposeMask owners;  // purposes whose patterns claim the name
    uint8_t always;      // always removed: kAlwaysNamed (the token argument or
                         // the UID cookie) or kAlwaysChoice (the choice cookie)
};

constexpr uint8_t kAlwaysNamed = 1;
constexpr uint8_t kAlwaysChoice = 2;

// What the rewrite removes: the token argument or UID cookie when `always`,
// and every segment owned by a purpose in `denied`.
struct Removal {
    bool always = true;
    PurposeMask denied = 0;

    // The rewrite after a decision: the token argument or UID cookie, and
    // whatever `granted` does not cover.
    static Removal after_decision(PurposeMask granted) noexcept { return {true, ~granted}; }

    bool removes(const Segment& s) const noexcept { return (always && s.always) || (s.owners & denied) != 0; }
};

// Where segment tables get memory: nginx's request pool in the module, the
// heap in tests and tools. Returns null on failure.
struct SegmentArena {
    void* (*alloc)(void* arg, size_t bytes) noexcept;
    void* arg;
};

// A growable array in arena memory. Zero bytes are a valid empty table, so
// it may live in memory nginx allocated with ngx_pcalloc.
class Segments {
public:
    // False when the arena failed; the table then holds what fit.
    bool push(const Segment& s, const SegmentArena& arena, size_t size_hint) noexcept {
        if (size_ == cap_ && !grow(arena, size_hint)) return false;
        if (s.always == kAlwaysNamed || s.always == kAlwaysChoice) {
            uint32_t& first = first_[s.always - 1];
            if (first == 0) first = size_ + 1;
        }
        data_[size_++] = s;
        return true;
    }

    // The first segment of an `always` kind, or null: noted while pushing,
    // since the extract step asks on every request.
    const Segment* first(uint8_t kind) const noexcept {
        if (kind != kAlwaysNamed && kind != kAlwaysChoice) return nullptr;
        const uint32_t i = first_[kind - 1];
        return i ? data_ + (i - 1) : nullptr;
    }

    const Segment* begin() const noexcept { return data_; }
    const Segment* end() const noexcept { return data_ + size_; }
    size_t size() const noexcept { return size_; }

private:
    bool grow(const SegmentArena& arena, size_t size_hint) noexcept;

    Segment* data_ = nullptr;
    uint32_t size_ = 0;
    uint32_t cap_ = 0;
    uint32_t first_[2] = {0, 0};  // index + 1 of each kind's first; 0: none
};

// True when `removal` removes some segment of `table`.
inline bool removes_any(const Segments& table, const Removal& removal) noexcept {
    for (const Segment& s : table) {
        if (removal.removes(s)) return true;
    }
    return false;
}

// A heap arena for tests and tools: frees what it handed out when destroyed.
class HeapArena {
public:
    HeapArena() = default;
    HeapArena(const HeapArena&) = delete;
    HeapArena& operator=(const HeapArena&) = delete;
    ~HeapArena();

    SegmentArena arena() noexcept { return {&HeapArena::alloc, this}; }

private:
    static void* alloc(void* self, size_t bytes) noexcept;
    struct Block {
        Block* next;
    };
    Block* blocks_ = nullptr;
};

}  // namespace consent
