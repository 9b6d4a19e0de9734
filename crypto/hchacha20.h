// HChaCha20, the first step of XChaCha20: it derives a one-off ChaCha20 key
// from the token key and the first 16 bytes of the 24-byte nonce
// (draft-irtf-cfrg-xchacha, section 2.2).
//
// Why our own: libsodium's crypto_core_hchacha20 is its portable scalar
// code, about 1,100 instructions, and every token that is not in the memo
// pays for it, forged ones included. The four rows of the ChaCha state fit
// four 128-bit vectors, which does the same twenty rounds in about 530.
// Only this key derivation is ours: the keystream, Poly1305 and the tag
// check stay libsodium's (crypto_aead_chacha20poly1305_ietf_*), composed
// the way libsodium composes XChaCha20-Poly1305 itself.
#pragma once

#include <cstdint>

namespace consent {

constexpr unsigned kHChaChaInputBytes = 16;
constexpr unsigned kHChaChaKeyBytes = 32;
constexpr unsigned kHChaChaOutputBytes = 32;

// The same bytes as libsodium's crypto_core_hchacha20(out, in, key, NULL).
// Add, rotate and xor only: no branch and no memory access depends on the
// key or the nonce.
void hchacha20(uint8_t out[kHChaChaOutputBytes], const uint8_t in[kHChaChaInputBytes],
               const uint8_t key[kHChaChaKeyBytes]) noexcept;

}  // namespace consent
