#include "policy/query_rewrite.h"

#include <cstring>

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
        if (raw.find('%') == std::string_view::npos) {
            decoded = raw;
            complete = true;
            return;
        }
        decoded = std::string_view(buf, decode_prefix(raw, buf, sizeof buf, &complete));
    }
};

std::string_view segment_name(std::string_view seg) noexcept { return seg.substr(0, seg.find('=')); }

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
    size_t pos = 0;
    while (pos < query.size()) {
        size_t end = query.find('&', pos);
        if (end == std::string_view::npos) end = query.size();
        const std::string_view seg = query.substr(pos, end - pos);
        pos = end + 1;
        if (seg.empty()) continue;
        const std::string_view raw = segment_name(seg);
        const ArgName decoded(raw);
        if (ascii_iequal(decoded.complete ? decoded.decoded : raw, name)) {
            *raw_value = raw.size() < seg.size() ? seg.substr(raw.size() + 1) : std::string_view();
            return true;
        }
    }
    return false;
}

QueryRewrite rewrite_query(std::string_view query, const StripPolicy& policy, char* out, NameList* names) noexcept {
    QueryRewrite r;
    size_t pos = 0;
    while (pos < query.size()) {
        size_t end = query.find('&', pos);
        if (end == std::string_view::npos) end = query.size();
        const std::string_view seg = query.substr(pos, end - pos);
        pos = end + 1;
        if (seg.empty()) continue;
        if (removes_arg(segment_name(seg), policy, names)) {
            r.removed++;
            continue;
        }
        // Kept segments joined by one '&' never outgrow the query.
        if (r.len) out[r.len++] = '&';
        std::memcpy(out + r.len, seg.data(), seg.size());
        r.len += seg.size();
    }
    if (r.removed == 0) {
        // Nothing removed: the query goes on exactly as it came, empty
        // segments and all.
        if (!query.empty()) std::memcpy(out, query.data(), query.size());
        r.len = query.size();
    }
    return r;
}

}  // namespace consent
