#include "policy/cookie_rewrite.h"

#include <cstring>
#include <new>

#include "policy/byte_scan.h"

namespace consent {

namespace {

// Most bytes tested are not blank, and most are above ' ': one compare.
constexpr bool is_blank(char c) {
    return static_cast<unsigned char>(c) <= ' ' && (c == ' ' || c == '\t');
}

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
// one pass over the bytes (scan::find_pair).
template <typename F>
[[gnu::always_inline]] inline void for_each_pair(std::string_view s, F&& f) noexcept {
    const char* const base = s.data();
    const char* const end = base + s.size();
    const char* p = base;
    while (p < end) {
        const char* const raw = p;
        while (p < end && is_blank(*p)) p++;
        const char* const start = p;
        const scan::PairEnds e = scan::find_pair<false>(base, start, end, ';', ';');
        const char* name_end = e.name_end;
        p = e.end;
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

}  // namespace

bool scan_cookie_header(std::string_view header, const StripRules* rules, std::string_view uid_name,
                        Segments* table, const SegmentArena& arena) noexcept {
    return scan_cookie_header(header, rules, uid_name, std::string_view(), table, arena);
}

bool scan_cookie_header(std::string_view header, const StripRules* rules, std::string_view uid_name,
                        std::string_view choice_name, Segments* table, const SegmentArena& arena) noexcept {
    // Pairs average 40 to 50 bytes in real Cookie headers.
    const size_t hint = header.size() / 32 + 4;
    bool ok = true;
    for_each_pair(header, [&](const Pair& p, size_t) {
        const auto named = [&p](std::string_view n) {
            return !n.empty() && p.name.size() == n.size() && ascii_iequal(p.name, n);
        };
        const uint8_t always = named(uid_name) ? kAlwaysNamed : named(choice_name) ? kAlwaysChoice : 0;
        const Segment s{static_cast<uint32_t>(p.text.data() - header.data()), static_cast<uint32_t>(p.text.size()),
                        static_cast<uint32_t>(p.name.size()), rules ? rules->owners(p.name) : 0, always};
        ok = table->push(s, arena, hint);
        return ok;
    });
    return ok;
}

namespace {

bool always_value(std::string_view header, const Segments& table, uint8_t kind, std::string_view* value) noexcept {
    const Segment* s = table.first(kind);
    if (s == nullptr) return false;
    // The name ends at the first '=' or is the whole pair. Surrounding
    // blanks are not part of a value (RFC 6265 section 5.2).
    const std::string_view pair = header.substr(s->start, s->len);
    const size_t eq = pair.find('=');
    *value = eq == std::string_view::npos ? std::string_view() : trim(pair.substr(eq + 1));
    return true;
}

}  // namespace

bool uid_value(std::string_view header, const Segments& table, std::string_view* value) noexcept {
    return always_value(header, table, kAlwaysNamed, value);
}

bool choice_value(std::string_view header, const Segments& table, std::string_view* value) noexcept {
    return always_value(header, table, kAlwaysChoice, value);
}

CookieRewrite emit_cookie_header(std::string_view header, const Segments& table, const Removal& removal,
                                 char* out) noexcept {
    CookieRewrite r;
    for (const Segment& s : table) {
        if (removal.removes(s)) {
            r.removed++;
            continue;
        }
        r.kept++;
        if (r.len) {
            out[r.len++] = ';';
            out[r.len++] = ' ';
        }
        std::memcpy(out + r.len, header.data() + s.start, s.len);
        r.len += s.len;
    }
    if (r.removed == 0) {
        if (!header.empty()) std::memcpy(out, header.data(), header.size());
        r.len = header.size();
    }
    return r;
}

CookieRewrite plan_cookie_rewrite(std::string_view header, const Segments& table, const Removal& removal) noexcept {
    CookieRewrite r;
    for (const Segment& s : table) {
        if (removal.removes(s)) {
            r.removed++;
            continue;
        }
        r.len += s.len;
        r.kept++;
    }
    if (r.removed == 0) {
        r.len = header.size();
    } else if (r.kept) {
        r.len += 2 * (r.kept - 1);  // the "; " joins
    }
    return r;
}

void list_removed_cookies(std::string_view header, const Segments& table, const Removal& removal,
                          NameList* names) noexcept {
    for (const Segment& s : table) {
        if (!removal.removes(s)) continue;
        const std::string_view name = header.substr(s.start, s.name_len);
        if (listable_name(name)) names->add(name);
    }
}

bool find_cookie(std::string_view header, std::string_view name, std::string_view* value) {
    HeapArena heap;
    Segments table;
    if (!scan_cookie_header(header, nullptr, name, &table, heap.arena())) throw std::bad_alloc();
    return uid_value(header, table, value);
}

CookieRewrite rewrite_cookie_header(std::string_view header, const StripPolicy& policy, char* out,
                                    NameList* names) {
    HeapArena heap;
    Segments table;
    if (!scan_cookie_header(header, policy.rules, policy.always, &table, heap.arena())) throw std::bad_alloc();
    const Removal removal = Removal::after_decision(policy.granted);
    const CookieRewrite r = emit_cookie_header(header, table, removal, out);
    if (names) list_removed_cookies(header, table, removal, names);
    return r;
}

std::string_view set_cookie_name(std::string_view value) noexcept {
    return trim(value.substr(0, value.find_first_of("=;")));
}

}  // namespace consent
