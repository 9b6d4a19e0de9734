// Byte searches eight bytes at a time (SWAR), or sixteen (SSE2, or two
// words where the CPU has no SSE2).
// Argument and cookie names are a few bytes long and values a few dozen: a
// memchr call costs more than scanning them, and a byte-at-a-time loop
// three compares per byte.
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

// Little-endian loads on every CPU: the first byte is the low byte, which
// is what the bit tricks here (and the strip rules' heads) count on.
template <typename Word>
inline Word load_le(const char* p) noexcept {
    static_assert(sizeof(Word) == 4 || sizeof(Word) == 8, "a 4- or 8-byte word");
    Word w;
    std::memcpy(&w, p, sizeof w);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if constexpr (sizeof(Word) == 8) {
        w = __builtin_bswap64(w);
    } else {
        w = __builtin_bswap32(w);
    }
#endif
    return w;
}

inline uint64_t load8(const char* p) noexcept { return load_le<uint64_t>(p); }
inline uint32_t load4(const char* p) noexcept { return load_le<uint32_t>(p); }

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

// Where a name=value pair ends, as find_pair finds it.
struct PairEnds {
    const char* name_end;  // the first '=' or separator, or end
    const char* end;       // the separator that ends the pair, or end
    bool marked;           // whether `mark` occurs in [p, name_end)
};

// The '=', separator and mark bytes of [q, min(q + 16, end)), bit i for
// q[i]; one byte at a time. For buffers too short for a 16-byte load.
struct Masks16 {
    unsigned eq, sep, mark;
};

inline Masks16 masks16_bytes(const char* q, const char* end, char sep, char mark) noexcept {
    Masks16 m{0, 0, 0};
    const long n = end - q < 16 ? end - q : 16;
    for (long i = 0; i < n; i++) {
        m.eq |= unsigned(q[i] == '=') << i;
        m.sep |= unsigned(q[i] == sep) << i;
        m.mark |= unsigned(q[i] == mark) << i;
    }
    return m;
}

// Bit i: byte i of the 16 bytes lo, hi (little-endian words) is c. Exact,
// unlike bytes_equal: each byte's test cannot borrow from its neighbour.
// The portable block test, for CPUs without SSE2 (Debian's arm64).
inline unsigned equal16_swar(uint64_t lo, uint64_t hi, char c) noexcept {
    constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
    const uint64_t pattern = kOnes * static_cast<unsigned char>(c);
    const auto zero_bytes = [](uint64_t x) {  // high bit of each zero byte
        return ~(((x & kLow7) + kLow7) | x | kLow7);
    };
    // the eight high bits, gathered into the top byte: no two partial
    // products land on one bit, so nothing carries
    const auto gather = [](uint64_t z) { return static_cast<unsigned>(((z >> 7) * 0x0102040810204080ull) >> 56); };
    return gather(zero_bytes(lo ^ pattern)) | gather(zero_bytes(hi ^ pattern)) << 8;
}

inline Masks16 block16_swar(const char* at, char sep, char mark, bool with_mark) noexcept {
    const uint64_t lo = load8(at), hi = load8(at + 8);
    return Masks16{equal16_swar(lo, hi, '='), equal16_swar(lo, hi, sep), with_mark ? equal16_swar(lo, hi, mark) : 0};
}

// The masks of the 16 bytes at `at`.
template <bool kMark>
inline Masks16 block16(const char* at, char sep, char mark) noexcept {
#if defined(__SSE2__)
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
    const auto equal = [b](char c) {
        return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(c))));
    };
    return Masks16{equal('='), equal(sep), kMark ? equal(mark) : 0};
#else
    return block16_swar(at, sep, mark, kMark);
#endif
}

// The last block of a buffer: its last 16 bytes, the bits before q shifted
// out, so nothing past `end` is read; byte by byte when the whole buffer
// is shorter than that.
template <bool kMark>
inline Masks16 masks16_last(const char* begin, const char* q, const char* end, char sep, char mark) noexcept {
    if (end - begin >= 16) {
        const unsigned shift = static_cast<unsigned>(q - (end - 16));
        const Masks16 m = block16<kMark>(end - 16, sep, mark);
        return Masks16{m.eq >> shift, m.sep >> shift, m.mark >> shift};
    }
    return masks16_bytes(q, end, sep, kMark ? mark : sep);
}

// As masks16_bytes, sixteen bytes at once. begin <= q < end.
template <bool kMark>
inline Masks16 masks16(const char* begin, const char* q, const char* end, char sep, char mark) noexcept {
    if (__builtin_expect(end - q >= 16, 1)) return block16<kMark>(q, sep, mark);
    return masks16_last<kMark>(begin, q, end, sep, mark);
}

// The pair that starts at p in [begin, end): its name ends at the first '='
// or `sep`, and the pair at the first `sep` after that. One pass of 16-byte
// blocks finds both, and (with kMark) whether the name holds `mark`: a
// memchr call per value and a scan per name cost twice as much on a Cookie
// header's short pairs.
template <bool kMark>
[[gnu::always_inline]] inline PairEnds find_pair(const char* begin, const char* p, const char* end, char sep,
                                                 char mark) noexcept {
    PairEnds r{end, end, false};
    const char* q = p;
    for (; q < end; q += 16) {
        const Masks16 m = masks16<kMark>(begin, q, end, sep, mark);
        const unsigned stop = m.eq | m.sep;
        if (stop == 0) {
            r.marked |= kMark && m.mark != 0;
            continue;
        }
        const unsigned i = static_cast<unsigned>(__builtin_ctz(stop));
        r.marked |= kMark && (m.mark & ((1u << i) - 1)) != 0;
        r.name_end = q + i;
        if (!(m.eq >> i & 1)) {
            r.end = r.name_end;  // no value
            return r;
        }
        const unsigned after = m.sep >> i;
        if (after) {
            r.end = r.name_end + __builtin_ctz(after);
            return r;
        }
        break;
    }
    for (q += 16; q < end; q += 16) {
        const unsigned s = masks16<false>(begin, q, end, sep, sep).sep;
        if (s) {
            r.end = q + __builtin_ctz(s);
            return r;
        }
    }
    return r;
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
