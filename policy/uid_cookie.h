// The visitor-ID cookie: when to set or clear it (contract rule 8), and its
// Set-Cookie text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace consent {

enum class SameSite : uint8_t { lax, strict, none };

struct UidCookieAttrs {
    std::string_view name;
    std::string_view domain;  // empty: no Domain attribute
    std::string_view path;    // default "/"
    uint64_t max_age = 180 * 86400;
    SameSite samesite = SameSite::lax;
    bool secure = true;
};

enum class UidAction : uint8_t { none, set, clear };

struct UidFacts {
    bool subject_from_purl = false;     // a valid PURL token gave the subject
    bool erased = false;
    bool purpose_granted = true;        // the cookie's purpose= is granted, or it has none
    bool carried_cookie = false;        // the request carried the UID cookie (any status)
    bool carried_valid_same = false;    // ... and it was a valid UID token for the same subject
};

// Rule 8: set a fresh cookie after a PURL visit unless erased, not allowed,
// or already carried; clear a carried cookie when erased or not allowed.
UidAction uid_action(const UidFacts& f) noexcept;

// Longest Set-Cookie value format_set_cookie writes for a value of
// `value_len` bytes.
size_t set_cookie_max_len(const UidCookieAttrs& a, size_t value_len) noexcept;

// "NAME=VALUE; Max-Age=N; Path=P[; Domain=D]; HttpOnly[; Secure]; SameSite=X"
// With clear = true: an empty value and Max-Age=0. Returns the length.
size_t format_set_cookie(const UidCookieAttrs& a, std::string_view value, bool clear, char* out) noexcept;

}  // namespace consent
