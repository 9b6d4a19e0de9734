#include "policy/cookie_rewrite.h"

#include <cstring>

#include "policy/byte_scan.h"

namespace consent {

namespace {

constexpr bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

// One ';'-separated pair, already trimmed; never empty.
struct Pair {
    std::string_view text;
    std::string_view name;
};

// Calls f(pair, offset of the raw pair in s) for every non-empty pair, in
// one pass over the bytes: names are short and scanned in place, values
// are skipped with memchr.
template <typename F>
void for_each_pair(std::string_view s, F&& f) noexcept {
    const char* const base = s.data();
    const char* const end = base + s.size();
    const char* p = base;
    while (p < end) {
        const char* const raw = p;
        while (p < end && is_blank(*p)) p++;
        const char* const start = p;
        p = scan::find_either(p, end, '=', ';');
        const char* name_end = p;
        if (p < end && *p == '=') {
            const void* semi = std::memchr(p, ';', static_cast<size_t>(end - p));
            p = semi ? static_cast<const char*>(semi) : end;
        }
        const char* text_end = p;
        while (text_end > start && is_blank(text_end[-1])) text_end--;
        while (name_end > start && is_blank(name_end[-1])) name_end--;
        if (text_end > start) {
            const Pair pair{std::string_view(start, static_cast<size_t>(text_end - start)),
                            std::string_view(start, static_cast<size_t>(name_end - start))};
            if (!f(pair, static_cast<size_t>(raw - base))) return;
        }
        p++;  // the ';', or past the end
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
        if (p.name.size() != name.size() || !ascii_iequal(p.name, name)) return true;
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
