#include "policy/query_rewrite.h"

#include <cstring>

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

    explicit ArgName(std::string_view raw) noexcept {
        // Most names have nothing to decode: use them in place.
        if (!scan::contains(raw.data(), raw.data() + raw.size(), '%')) {
            decoded = raw;
            complete = true;
            return;
        }
        decoded = std::string_view(buf, decode_prefix(raw, buf, sizeof buf, &complete));
    }
};

// Calls f(segment, raw name) for every non-empty '&'-separated segment, in
// one pass: the name is scanned in place, the value skipped with memchr.
template <typename F>
void for_each_segment(std::string_view query, F&& f) noexcept {
    const char* p = query.data();
    const char* const end = p + query.size();
    while (p < end) {
        const char* const start = p;
        p = scan::find_either(p, end, '=', '&');
        const char* const name_end = p;
        if (p < end && *p == '=') {
            const void* amp = std::memchr(p, '&', static_cast<size_t>(end - p));
            p = amp ? static_cast<const char*>(amp) : end;
        }
        if (p > start &&
            !f(std::string_view(start, static_cast<size_t>(p - start)),
               std::string_view(start, static_cast<size_t>(name_end - start))))
            return;
        p++;  // the '&', or past the end
    }
}

bool removes_arg(std::string_view raw, const StripPolicy& policy, NameList* names) noexcept {
    const ArgName name(raw);
    // The raw form is checked too for a name too long to decode whole: the
    // cautious reading, as a pattern may have been written encoded.
    const bool removed = policy.removes(name.decoded) || (!name.complete && policy.removes(raw));
    if (removed && names) {
        if (name.complete && listable_name(name.decoded)) {
            names->add(name.decoded);
        } else if (listable_name(raw)) {
            names->add(raw);
        }
    }
    return removed;
}

}  // namespace

long percent_decode(std::string_view in, char* out, size_t cap) noexcept {
    bool complete;
    const size_t n = decode_prefix(in, out, cap, &complete);
    return complete ? static_cast<long>(n) : -1;
}

bool find_query_arg(std::string_view query, std::string_view name, std::string_view* raw_value) noexcept {
    const char first = name.empty() ? '\0' : ascii_lower(name[0]);
    bool found = false;
    for_each_segment(query, [&](std::string_view seg, std::string_view raw) {
        // Most names are turned down by their first byte: it must be the
        // name's own (in either case), or a '%' that may decode to it.
        if (!name.empty() && (raw.empty() || (raw[0] != '%' && ascii_lower(raw[0]) != first))) return true;
        const ArgName decoded(raw);
        const std::string_view n = decoded.complete ? decoded.decoded : raw;
        if (n.size() != name.size() || !ascii_iequal(n, name)) return true;
        *raw_value = raw.size() < seg.size() ? seg.substr(raw.size() + 1) : std::string_view();
        found = true;
        return false;
    });
    return found;
}

QueryRewrite rewrite_query(std::string_view query, const StripPolicy& policy, char* out, NameList* names) noexcept {
    QueryRewrite r;
    for_each_segment(query, [&](std::string_view seg, std::string_view raw) {
        if (removes_arg(raw, policy, names)) {
            r.removed++;
            return true;
        }
        // Kept segments joined by one '&' never outgrow the query.
        if (r.len) out[r.len++] = '&';
        std::memcpy(out + r.len, seg.data(), seg.size());
        r.len += seg.size();
        return true;
    });
    if (r.removed == 0) {
        // Nothing removed: the query goes on exactly as it came, empty
        // segments and all.
        if (!query.empty()) std::memcpy(out, query.data(), query.size());
        r.len = query.size();
    }
    return r;
}

}  // namespace consent
