#include "crypto/xchacha20poly1305.h"

#include <sodium.h>

#include <cstring>

// The tag check's verdict is the one value computed from the key that the
// open may branch on. tests/ct/ builds this file with CONSENT_CT_CHECK and
// runs it under valgrind's memcheck with the key marked undefined: any
// branch or memory address that depends on the key is then an error, and
// this marks the verdict as the public answer it is meant to be.
#if defined(CONSENT_CT_CHECK)
#include <valgrind/memcheck.h>
#define CONSENT_CT_DECLASSIFY(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))
#else
#define CONSENT_CT_DECLASSIFY(p, n) ((void) 0)
#endif

namespace consent {

namespace {

// GCC's and Clang's generic vectors: SSE2 on x86-64, NEON on arm64, and
// plain scalar code where a CPU has neither.
typedef uint32_t Row __attribute__((vector_size(16)));

// ChaCha's words and Poly1305's numbers are little-endian on every CPU.
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

inline uint64_t load64(const uint8_t* p) noexcept {
    uint64_t v;
    std::memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

inline void store64(uint8_t* p, uint64_t v) noexcept {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    std::memcpy(p, &v, sizeof v);
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

const Row kSigma = {0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u};  // "expand 32-byte k"

// The twenty rounds, in place. One out-of-line copy that HChaCha20 and the
// block function share, looped rather than unrolled: 250 bytes of code
// instead of 2 KB, for an instruction cache that is cold on every request.
__attribute__((noinline)) void permute(Row x[4]) noexcept {
    Row a = x[0], b = x[1], c = x[2], d = x[3];
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
    x[0] = a;
    x[1] = b;
    x[2] = c;
    x[3] = d;
}

// Our Poly1305 needs 64 x 64 -> 128-bit products: GCC and Clang have them
// on 64-bit CPUs. CONSENT_NO_INT128 builds the other branch for testing.
#if defined(__SIZEOF_INT128__) && !defined(CONSENT_NO_INT128)

// Poly1305 with the 130-bit numbers in three limbs of 44, 44 and 42 bits,
// so that a limb product fits 128 bits with room for the sums.
constexpr uint64_t kMask44 = (uint64_t{1} << 44) - 1;
constexpr uint64_t kMask42 = (uint64_t{1} << 42) - 1;
constexpr uint64_t kBit128 = uint64_t{1} << 40;  // 2^128, in the top limb
typedef unsigned __int128 Wide;

struct Poly1305 {
    uint64_t r0, r1, r2;  // the clamped key half r
    uint64_t s1, s2;      // r1 and r2 times 20: 2^130 = 5 modulo p, and a limb step is 2^44 = 4 * 2^42
    uint64_t h0, h1, h2;  // the accumulator
    uint64_t pad0, pad1;  // the key half s, added at the end
};

void poly_init(Poly1305& st, const uint8_t key[kPoly1305KeyBytes]) noexcept {
    const uint64_t t0 = load64(key), t1 = load64(key + 8);
    // The clamp (r &= 0x0ffffffc0ffffffc0ffffffc0fffffff) folded into the
    // limb masks.
    st.r0 = t0 & 0xffc0fffffffu;
    st.r1 = ((t0 >> 44) | (t1 << 20)) & 0xfffffc0ffffu;
    st.r2 = (t1 >> 24) & 0x00ffffffc0fu;
    st.s1 = st.r1 * 20;
    st.s2 = st.r2 * 20;
    st.h0 = st.h1 = st.h2 = 0;
    st.pad0 = load64(key + 16);
    st.pad1 = load64(key + 24);
}

// h = (h + block) * r mod 2^130 - 5, for `n` 16-byte blocks, each with
// `top` (2^128 for a whole block) added.
void poly_blocks(Poly1305& st, const uint8_t* m, size_t n, uint64_t top) noexcept {
    const uint64_t r0 = st.r0, r1 = st.r1, r2 = st.r2, s1 = st.s1, s2 = st.s2;
    uint64_t h0 = st.h0, h1 = st.h1, h2 = st.h2;
    for (; n > 0; n--, m += 16) {
        const uint64_t t0 = load64(m), t1 = load64(m + 8);
        h0 += t0 & kMask44;
        h1 += ((t0 >> 44) | (t1 << 20)) & kMask44;
        h2 += (t1 >> 24) | top;
        const Wide d0 = Wide{h0} * r0 + Wide{h1} * s2 + Wide{h2} * s1;
        Wide d1 = Wide{h0} * r1 + Wide{h1} * r0 + Wide{h2} * s2;
        Wide d2 = Wide{h0} * r2 + Wide{h1} * r1 + Wide{h2} * r0;
        // Partly carried: each limb ends at most a little over its width,
        // which the next block's products still fit.
        uint64_t c = static_cast<uint64_t>(d0 >> 44);
        h0 = static_cast<uint64_t>(d0) & kMask44;
        d1 += c;
        c = static_cast<uint64_t>(d1 >> 44);
        h1 = static_cast<uint64_t>(d1) & kMask44;
        d2 += c;
        c = static_cast<uint64_t>(d2 >> 42);
        h2 = static_cast<uint64_t>(d2) & kMask42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= kMask44;
        h1 += c;
    }
    st.h0 = h0;
    st.h1 = h1;
    st.h2 = h2;
}

// The AEAD's way of feeding a part: whole blocks, the last one padded with
// zeros to 16 bytes (and still counted whole).
void poly_padded(Poly1305& st, const uint8_t* m, size_t len) noexcept {
    poly_blocks(st, m, len / 16, kBit128);
    if (len % 16) {
        uint8_t last[16] = {};
        std::memcpy(last, m + len / 16 * 16, len % 16);
        poly_blocks(st, last, 1, kBit128);
    }
}

void poly_finish(Poly1305& st, uint8_t tag[kPoly1305TagBytes]) noexcept {
    uint64_t h0 = st.h0, h1 = st.h1, h2 = st.h2, c;
    // Carry fully, twice round: h is then below 2^130 + a little.
    for (int round = 0; round < 2; round++) {
        c = h1 >> 44;
        h1 &= kMask44;
        h2 += c;
        c = h2 >> 42;
        h2 &= kMask42;
        h0 += c * 5;
        c = h0 >> 44;
        h0 &= kMask44;
        h1 += c;
    }
    // g = h - p = h + 5 - 2^130; keep g unless that borrowed, by masks
    // rather than a branch.
    uint64_t g0 = h0 + 5;
    c = g0 >> 44;
    g0 &= kMask44;
    uint64_t g1 = h1 + c;
    c = g1 >> 44;
    g1 &= kMask44;
    uint64_t g2 = h2 + c - (uint64_t{1} << 42);
    const uint64_t keep_g = (g2 >> 63) - 1;  // all ones when h >= p
    h0 = (h0 & ~keep_g) | (g0 & keep_g);
    h1 = (h1 & ~keep_g) | (g1 & keep_g);
    h2 = (h2 & ~keep_g) | (g2 & keep_g);
    // tag = h + s mod 2^128.
    const uint64_t t0 = st.pad0, t1 = st.pad1;
    h0 += t0 & kMask44;
    c = h0 >> 44;
    h0 &= kMask44;
    h1 += (((t0 >> 44) | (t1 << 20)) & kMask44) + c;
    c = h1 >> 44;
    h1 &= kMask44;
    h2 += (t1 >> 24) + c;
    h2 &= kMask42;
    store64(tag, h0 | (h1 << 44));
    store64(tag + 8, (h1 >> 20) | (h2 << 24));
}

// The AEAD's MAC, fed the way RFC 8439 2.8 feeds it.
struct Mac {
    Poly1305 st;
    void init(const uint8_t key[kPoly1305KeyBytes]) noexcept { poly_init(st, key); }
    void padded(const uint8_t* m, size_t len) noexcept { poly_padded(st, m, len); }
    void block(const uint8_t m[16]) noexcept { poly_blocks(st, m, 1, kBit128); }
    void finish(uint8_t tag[kPoly1305TagBytes]) noexcept { poly_finish(st, tag); }
};

#else

// Without 128-bit products (32-bit CPUs), libsodium's Poly1305.
struct Mac {
    crypto_onetimeauth_poly1305_state st;
    void init(const uint8_t key[kPoly1305KeyBytes]) noexcept { crypto_onetimeauth_poly1305_init(&st, key); }
    void padded(const uint8_t* m, size_t len) noexcept {
        static const uint8_t zeros[16] = {};
        crypto_onetimeauth_poly1305_update(&st, m, len);
        crypto_onetimeauth_poly1305_update(&st, zeros, (16 - len % 16) % 16);
    }
    void block(const uint8_t m[16]) noexcept { crypto_onetimeauth_poly1305_update(&st, m, 16); }
    void finish(uint8_t tag[kPoly1305TagBytes]) noexcept { crypto_onetimeauth_poly1305_final(&st, tag); }
};

#endif  // 128-bit products

}  // namespace

void hchacha20(uint8_t out[kHChaChaOutputBytes], const uint8_t in[kHChaChaInputBytes],
               const uint8_t key[kHChaChaKeyBytes]) noexcept {
    Row x[4] = {kSigma, load_row(key), load_row(key + 16), load_row(in)};
    permute(x);
    // Unlike the block function, HChaCha20 does not add the input back:
    // its output is the first and last rows.
    store_row(out, x[0]);
    store_row(out + 16, x[3]);
}

void chacha20_block(uint8_t out[64], const uint8_t key[32], uint32_t counter, const uint8_t nonce[12]) noexcept {
    uint8_t d[16];
    d[0] = static_cast<uint8_t>(counter);
    d[1] = static_cast<uint8_t>(counter >> 8);
    d[2] = static_cast<uint8_t>(counter >> 16);
    d[3] = static_cast<uint8_t>(counter >> 24);
    std::memcpy(d + 4, nonce, 12);
    const Row in[4] = {kSigma, load_row(key), load_row(key + 16), load_row(d)};
    Row x[4] = {in[0], in[1], in[2], in[3]};
    permute(x);
    for (int i = 0; i < 4; i++) store_row(out + 16 * i, x[i] + in[i]);
}

void poly1305(uint8_t tag[kPoly1305TagBytes], const uint8_t* m, size_t len,
              const uint8_t key[kPoly1305KeyBytes]) noexcept {
#if defined(__SIZEOF_INT128__) && !defined(CONSENT_NO_INT128)
    Poly1305 st;
    poly_init(st, key);
    poly_blocks(st, m, len / 16, kBit128);
    if (len % 16) {
        // A short last block: a 1 byte after the message stands for its
        // 2^(8 * length), instead of 2^128.
        uint8_t last[16] = {};
        std::memcpy(last, m + len / 16 * 16, len % 16);
        last[len % 16] = 1;
        poly_blocks(st, last, 1, 0);
    }
    poly_finish(st, tag);
    sodium_memzero(&st, sizeof st);
#else
    crypto_onetimeauth_poly1305(tag, m, len, key);
#endif
}

bool xchacha20poly1305_open(uint8_t* pt, const uint8_t* ct, size_t ct_len, const uint8_t* ad, size_t ad_len,
                            const uint8_t nonce[kXChaChaNonceBytes], const uint8_t key[32]) noexcept {
    if (ct_len < kPoly1305TagBytes) return false;
    const size_t m_len = ct_len - kPoly1305TagBytes;
    // The message's blocks count from 1 on a 32-bit counter, which must
    // not wrap. This stops one block short of that: far above any token.
    if (m_len > uint64_t{64} * 0xfffffffeu) return false;

    // XChaCha20: HChaCha20 makes a one-off key from the key and the nonce's
    // first 16 bytes; ChaCha20 then runs with 4 zero bytes and the nonce's
    // last 8 as its 12-byte nonce.
    uint8_t subkey[32];
    hchacha20(subkey, nonce, key);
    uint8_t nonce12[12] = {0, 0, 0, 0};
    std::memcpy(nonce12 + 4, nonce + kHChaChaInputBytes, 8);

    // RFC 8439, 2.8: block 0's first 32 bytes are the one-time Poly1305
    // key, over ad | pad | ciphertext | pad | le64(ad) | le64(ciphertext).
    uint8_t block[64];
    chacha20_block(block, subkey, 0, nonce12);
    Mac mac;
    mac.init(block);
    mac.padded(ad, ad_len);
    mac.padded(ct, m_len);
    uint8_t lengths[16];
    store64(lengths, ad_len);
    store64(lengths + 8, m_len);
    mac.block(lengths);
    uint8_t tag[kPoly1305TagBytes];
    mac.finish(tag);
    bool ok = crypto_verify_16(tag, ct + m_len) == 0;  // constant time
    CONSENT_CT_DECLASSIFY(&ok, sizeof ok);

    // Decrypt only what authenticated.
    if (ok) {
        uint32_t counter = 1;
        for (size_t off = 0; off < m_len; off += 64, counter++) {
            chacha20_block(block, subkey, counter, nonce12);
            const size_t n = m_len - off < 64 ? m_len - off : 64;
            for (size_t i = 0; i < n; i++) pt[off + i] = static_cast<uint8_t>(ct[off + i] ^ block[i]);
        }
    }
    sodium_memzero(subkey, sizeof subkey);
    sodium_memzero(block, sizeof block);
    sodium_memzero(&mac, sizeof mac);
    return ok;
}

}  // namespace consent
