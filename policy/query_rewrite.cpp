#include "policy/query_rewrite.h"

#include <cstring>
#include <string>
#include <new>

#include "policy/byte_scan.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace consent {

namespace {

int hex_value(char ch) noexcept {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

// Decodes as much of `in` as fits in `cap` bytes. Returns the bytes written;
// *complete says whether all of `in` was decoded. Cold: few names and
// tokens hold a '%', and out of line it keeps the split's loop short.
__attribute__((cold, noinline)) size_t decode_prefix(std::string_view in, char* out, size_t cap, bool* complete) noexcept {
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
// non-empty '&'-separated segment, in one pass over the bytes
// (scan::find_pair, which notes the '%' on the way to the name's end).
template <typename F>
[[gnu::always_inline]] inline void for_each_segment(std::string_view query, F&& f) noexcept {
    const char* const begin = query.data();
    const char* const end = begin + query.size();
    const char* p = begin;
    while (p < end) {
        const char* const start = p;
        const scan::PairEnds e = scan::find_pair<true>(begin, start, end, '&', '%');
        const char* const name_end = e.name_end;
        p = e.end;
        if (p > start &&
            !f(std::string_view(start, static_cast<size_t>(p - start)),
               std::string_view(start, static_cast<size_t>(name_end - start)), e.marked))
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
    const Segment* s = table.first(kAlwaysNamed);
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

std::string_view url_query(std::string_view text, UrlText kind) noexcept {
    const size_t q = text.find('?');
    if (q == std::string_view::npos) return {};
    const size_t end = text.find(kind == UrlText::url ? '#' : ' ', q + 1);
    return text.substr(q + 1, end == std::string_view::npos ? std::string_view::npos : end - q - 1);
}

namespace {

// Whether the argument at p, which begins with name's first letter (either
// case), may be named `name`. Apart, so that the scan for such arguments
// keeps its registers: most queries have none.
__attribute__((noinline)) bool may_be_named(const char* p, const char* end, std::string_view name) noexcept {
    // `name` and then the end of a name: '=', '&', the end, or where the
    // query may end ('#', ' '); or a '%' anywhere in the name
    const size_t left = static_cast<size_t>(end - p);
    if (left >= name.size() && ascii_iequal(std::string_view(p, name.size()), name)) {
        const char* const next = p + name.size();
        if (next == end || *next == '=' || *next == '&' || *next == '#' || *next == ' ' || *next == '%') return true;
    }
    return scan::find_pair<true>(p, p, end, '&', '%').marked;  // a '%' in its name
}

// Whether an argument from the candidate p on (a byte after '?' or '&'
// that is name's first letter or '%', see url_may_name) may be named
// `name`. Rarely reached: the scans below tail-call it.
__attribute__((noinline)) bool may_name_from(const char* p, const char* end, std::string_view name) noexcept {
    const char lower = ascii_lower(name[0]), upper = ascii_upper(name[0]);
    while (p < end) {
        if (*p == '%' || may_be_named(p, end, name)) return true;
        p = scan::find_start(p + 1, end, '?', '&', lower, upper, '%');
    }
    return false;
}

// The common case, a URL with no candidate at all, runs no call: the scans
// only tail-call may_name_from when they find one.
bool may_name_sse2(const char* from, const char* end, std::string_view name) noexcept {
    const char* const p = scan::find_start(from, end, '?', '&', ascii_lower(name[0]), ascii_upper(name[0]), '%');
    return p < end && may_name_from(p, end, name);
}

#if defined(__x86_64__) && defined(__GNUC__)
// Thirty-two bytes at a time where the CPU has AVX2 (nearly every x86-64
// server since 2013): a URL without a token costs half as much.
__attribute__((target("avx2"))) bool may_name_avx2(const char* from, const char* end,
                                                    std::string_view name) noexcept {
    if (end - from < 32) return may_name_sse2(from, end, name);
    // a letter matches in either case once bit 0x20 is set ('%' has it)
    const char lower = ascii_lower(name[0]);
    const char fold = lower != ascii_upper(name[0]) ? 0x20 : 0;
    const __m256i w1 = _mm256_set1_epi8('?'), w2 = _mm256_set1_epi8('&'), v1 = _mm256_set1_epi8(lower),
                  vf = _mm256_set1_epi8(fold), v3 = _mm256_set1_epi8('%');
    const char* const last = end - 32;
    const char* q = from;
    for (;;) {
        const __m256i cur = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
        const __m256i prev = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q - 1));
        const __m256i c = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_or_si256(cur, vf), v1), _mm256_cmpeq_epi8(cur, v3));
        const __m256i s = _mm256_or_si256(_mm256_cmpeq_epi8(prev, w1), _mm256_cmpeq_epi8(prev, w2));
        const unsigned m = static_cast<unsigned>(_mm256_movemask_epi8(_mm256_and_si256(c, s)));
        if (m) return may_name_from(q + __builtin_ctz(m), end, name);
        if (q == last) return false;
        q = (last - q >= 32) ? q + 32 : last;  // an overlap finds nothing new
    }
}

// Asked once, when the module is loaded: no guard on every call.
const bool kHasAvx2 = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
#endif

}  // namespace

bool url_may_name(std::string_view text, std::string_view name) noexcept {
    // A raw name that decodes to `name` begins with its first letter, in
    // either case, or with a '%'; an argument begins after the '?' or an
    // '&'. Only such bytes are looked at. The first byte of the text is
    // never one: nothing precedes it.
    if (name.empty() || text.size() < 2) return false;
    const char* const from = text.data() + 1;
    const char* const end = text.data() + text.size();
#if defined(__x86_64__) && defined(__GNUC__)
    if (kHasAvx2) return may_name_avx2(from, end, name);
#endif
    return may_name_sse2(from, end, name);
}

size_t splice_query(std::string_view text, std::string_view query, std::string_view kept, char* out) noexcept {
    // the '?' before the query goes with it when nothing is kept
    const size_t head = static_cast<size_t>(query.data() - text.data()) - (kept.empty() ? 1 : 0);
    const size_t tail_at = static_cast<size_t>(query.data() - text.data()) + query.size();
    std::memmove(out, text.data(), head);
    if (!kept.empty()) std::memmove(out + head, kept.data(), kept.size());
    std::memmove(out + head + kept.size(), text.data() + tail_at, text.size() - tail_at);
    return head + kept.size() + text.size() - tail_at;
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

QueryRewrite drop_url_arg(std::string_view text, UrlText kind, std::string_view name, char* out) {
    const std::string_view query = url_query(text, kind);
    QueryRewrite r;
    if (url_may_name(text, name)) {
        HeapArena heap;
        Segments table;
        if (!scan_query(query, nullptr, name, &table, heap.arena())) throw std::bad_alloc();
        std::string kept(query.size(), '\0');
        r = emit_query(query, table, Removal{}, kept.data());
        if (r.removed) {
            r.len = splice_query(text, query, std::string_view(kept.data(), r.len), out);
            return r;
        }
    }
    if (!text.empty()) std::memcpy(out, text.data(), text.size());
    r.len = text.size();
    r.removed = 0;
    return r;
}

}  // namespace consent
