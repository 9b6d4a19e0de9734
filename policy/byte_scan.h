// Byte searches eight bytes at a time (SWAR). Argument and cookie names
// are a few bytes long: a memchr call costs more than scanning them, and a
// byte-at-a-time loop three compares per byte.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// The first q in [from, end) where *q is c1, c2 or c3 and q follows a
// byte s1 or s2, or end. Where the CPU has SSE2 (every x86-64), sixteen
// bytes at a time: a URL with no candidate, the common case, costs about
// one instruction per byte, less than a memchr call per argument.
// begin < from: the byte before `from` is read.
inline const char* find_start(const char* from, const char* end, char s1, char s2, char c1, char c2,
                              char c3) noexcept {
    const char* q = from;
#if defined(__SSE2__)
    if (end - q >= 16) {
        const __m128i w1 = _mm_set1_epi8(s1), w2 = _mm_set1_epi8(s2), v1 = _mm_set1_epi8(c1),
                      v2 = _mm_set1_epi8(c2), v3 = _mm_set1_epi8(c3);
        const char* const last = end - 16;
        for (;;) {
            const __m128i cur = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
            const __m128i prev = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q - 1));
            const __m128i c = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(cur, v1), _mm_cmpeq_epi8(cur, v2)),
                                           _mm_cmpeq_epi8(cur, v3));
            const __m128i s = _mm_or_si128(_mm_cmpeq_epi8(prev, w1), _mm_cmpeq_epi8(prev, w2));
            const unsigned m = static_cast<unsigned>(_mm_movemask_epi8(_mm_and_si128(c, s)));
            if (m) return q + __builtin_ctz(m);
            if (q == last) return end;
            // the last block may overlap the one before: it finds nothing
            // there that this one did not
            q = (last - q >= 16) ? q + 16 : last;
        }
    }
#endif
    for (; q < end; q++) {
        if ((q[-1] == s1 || q[-1] == s2) && (*q == c1 || *q == c2 || *q == c3)) return q;
    }
    return end;
}

}  // namespace scan
}  // namespace consent
