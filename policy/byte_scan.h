// Byte searches eight bytes at a time (SWAR). Argument and cookie names
// are a few bytes long: a memchr call costs more than scanning them, and a
// byte-at-a-time loop three compares per byte.
#pragma once

#include <cstdint>
#include <cstring>

namespace consent {
namespace scan {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// The high bit of each byte of w equal to c. Bits above the first match may
// be false positives (borrows), so only the lowest set bit is meaningful.
inline uint64_t bytes_equal(uint64_t w, unsigned char c) noexcept {
    const uint64_t x = w ^ (kOnes * c);
    return (x - kOnes) & ~x & kHighs;
}

inline uint64_t load8(const char* p) noexcept {
    uint64_t w;
    std::memcpy(&w, p, 8);
    return w;  // little-endian: the first byte is the low byte
}

// The first byte in [p, end) equal to a or b, or end.
inline const char* find_either(const char* p, const char* end, char a, char b) noexcept {
    while (end - p >= 8) {
        const uint64_t w = load8(p);
        const uint64_t hit = bytes_equal(w, static_cast<unsigned char>(a)) |
                             bytes_equal(w, static_cast<unsigned char>(b));
        if (hit) return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
    while (p < end && *p != a && *p != b) p++;
    return p;
}

// The first byte in [p, end) equal to a, b or c, or end.
inline const char* find_any3(const char* p, const char* end, char a, char b, char c) noexcept {
    while (end - p >= 8) {
        const uint64_t w = load8(p);
        const uint64_t hit = bytes_equal(w, static_cast<unsigned char>(a)) |
                             bytes_equal(w, static_cast<unsigned char>(b)) |
                             bytes_equal(w, static_cast<unsigned char>(c));
        if (hit) return p + (__builtin_ctzll(hit) >> 3);
        p += 8;
    }
    while (p < end && *p != a && *p != b && *p != c) p++;
    return p;
}

// True when some byte of [p, end) is c.
inline bool contains(const char* p, const char* end, char c) noexcept {
    while (end - p >= 8) {
        if (bytes_equal(load8(p), static_cast<unsigned char>(c))) return true;
        p += 8;
    }
    while (p < end) {
        if (*p++ == c) return true;
    }
    return false;
}

}  // namespace scan
}  // namespace consent
