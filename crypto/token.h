// Token format v1: personalized-URL tokens (PURL) and visitor-ID cookies (UID).
//
//   the envelope of crypto/sealed.h, kind 1 or 2, and
//   plaintext = issued_at u64 BE | expires_at u64 BE | subject_len u8 (1..64) | subject
//               | campaign_len u8 (0..64) | campaign          (nothing may follow)
//
// docs/token-format.md is the long form, with test vectors.
// Nothing here allocates: opening a token works on stack buffers only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/key.h"
#include "crypto/keyring.h"
#include "crypto/sealed.h"

namespace consent {

constexpr size_t kMaxSubject = 64;
constexpr size_t kMaxCampaign = 64;
constexpr size_t kMinPlaintext = 8 + 8 + 1 + 1 + 1;
constexpr size_t kMaxPlaintext = 8 + 8 + 1 + kMaxSubject + 1 + kMaxCampaign;
constexpr size_t kMaxTokenBytes = kHeaderBytes + kMaxNonceBytes + kMaxPlaintext + kTagBytes;

struct TokenClaims {
    uint64_t issued_at = 0;
    uint64_t expires_at = 0;
    uint8_t subject_len = 0;
    uint8_t campaign_len = 0;
    char subject[kMaxSubject] = {};
    char campaign[kMaxCampaign] = {};

    std::string_view subject_view() const { return {subject, subject_len}; }
    std::string_view campaign_view() const { return {campaign, campaign_len}; }
    // False when subject or campaign would not fit the format.
    bool set(std::string_view subj, std::string_view camp);
};

// What to accept: a PURL argument must hold a PURL token, a UID cookie a UID
// token, a choice cookie a CHOICE token (choice_token.h). `any` (PURL or
// UID) is for inspection tools only.
enum class ExpectKind : uint8_t { purl = 1, uid = 2, choice = 3, any = 0 };

// Opens `text`. `hdr` is filled as soon as the header decodes (so tools can
// report the key id of an unknown_key token); `claims` only when the result
// is valid or expired. Never returns `none`: absence is the caller's call.
TokenStatus open_token(std::string_view text, ExpectKind expect, const KeyRing& ring, uint64_t now,
                       TokenHeader* hdr, TokenClaims* claims) noexcept;

// Seals a token with `key`. `nonce` must hold nonce_bytes(key.suite()) bytes,
// or be nullptr for a fresh random nonce. Writes at most
// base64url_encoded_len(kMaxTokenBytes) chars to `out` and returns the
// count, or 0 when the claims do not fit the format or `cap` is too small.
size_t seal_token(const Key& key, TokenKind kind, const TokenClaims& claims, const uint8_t* nonce, char* out,
                  size_t cap) noexcept;

constexpr size_t kMaxTokenTextOut = kMaxTokenBytes / 3 * 4 + 4;

}  // namespace consent
