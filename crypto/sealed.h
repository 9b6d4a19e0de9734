// The envelope every token kind shares (token format v1):
//
//   base64url-nopad( version=1 | kind | suite | key id (u16 BE) | nonce | AEAD(pt) | tag )
//   AEAD associated data = the 5 header bytes.
//
// token.h reads the PURL and UID plaintext out of it, choice_token.h the
// CHOICE plaintext. Nothing here allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/key.h"
#include "crypto/keyring.h"

namespace consent {

enum class TokenKind : uint8_t { purl = 1, uid = 2, choice = 3 };
enum class TokenStatus : uint8_t { none, valid, invalid, expired, unknown_key };

const char* token_status_name(TokenStatus s);
const char* token_kind_name(TokenKind k);

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kHeaderBytes = 5;
constexpr size_t kMaxTokenText = 512;  // contract: longer text is invalid without further work
constexpr uint64_t kMaxClockSkew = 300;  // issued_at may be this far ahead of our clock

// The largest plaintext any kind may carry: what keeps a token with the
// longer (24-byte) nonce within kMaxTokenText characters.
constexpr size_t kMaxSealedPlaintext = kMaxTokenText / 4 * 3 - kHeaderBytes - kMaxNonceBytes - kTagBytes;
constexpr size_t kMaxSealedBytes = kHeaderBytes + kMaxNonceBytes + kMaxSealedPlaintext + kTagBytes;

struct TokenHeader {
    uint8_t version = 0;
    TokenKind kind = TokenKind::purl;
    Suite suite = Suite::xchacha20poly1305;
    uint16_t key_id = 0;
};

// A set of kinds, for open_sealed().
constexpr unsigned kind_bit(TokenKind k) { return 1u << static_cast<unsigned>(k); }

// Decodes and authenticates `text`, a token of one of `kinds` (kind_bit()s) of at most `max_text` characters whose plaintext is at most
// `pt_cap` bytes. `hdr` is filled as soon as the header decodes; the
// plaintext goes to `pt`, its length to *pt_len. Returns valid
// (authenticated: the plaintext's own rules are the caller's), invalid or
// unknown_key.
TokenStatus open_sealed(std::string_view text, unsigned kinds, size_t max_text, const KeyRing& ring,
                        TokenHeader* hdr, uint8_t* pt, size_t pt_cap, size_t* pt_len) noexcept;

// Seals `pt` as a token of `kind` with `key`. `nonce` must hold
// nonce_bytes(key.suite()) bytes, or be nullptr for a fresh random nonce.
// Returns the count of chars written to `out`, or 0 when the plaintext is
// over kMaxSealedPlaintext or `cap` too small.
size_t seal_sealed(const Key& key, TokenKind kind, const uint8_t* pt, size_t pt_len, const uint8_t* nonce,
                   char* out, size_t cap) noexcept;

// Big-endian fields of the plaintexts.
inline uint64_t load_be(const uint8_t* p, size_t n) noexcept {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}
inline void store_be(uint8_t* p, size_t n, uint64_t v) noexcept {
    for (size_t i = n; i-- > 0; v >>= 8) p[i] = static_cast<uint8_t>(v);
}

}  // namespace consent
