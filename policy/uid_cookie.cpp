#include "policy/uid_cookie.h"

#include <cstring>

namespace consent {

namespace {

// Longest decimal uint64_t: 18446744073709551615.
constexpr size_t kMaxDigits = 20;

std::string_view samesite_text(SameSite s) {
    switch (s) {
    case SameSite::lax: return "Lax";
    case SameSite::strict: return "Strict";
    case SameSite::none: return "None";
    }
    return "Lax";
}

std::string_view path_or_root(const UidCookieAttrs& a) { return a.path.empty() ? std::string_view("/") : a.path; }

struct Writer {
    char* out;
    size_t len = 0;

    void put(std::string_view s) noexcept {
        std::memcpy(out + len, s.data(), s.size());
        len += s.size();
    }
    void put(uint64_t v) noexcept {
        char digits[kMaxDigits];
        size_t n = 0;
        do {
            digits[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v);
        while (n) out[len++] = digits[--n];
    }
};

}  // namespace

UidAction uid_action(const UidFacts& f) noexcept {
    if (f.subject_from_purl && !f.erased && f.purpose_granted) {
        return f.carried_valid_same ? UidAction::none : UidAction::set;
    }
    if (f.carried_cookie && (f.erased || !f.purpose_granted)) return UidAction::clear;
    return UidAction::none;
}

size_t set_cookie_max_len(const UidCookieAttrs& a, size_t value_len) noexcept {
    size_t n = a.name.size() + 1 + value_len;
    n += sizeof "; Max-Age=" - 1 + kMaxDigits;
    n += sizeof "; Path=" - 1 + path_or_root(a).size();
    if (!a.domain.empty()) n += sizeof "; Domain=" - 1 + a.domain.size();
    n += sizeof "; HttpOnly" - 1;
    if (a.secure) n += sizeof "; Secure" - 1;
    n += sizeof "; SameSite=" - 1 + samesite_text(a.samesite).size();
    return n;
}

size_t format_set_cookie(const UidCookieAttrs& a, std::string_view value, bool clear, char* out) noexcept {
    Writer w{out};
    w.put(a.name);
    w.put("=");
    if (!clear) w.put(value);
    w.put("; Max-Age=");
    w.put(clear ? uint64_t(0) : a.max_age);
    w.put("; Path=");
    w.put(path_or_root(a));
    if (!a.domain.empty()) {
        w.put("; Domain=");
        w.put(a.domain);
    }
    w.put("; HttpOnly");
    if (a.secure) w.put("; Secure");
    w.put("; SameSite=");
    w.put(samesite_text(a.samesite));
    return w.len;
}

}  // namespace consent
