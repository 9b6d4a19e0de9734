// Cookie and Set-Cookie headers, as byte ranges.
//
// A Cookie header is "name=value; name2=value2". Pairs are split on ';' and
// leading spaces are skipped. A pair without '=' is taken to be all name
// (browsers differ here, and for stripping the cautious reading wins).
#pragma once

#include <cstddef>
#include <string_view>

#include "policy/segments.h"
#include "policy/strip_rules.h"

namespace consent {

struct CookieRewrite {
    size_t len = 0;      // bytes written to out
    size_t removed = 0;  // pairs removed
    size_t kept = 0;     // pairs kept; 0 means drop the header
};

// Bytes rewrite_cookie_header may write for a header of `header_len` bytes.
// Joining with "; " can outgrow a header written without spaces: removing
// x from "a;b;c;x" gives "a; b; c". Each kept pair of at least one byte
// comes with at least one ';' of its own, hence at most half again.
constexpr size_t cookie_rewrite_max_len(size_t header_len) { return header_len + header_len / 2; }

// Splits one Cookie header once (the extract step): every non-empty pair,
// trimmed, with the purposes `rules` (may be null) give its name, and
// whether that name is `uid_name` (ASCII case-insensitive; may be empty).
// Cookie names are not percent-decoded. False when the arena fails.
bool scan_cookie_header(std::string_view header, const StripRules* rules, std::string_view uid_name,
                        Segments* table, const SegmentArena& arena) noexcept;
// ... and whether it is `choice_name`, the choice cookie (may be empty).
bool scan_cookie_header(std::string_view header, const StripRules* rules, std::string_view uid_name,
                        std::string_view choice_name, Segments* table, const SegmentArena& arena) noexcept;

// The value of the first UID cookie in a scanned header, without the
// blanks around it.
bool uid_value(std::string_view header, const Segments& table, std::string_view* value) noexcept;
// The value of the first choice cookie, the same way.
bool choice_value(std::string_view header, const Segments& table, std::string_view* value) noexcept;

// Writes the scanned header without the pairs `removal` removes into
// `out`, which must hold cookie_rewrite_max_len(header.size()) bytes. Kept
// pairs keep their bytes and order and are joined with "; "; a header
// that loses nothing is copied as it came.
CookieRewrite emit_cookie_header(std::string_view header, const Segments& table, const Removal& removal,
                                 char* out) noexcept;

// What emit_cookie_header() will do for `removal`, without writing: the
// exact length, and the pairs removed and kept. The module sizes the new
// header by it (the bound above is 800 bytes more than a typical rewrite
// of a 1 KB header needs, and the request pool's blocks are 4 KB), and
// drops a header that keeps nothing without writing it.
CookieRewrite plan_cookie_rewrite(std::string_view header, const Segments& table, const Removal& removal) noexcept;

// Adds each cookie name `removal` removes, when listable, to `names`.
void list_removed_cookies(std::string_view header, const Segments& table, const Removal& removal,
                          NameList* names) noexcept;

// The steps in one, for tests and tools (heap memory):
//
// find_cookie: the value of the first cookie named `name`.
bool find_cookie(std::string_view header, std::string_view name, std::string_view* value);

// rewrite_cookie_header: the header without what `policy` removes, into
// `out`; removed names go to `names` if not null.
CookieRewrite rewrite_cookie_header(std::string_view header, const StripPolicy& policy, char* out,
                                    NameList* names);

// The cookie name of a Set-Cookie header value: the bytes before the first
// '=' (or ';' when no '=' comes first), without surrounding spaces and tabs.
std::string_view set_cookie_name(std::string_view value) noexcept;

}  // namespace consent
