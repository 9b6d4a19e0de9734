// CHOICE tokens (kind 3): an anonymous visitor's answers to a consent
// banner, in the choice cookie. The envelope is crypto/sealed.h's; the
// plaintext is
//
//   issued_at u64 BE | expires_at u64 BE | revision u32 BE | count u8 (0..32)
//   | count x ( name_len u8 (1..64) | name ([a-z0-9_]) | answer u8 (0 or 1) )
//                                                      (nothing may follow)
//
// Answers name their purposes instead of numbering them, so that an edge
// whose purposes were reordered, added or removed since the cookie was
// made reads every answer as it was given: a name it no longer declares is
// ignored, and a purpose nobody answered takes its default. A name may
// appear once. docs/token-format.md is the long form, with test vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/sealed.h"
#include "policy/purposes.h"

namespace consent {

constexpr size_t kMaxChoiceName = 64;
constexpr size_t kChoiceFixedBytes = 8 + 8 + 4 + 1;

// Plaintext bytes of a CHOICE token answering purposes named `names`:
// what the edge checks against kMaxSealedPlaintext when it is configured.
constexpr size_t choice_plaintext_len(size_t count, size_t total_name_bytes) {
    return kChoiceFixedBytes + count * 2 + total_name_bytes;
}

struct ChoiceClaims {
    uint64_t issued_at = 0;
    uint64_t expires_at = 0;
    uint32_t revision = 0;
    uint8_t count = 0;
    bool granted[kMaxPurposes] = {};
    uint8_t name_len[kMaxPurposes] = {};
    uint16_t name_off[kMaxPurposes] = {};
    char names[kMaxPurposes * kMaxChoiceName] = {};

    std::string_view name(size_t i) const { return {names + name_off[i], name_len[i]}; }
    // Adds an answer; false when the name is not [a-z0-9_]{1,64}, already
    // answered, or there are kMaxPurposes answers already.
    bool add(std::string_view name, bool granted);
};

// A CHOICE token's answers in terms of the purposes this edge declares
// (`names`, index = bit): names it does not declare are ignored.
Choices resolve_choices(const ChoiceClaims& c, const std::string_view* names, size_t count) noexcept;

// Opens a CHOICE token: valid, expired (claims filled), invalid or
// unknown_key, under the same time rules as the other kinds.
TokenStatus open_choice_token(std::string_view text, const KeyRing& ring, uint64_t now, TokenHeader* hdr,
                              ChoiceClaims* claims) noexcept;

// Seals `claims`; the contract of seal_token().
size_t seal_choice_token(const Key& key, const ChoiceClaims& claims, const uint8_t* nonce, char* out,
                         size_t cap) noexcept;

constexpr size_t kMaxChoiceTextOut = kMaxTokenText;

}  // namespace consent
