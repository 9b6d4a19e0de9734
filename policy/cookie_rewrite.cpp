#include "policy/cookie_rewrite.h"

#include <cstring>

namespace consent {

namespace {

constexpr bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

// One ';'-separated pair, already trimmed; empty when the pair is blank.
struct Pair {
    std::string_view text;
    std::string_view name;
};

Pair parse_pair(std::string_view raw) noexcept {
    Pair p;
    p.text = trim(raw);
    p.name = trim(p.text.substr(0, p.text.find('=')));
    return p;
}

// Calls f(pair, offset of the raw pair in s) for every non-empty pair.
template <typename F>
void for_each_pair(std::string_view s, F&& f) noexcept {
    size_t pos = 0;
    while (pos < s.size()) {
        size_t end = s.find(';', pos);
        if (end == std::string_view::npos) end = s.size();
        const Pair p = parse_pair(s.substr(pos, end - pos));
        if (!p.text.empty() && !f(p, pos)) return;
        pos = end + 1;
    }
}

struct Writer {
    char* out;
    size_t len = 0;

    void pair(std::string_view text) noexcept {
        if (len) {
            out[len++] = ';';
            out[len++] = ' ';
        }
        std::memcpy(out + len, text.data(), text.size());
        len += text.size();
    }
};

}  // namespace

bool find_cookie(std::string_view header, std::string_view name, std::string_view* value) noexcept {
    bool found = false;
    for_each_pair(header, [&](const Pair& p, size_t) {
        if (!ascii_iequal(p.name, name)) return true;
        const size_t eq = p.text.find('=');
        // Surrounding blanks are not part of a value (RFC 6265 section 5.2).
        *value = eq == std::string_view::npos ? std::string_view() : trim(p.text.substr(eq + 1));
        found = true;
        return false;
    });
    return found;
}

CookieRewrite rewrite_cookie_header(std::string_view header, const StripPolicy& policy, char* out,
                                    NameList* names) noexcept {
    CookieRewrite r;
    Writer w{out};
    // Nothing is written until the first removal, so an untouched header is
    // copied once, verbatim, and the policy is asked once per pair.
    bool writing = false;
    for_each_pair(header, [&](const Pair& p, size_t offset) {
        if (policy.removes(p.name)) {
            r.removed++;
            if (names && listable_name(p.name)) names->add(p.name);
            if (!writing) {
                writing = true;
                // Every pair before this one was kept.
                for_each_pair(header.substr(0, offset), [&](const Pair& q, size_t) {
                    w.pair(q.text);
                    return true;
                });
            }
            return true;
        }
        r.kept++;
        if (writing) w.pair(p.text);
        return true;
    });
    if (writing) {
        r.len = w.len;
    } else {
        if (!header.empty()) std::memcpy(out, header.data(), header.size());
        r.len = header.size();
    }
    return r;
}

std::string_view set_cookie_name(std::string_view value) noexcept {
    return trim(value.substr(0, value.find_first_of("=;")));
}

}  // namespace consent
