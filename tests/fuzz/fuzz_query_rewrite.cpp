// fuzz_query_rewrite: rewrite_query, find_query_arg and percent_decode over
// a fuzzer-chosen query string and strip policy (layout: fuzz_policy.h).
//
// Properties, against a reference written independently:
//   - the output is exactly the kept non-empty arguments, byte for byte, in
//     order, joined by one '&' (so it never holds an argument whose decoded
//     name the policy removes), or the input itself when nothing is removed;
//   - the output is never longer than the input, and rewrite_query writes
//     nothing past query.size() bytes (ASan: an exact-size heap buffer);
//   - `removed` counts the removed arguments; the NameList holds each removed
//     name once (decoded when listable, else raw when listable), and a small
//     NameList never overruns;
//   - find_query_arg agrees with the reference on the input, and finds no
//     removed name in the output;
//   - percent_decode decodes %XX only and fails exactly when `cap` is short;
//   - the same bytes as a Referer URL and as a request line: drop_url_arg
//     removes exactly the token arguments of the query (after the first
//     '?', up to '#' or ' '), keeps every other byte, drops the '?' when
//     nothing of the query is kept, and is the input itself when there is
//     no token argument; url_may_name is never false for a URL whose query
//     holds one.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/query_rewrite.h"
#include "tests/fuzz/fuzz_policy.h"

using namespace consent;
using fuzz::show;

namespace {

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string ref_decode(std::string_view in) {
    std::string o;
    for (size_t i = 0; i < in.size(); i++) {
        if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
            o += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
            i += 2;
        } else {
            o += in[i];
        }
    }
    return o;
}

struct Arg {
    std::string_view seg, raw, value;
    bool has_value;
    std::string decoded;
    bool long_name;  // decodes to more than kMaxArgName + 1 bytes
};

std::vector<Arg> args_of(std::string_view q) {
    std::vector<Arg> v;
    if (q.empty()) return v;
    for (std::string_view seg : fuzz::split(q, '&')) {
        if (seg.empty()) continue;
        Arg a;
        a.seg = seg;
        const size_t eq = seg.find('=');
        a.raw = seg.substr(0, eq);
        a.has_value = eq != std::string_view::npos;
        a.value = a.has_value ? seg.substr(eq + 1) : std::string_view();
        a.decoded = ref_decode(a.raw);
        a.long_name = a.decoded.size() > kMaxArgName + 1;
        v.push_back(std::move(a));
    }
    return v;
}

// A name too long to decode whole is also checked by its raw bytes: the
// cautious reading (query_rewrite.cpp, ArgName).
bool ref_removes(const fuzz::FuzzPolicy& p, const Arg& a) {
    return p.removes(a.decoded) || (a.long_name && p.removes(a.raw));
}

// find_query_arg's name for an argument: decoded, or raw when too long;
// an empty name finds nothing.
bool ref_find(std::string_view q, std::string_view name, std::string_view* value) {
    if (name.empty()) return false;  // no token argument is nameless
    for (const Arg& a : args_of(q)) {
        if (fuzz::iequal(a.long_name ? a.raw : std::string_view(a.decoded), name)) {
            *value = a.value;
            return true;
        }
    }
    return false;
}

// Views into an exact-size heap copy, so ASan sees any read past the end.
struct Buf {
    std::unique_ptr<char[]> p;
    size_t n;
    explicit Buf(std::string_view s) : p(new char[s.size()]), n(s.size()) {
        if (n) std::memcpy(p.get(), s.data(), n);
    }
    std::string_view view() const { return {p.get(), n}; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider fdp(data, size);
    const fuzz::FuzzPolicy fp(fdp);
    const size_t small_cap = fdp.ConsumeIntegralInRange<size_t>(0, 64);
    const size_t decode_cap = fdp.ConsumeIntegralInRange<size_t>(0, 300);
    const Buf qbuf(fdp.ConsumeRemainingBytesAsString());
    // An empty input is passed as a default string_view, {nullptr, 0}, as
    // callers do: UBSan then checks that nothing memcpy()s from it.
    const std::string_view query = qbuf.n ? qbuf.view() : std::string_view();

    // The reference rewrite.
    const std::vector<Arg> args = args_of(query);
    std::string kept;
    size_t removed = 0;
    std::vector<std::string> names;
    for (const Arg& a : args) {
        if (!ref_removes(fp, a)) {
            kept += (kept.empty() ? "" : "&") + std::string(a.seg);
            continue;
        }
        removed++;
        std::string n;
        if (!a.long_name && fuzz::listable(a.decoded))
            n = a.decoded;
        else if (fuzz::listable(a.raw))
            n = std::string(a.raw);
        if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    const std::string_view want = removed ? std::string_view(kept) : query;

    std::unique_ptr<char[]> out(new char[query.size()]);
    std::unique_ptr<char[]> big(new char[query.size() + 1]);
    std::unique_ptr<char[]> small(new char[small_cap]);
    NameList big_list(big.get(), query.size() + 1), small_list(small.get(), small_cap);
    const QueryRewrite r = rewrite_query(query, fp.policy, out.get(), &big_list);
    const std::string_view got(out.get(), r.len);
    FUZZ_CHECK(r.len <= query.size(), "output %zu bytes, input %zu", r.len, query.size());
    FUZZ_CHECK(r.removed == removed, "removed %zu, reference %zu in %s", r.removed, removed, show(query).c_str());
    FUZZ_CHECK(got == want, "rewrite of %s is %s, reference %s", show(query).c_str(), show(got).c_str(),
               show(want).c_str());
    if (removed == 0) FUZZ_CHECK(got == query, "nothing removed, but the query changed");
    for (const Arg& a : args_of(got)) FUZZ_CHECK(!ref_removes(fp, a), "output keeps %s", show(a.seg).c_str());

    std::unique_ptr<char[]> out2(new char[query.size()]);
    const QueryRewrite r2 = rewrite_query(query, fp.policy, out2.get(), &small_list);
    FUZZ_CHECK(r2.len == r.len && r2.removed == r.removed && std::memcmp(out2.get(), out.get(), r.len) == 0,
               "the NameList changed the rewrite");
    const QueryRewrite r3 = rewrite_query(query, fp.policy, out2.get(), nullptr);
    FUZZ_CHECK(r3.len == r.len && r3.removed == r.removed && std::memcmp(out2.get(), out.get(), r.len) == 0,
               "names == nullptr changed the rewrite");
    fuzz::check_names(big_list.view(), names, small_list.view(), small_cap);
    FUZZ_CHECK(big_list.count() == names.size(), "NameList count");

    // find_query_arg, on the input and on the output.
    std::vector<std::string> probes = fp.probe_names();
    if (!args.empty() && !args.front().long_name) probes.push_back(args.front().decoded);
    for (const std::string& name : probes) {
        std::string_view v1, v2;
        const bool f1 = find_query_arg(query, name, &v1), f2 = ref_find(query, name, &v2);
        FUZZ_CHECK(f1 == f2, "find_query_arg(%s, %s) = %d, reference %d", show(query).c_str(), show(name).c_str(),
                   f1, f2);
        if (f1) FUZZ_CHECK(v1 == v2 && v1.data() == v2.data(), "value of %s", show(name).c_str());
        std::string_view v3;
        if (name.size() <= kMaxArgName && fp.removes(name))
            FUZZ_CHECK(!find_query_arg(got, name, &v3), "%s removed but still found in %s", show(name).c_str(),
                       show(got).c_str());
    }

    // The token in a Referer and in a request line.
    if (!fp.always.empty()) {
        for (const UrlText kind : {UrlText::url, UrlText::request_line}) {
            const size_t qm = query.find('?');
            std::string want_url(query);
            size_t want_removed = 0;
            if (qm != std::string_view::npos) {
                const size_t end = query.find(kind == UrlText::url ? '#' : ' ', qm + 1);
                const std::string_view q = query.substr(qm + 1, end == std::string_view::npos ? end : end - qm - 1);
                std::string keep;
                bool token_seen = false;
                for (const Arg& a : args_of(q)) {
                    if (fuzz::iequal(a.long_name ? a.raw : std::string_view(a.decoded), fp.always)) {
                        want_removed++;
                        token_seen = true;
                        continue;
                    }
                    keep += (keep.empty() ? "" : "&") + std::string(a.seg);
                }
                if (token_seen) {
                    FUZZ_CHECK(url_may_name(query, fp.always), "url_may_name missed %s in %s",
                               show(fp.always).c_str(), show(query).c_str());
                    want_url = std::string(query.substr(0, keep.empty() ? qm : qm + 1)) + keep +
                               std::string(query.substr(qm + 1 + q.size()));
                }
            }
            std::unique_ptr<char[]> u(new char[query.size()]);
            const QueryRewrite d = drop_url_arg(query, kind, fp.always, u.get());
            const std::string_view got_url(u.get(), d.len);
            FUZZ_CHECK(d.removed == want_removed && got_url == want_url, "drop_url_arg(%s) = %s (%zu), want %s (%zu)",
                       show(query).c_str(), show(got_url).c_str(), d.removed, show(want_url).c_str(), want_removed);
        }
    }

    // percent_decode: exact-size output buffer.
    const std::string full = ref_decode(query);
    std::unique_ptr<char[]> dec(new char[decode_cap]);
    const long n = percent_decode(query, dec.get(), decode_cap);
    if (full.size() > decode_cap) {
        FUZZ_CHECK(n == -1, "percent_decode into %zu bytes returned %ld (needs %zu)", decode_cap, n, full.size());
    } else {
        FUZZ_CHECK(n == static_cast<long>(full.size()) && std::memcmp(dec.get(), full.data(), full.size()) == 0,
                   "percent_decode(%s)", show(query).c_str());
    }
    return 0;
}
