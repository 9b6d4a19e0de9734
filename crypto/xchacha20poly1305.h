// Opening an XChaCha20-Poly1305 token: HChaCha20, the ChaCha20 block and
// Poly1305, composed as draft-irtf-cfrg-xchacha (section 2.3) and RFC 8439
// (section 2.8) compose them.
//
// Why our own: every token the memo does not hold pays for one open, and
// a forged one pays for nothing else. Through libsodium that was its
// AEAD call after our HChaCha20: a 2 KB ChaCha20 stream function run for
// one block, and SSE2 Poly1305 code called six times on short pieces,
// all cold on each such request. Here the twenty rounds are one looped
// function that HChaCha20 and the ChaCha20 block share, and Poly1305 is
// the 64-bit-limb form, the AEAD's zero padding fed as whole blocks:
// about 900 instructions less per forged token, and about 50 fewer
// instruction-cache misses per request that opens one
// (docs/performance.md).
//
// Only opening is ours. Sealing (Key::seal) stays libsodium's one-shot
// call, so every round trip in the tests checks this code against
// libsodium, and tests/unit/xchacha20poly1305_test.cpp compares each part
// with libsodium's on random and edge-case inputs and the RFC's vectors.
// No branch and no memory access depends on a key, a nonce or a tag.
#pragma once

#include <cstddef>
#include <cstdint>

namespace consent {

constexpr unsigned kHChaChaInputBytes = 16;
constexpr unsigned kHChaChaKeyBytes = 32;
constexpr unsigned kHChaChaOutputBytes = 32;
constexpr unsigned kXChaChaNonceBytes = 24;
constexpr unsigned kPoly1305KeyBytes = 32;
constexpr unsigned kPoly1305TagBytes = 16;

// The same bytes as libsodium's crypto_core_hchacha20(out, in, key, NULL).
void hchacha20(uint8_t out[kHChaChaOutputBytes], const uint8_t in[kHChaChaInputBytes],
               const uint8_t key[kHChaChaKeyBytes]) noexcept;

// One 64-byte ChaCha20 block of RFC 8439 (32-bit counter, 12-byte nonce):
// the keystream libsodium's crypto_stream_chacha20_ietf_xor_ic gives at
// that counter.
void chacha20_block(uint8_t out[64], const uint8_t key[32], uint32_t counter, const uint8_t nonce[12]) noexcept;

// Poly1305 of RFC 8439 over any message: the same tag as libsodium's
// crypto_onetimeauth_poly1305.
void poly1305(uint8_t tag[kPoly1305TagBytes], const uint8_t* m, size_t len,
              const uint8_t key[kPoly1305KeyBytes]) noexcept;

// XChaCha20-Poly1305 (IETF) open: `ct_len` includes the 16-byte tag. Writes
// ct_len - 16 bytes to `pt` only when the tag is right; false otherwise
// (`pt` is then untouched). What libsodium's
// crypto_aead_xchacha20poly1305_ietf_decrypt accepts, and nothing else.
bool xchacha20poly1305_open(uint8_t* pt, const uint8_t* ct, size_t ct_len, const uint8_t* ad, size_t ad_len,
                            const uint8_t nonce[kXChaChaNonceBytes], const uint8_t key[32]) noexcept;

}  // namespace consent
