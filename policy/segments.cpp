#include "policy/segments.h"

#include <cstdlib>
#include <cstring>

namespace consent {

bool Segments::grow(const SegmentArena& arena, size_t size_hint) noexcept {
    // The first block is sized from the bytes to scan, so that most
    // requests allocate once; a pathological "a&a&a..." doubles.
    const size_t cap = cap_ ? size_t(cap_) * 2 : (size_hint < 8 ? 8 : size_hint);
    if (cap > UINT32_MAX) return false;
    auto* grown = static_cast<Segment*>(arena.alloc(arena.arg, cap * sizeof(Segment)));
    if (grown == nullptr) return false;
    if (size_) std::memcpy(grown, data_, size_ * sizeof(Segment));
    data_ = grown;
    cap_ = static_cast<uint32_t>(cap);
    return true;
}

HeapArena::~HeapArena() {
    while (blocks_) {
        Block* next = blocks_->next;
        std::free(blocks_);
        blocks_ = next;
    }
}

void* HeapArena::alloc(void* self, size_t bytes) noexcept {
    auto* arena = static_cast<HeapArena*>(self);
    // The header is padded to a Segment's alignment.
    constexpr size_t kHeader = (sizeof(Block) + alignof(Segment) - 1) / alignof(Segment) * alignof(Segment);
    auto* b = static_cast<Block*>(std::malloc(kHeader + bytes));
    if (b == nullptr) return nullptr;
    b->next = arena->blocks_;
    arena->blocks_ = b;
    return reinterpret_cast<char*>(b) + kHeader;
}

}  // namespace consent
