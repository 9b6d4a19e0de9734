#include "policy/query_rewrite.h"

#include <cstring>
#include <new>

#include "policy/byte_scan.h"

namespace consent {

namespace {

int hex_value(char ch) noexcept {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// Decodes as much of `in` as fits in `cap` bytes. Returns the bytes written;
// *complete says whether all of `in` was decoded.
size_t decode_prefix(std::string_view in, char* out, size_t cap, bool* complete) noexcept {
    size_t o = 0, i = 0;
    const size_t n = in.size();
    while (i < n) {
        if (o == cap) break;
        if (in[i] == '%' && i + 2 < n) {
            const int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out[o++] = static_cast<char>(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    *complete = i == n;
    return o;
}

// A decoded argument name, on the stack. A name whose decoding does not fit
// keeps its first kMaxArgName + 1 decoded bytes: no configured name (at most
// kMaxArgName bytes) can equal it, and every configured prefix (shorter
// still) matches it exactly when it matches the whole decoded name. So
// `ut%6D_aaa...` cannot escape `utm_*` by being long.
struct ArgName {
    char buf[kMaxArgName + 1];
    std::string_view decoded;
    bool complete = false;

    // `encoded`: whether raw holds a '%' (the scan that split it knows).
    ArgName(std::string_view raw, bool encoded) noexcept {
        // Most names have nothing to decode: use them in place.
        if (!encoded) {
            decoded = raw;
            complete = true;
            return;
        }
        decoded = std::string_view(buf, decode_prefix(raw, buf, sizeof buf, &complete));
    }

    explicit ArgName(std::string_view raw) noexcept
        : ArgName(raw, scan::contains(raw.data(), raw.data() + raw.size(), '%')) {}
};

// Calls f(segment, raw name, whether the name holds a '%') for every
// non-empty '&'-separated segment, in one pass: the name is scanned in
// place (its '%' found on the way to its end), the value skipped with
// memchr.
template <typename F>
void for_each_segment(std::string_view query, F&& f) noexcept {
    const char* p = query.data();
    const char* const end = p + query.size();
    while (p < end) {
        const char* const start = p;
        p = scan::find_any3(p, end, '=', '&', '%');
        const bool encoded = p < end && *p == '%';
        if (encoded) p = scan::find_either(p + 1, end, '=', '&');
        const char* const name_end = p;
        if (p < end && *p == '=') {
            const void* amp = std::memchr(p, '&', static_cast<size_t>(end - p));
            p = amp ? static_cast<const char*>(amp) : end;
        }
        if (p > start &&
            !f(std::string_view(start, static_cast<size_t>(p - start)),
               std::string_view(start, static_cast<size_t>(name_end - start)), encoded))
            return;
        p++;  // the '&', or past the end
    }
}

// The listed form of a removed name: decoded when that is listable, else
// raw when that is, else none (the name is removed but not listed).
void list_name(std::string_view raw, NameList* names) noexcept {
    const ArgName name(raw);
    if (name.complete && listable_name(name.decoded)) {
        names->add(name.decoded);
    } else if (listable_name(raw)) {
        names->add(raw);
    }
}

std::string_view text(std::string_view query, const Segment& s) noexcept { return query.substr(s.start, s.len); }

}  // namespace

long percent_decode(std::string_view in, char* out, size_t cap) noexcept {
    bool complete;
    const size_t n = decode_prefix(in, out, cap, &complete);
    return complete ? static_cast<long>(n) : -1;
}

bool scan_query(std::string_view query, const StripRules* rules, std::string_view token_name, Segments* table,
                const SegmentArena& arena) noexcept {
    // Arguments average 15 to 20 bytes on real URLs.
    const size_t hint = query.size() / 16 + 4;
    bool ok = true;
    for_each_segment(query, [&](std::string_view seg, std::string_view raw, bool encoded) {
        const ArgName name(raw, encoded);
        // A name too long to decode whole is checked raw too: the cautious
        // reading, as a pattern may have been written encoded.
        PurposeMask owners = 0;
        if (rules) {
            owners = rules->owners(name.decoded);
            if (!name.complete) owners |= rules->owners(raw);
        }
        const bool always = !token_name.empty() &&
                            ((name.decoded.size() == token_name.size() && ascii_iequal(name.decoded, token_name)) ||
                             (!name.complete && raw.size() == token_name.size() && ascii_iequal(raw, token_name)));
        const Segment s{static_cast<uint32_t>(seg.data() - query.data()), static_cast<uint32_t>(seg.size()),
                        static_cast<uint32_t>(raw.size()), owners, always};
        ok = table->push(s, arena, hint);
        return ok;
    });
    return ok;
}

bool token_value(std::string_view query, const Segments& table, std::string_view* raw_value) noexcept {
    const Segment* s = first_always(table);
    if (s == nullptr) return false;
    *raw_value = s->len > s->name_len ? query.substr(s->start + s->name_len + 1, s->len - s->name_len - 1)
                                      : std::string_view();
    return true;
}

QueryRewrite emit_query(std::string_view query, const Segments& table, const Removal& removal, char* out) noexcept {
    QueryRewrite r;
    for (const Segment& s : table) {
        if (removal.removes(s)) {
            r.removed++;
            continue;
        }
        // Kept segments joined by one '&' never outgrow the query.
        if (r.len) out[r.len++] = '&';
        std::memcpy(out + r.len, query.data() + s.start, s.len);
        r.len += s.len;
    }
    if (r.removed == 0) {
        // Nothing removed: the query goes on exactly as it came, empty
        // segments and all.
        if (!query.empty()) std::memcpy(out, query.data(), query.size());
        r.len = query.size();
    }
    return r;
}

void list_removed_args(std::string_view query, const Segments& table, const Removal& removal,
                       NameList* names) noexcept {
    for (const Segment& s : table) {
        if (removal.removes(s)) list_name(text(query, s).substr(0, s.name_len), names);
    }
}

bool find_query_arg(std::string_view query, std::string_view name, std::string_view* raw_value) {
    HeapArena heap;
    Segments table;
    if (!scan_query(query, nullptr, name, &table, heap.arena())) throw std::bad_alloc();
    return token_value(query, table, raw_value);
}

QueryRewrite rewrite_query(std::string_view query, const StripPolicy& policy, char* out, NameList* names) {
    HeapArena heap;
    Segments table;
    if (!scan_query(query, policy.rules, policy.always, &table, heap.arena())) throw std::bad_alloc();
    const Removal removal = Removal::after_decision(policy.granted);
    const QueryRewrite r = emit_query(query, table, removal, out);
    if (names) list_removed_args(query, table, removal, names);
    return r;
}

}  // namespace consent
