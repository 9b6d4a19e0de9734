#include "crypto/hchacha20.h"

#include <cstring>

namespace consent {

namespace {

// GCC's and Clang's generic vectors: SSE2 on x86-64, NEON on arm64, and
// plain scalar code where a CPU has neither.
typedef uint32_t Row __attribute__((vector_size(16)));

// ChaCha's words are little-endian on every CPU.
inline Row load_row(const uint8_t* p) noexcept {
    Row r;
    std::memcpy(&r, p, sizeof r);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int i = 0; i < 4; i++) r[i] = __builtin_bswap32(r[i]);
#endif
    return r;
}

inline void store_row(uint8_t* p, Row r) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int i = 0; i < 4; i++) r[i] = __builtin_bswap32(r[i]);
#endif
    std::memcpy(p, &r, sizeof r);
}

template <unsigned kBits>
inline Row rotl(Row v) noexcept {
    return (v << kBits) | (v >> (32 - kBits));
}

// By 16, a rotation swaps each word's halves: two shuffles on SSE2 instead
// of two shifts, a copy and an or.
template <>
inline Row rotl<16>(Row v) noexcept {
    typedef uint16_t Halves __attribute__((vector_size(16)));
    const Halves h = reinterpret_cast<Halves>(v);
    return reinterpret_cast<Row>(__builtin_shufflevector(h, h, 1, 0, 3, 2, 5, 4, 7, 6));
}

// Four quarter rounds at once, one per column of the state (a row per
// vector: lane i of a, b, c, d is column i).
inline void quarter_rounds(Row& a, Row& b, Row& c, Row& d) noexcept {
    a += b;
    d = rotl<16>(d ^ a);
    c += d;
    b = rotl<12>(b ^ c);
    a += b;
    d = rotl<8>(d ^ a);
    c += d;
    b = rotl<7>(b ^ c);
}

}  // namespace

void hchacha20(uint8_t out[kHChaChaOutputBytes], const uint8_t in[kHChaChaInputBytes],
               const uint8_t key[kHChaChaKeyBytes]) noexcept {
    Row a = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};  // "expand 32-byte k"
    Row b = load_row(key);
    Row c = load_row(key + 16);
    Row d = load_row(in);
    // Looped, not unrolled: 250 bytes of code instead of 2 KB, for a cold
    // instruction cache.
#pragma GCC unroll 1
    for (int i = 0; i < 10; i++) {
        quarter_rounds(a, b, c, d);
        // The diagonal round is the column round after rotating rows b, c
        // and d left by one, two and three lanes.
        b = __builtin_shufflevector(b, b, 1, 2, 3, 0);
        c = __builtin_shufflevector(c, c, 2, 3, 0, 1);
        d = __builtin_shufflevector(d, d, 3, 0, 1, 2);
        quarter_rounds(a, b, c, d);
        b = __builtin_shufflevector(b, b, 3, 0, 1, 2);
        c = __builtin_shufflevector(c, c, 2, 3, 0, 1);
        d = __builtin_shufflevector(d, d, 1, 2, 3, 0);
    }
    // Unlike ChaCha20's block function, HChaCha20 does not add the input
    // back: its output is the first and last rows.
    store_row(out, a);
    store_row(out + 16, d);
}

}  // namespace consent
