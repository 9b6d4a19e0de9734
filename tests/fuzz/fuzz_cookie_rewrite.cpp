// fuzz_cookie_rewrite: rewrite_cookie_header and find_cookie over a
// fuzzer-chosen Cookie header and strip policy (layout: fuzz_policy.h).
//
// Properties, against a reference written independently:
//   - the output is exactly the kept non-empty pairs (trimmed of spaces and
//     tabs), byte for byte, in order, joined by "; " (so it never holds a
//     pair whose name the policy removes), or the header itself when nothing
//     is removed;
//   - the output is never longer than cookie_rewrite_max_len(input), and
//     nothing is written past it (ASan: an exact-size heap buffer);
//   - plan_cookie_rewrite, which the module allocates by, gives the
//     output's exact length and the same counts;
//   - `removed` and `kept` count the pairs; kept == 0 exactly when no
//     non-empty pair remains in the output;
//   - the NameList holds each removed listable name once, and a small
//     NameList never overruns;
//   - find_cookie agrees with the reference on the input, and finds no
//     removed name in the output.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/cookie_rewrite.h"
#include "tests/fuzz/fuzz_policy.h"

using namespace consent;
using fuzz::show;

namespace {

bool blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && blank(s.back())) s.remove_suffix(1);
    return s;
}

struct Pair {
    std::string_view text, name, value;
};

std::vector<Pair> pairs_of(std::string_view h) {
    std::vector<Pair> v;
    if (h.empty()) return v;
    for (std::string_view raw : fuzz::split(h, ';')) {
        Pair p;
        p.text = trim(raw);
        if (p.text.empty()) continue;
        const size_t eq = p.text.find('=');
        p.name = trim(p.text.substr(0, eq));
        p.value = eq == std::string_view::npos ? std::string_view() : trim(p.text.substr(eq + 1));
        v.push_back(p);
    }
    return v;
}

bool ref_find(std::string_view h, std::string_view name, std::string_view* value) {
    if (name.empty()) return false;  // no UID cookie is nameless
    for (const Pair& p : pairs_of(h)) {
        if (fuzz::iequal(p.name, name)) {
            *value = p.value;
            return true;
        }
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider fdp(data, size);
    const fuzz::FuzzPolicy fp(fdp);
    const size_t small_cap = fdp.ConsumeIntegralInRange<size_t>(0, 64);
    const std::string input = fdp.ConsumeRemainingBytesAsString();
    std::unique_ptr<char[]> hbuf(new char[input.size()]);
    if (!input.empty()) std::memcpy(hbuf.get(), input.data(), input.size());
    // An empty input is passed as a default string_view, {nullptr, 0}, as
    // callers do: UBSan then checks that nothing memcpy()s from it.
    const std::string_view header = input.empty() ? std::string_view() : std::string_view(hbuf.get(), input.size());

    const std::vector<Pair> pairs = pairs_of(header);
    std::string kept;
    size_t removed = 0, kept_n = 0;
    std::vector<std::string> names;
    for (const Pair& p : pairs) {
        if (!fp.removes(p.name)) {
            kept += (kept.empty() ? "" : "; ") + std::string(p.text);
            kept_n++;
            continue;
        }
        removed++;
        if (fuzz::listable(p.name) && std::find(names.begin(), names.end(), p.name) == names.end())
            names.emplace_back(p.name);
    }
    const std::string_view want = removed ? std::string_view(kept) : header;

    const size_t cap = cookie_rewrite_max_len(header.size());
    std::unique_ptr<char[]> out(new char[cap]);
    std::unique_ptr<char[]> big(new char[header.size() + 1]);
    std::unique_ptr<char[]> small(new char[small_cap]);
    NameList big_list(big.get(), header.size() + 1), small_list(small.get(), small_cap);
    const CookieRewrite r = rewrite_cookie_header(header, fp.policy, out.get(), &big_list);
    const std::string_view got(out.get(), r.len);
    FUZZ_CHECK(r.len <= cap, "output %zu bytes, cookie_rewrite_max_len %zu", r.len, cap);
    {
        HeapArena heap;
        Segments table;
        FUZZ_CHECK(scan_cookie_header(header, fp.policy.rules, fp.policy.always, &table, heap.arena()),
                   "scan failed");
        const CookieRewrite plan =
            plan_cookie_rewrite(header, table, Removal::after_decision(fp.policy.granted));
        FUZZ_CHECK(plan.len == r.len && plan.kept == r.kept && plan.removed == r.removed,
                   "plan_cookie_rewrite %zu bytes, %zu kept, %zu removed; the rewrite %zu, %zu, %zu", plan.len,
                   plan.kept, plan.removed, r.len, r.kept, r.removed);
    }
    FUZZ_CHECK(r.removed == removed && r.kept == kept_n, "removed %zu kept %zu, reference %zu %zu in %s", r.removed,
               r.kept, removed, kept_n, show(header).c_str());
    FUZZ_CHECK(got == want, "rewrite of %s is %s, reference %s", show(header).c_str(), show(got).c_str(),
               show(want).c_str());
    const std::vector<Pair> left = pairs_of(got);
    FUZZ_CHECK((r.kept == 0) == left.empty(), "kept %zu, but %zu pairs remain in %s", r.kept, left.size(),
               show(got).c_str());
    FUZZ_CHECK(left.size() == r.kept, "kept %zu, %zu pairs in the output", r.kept, left.size());
    for (const Pair& p : left) FUZZ_CHECK(!fp.removes(p.name), "output keeps %s", show(p.text).c_str());

    std::unique_ptr<char[]> out2(new char[cap]);
    const CookieRewrite r2 = rewrite_cookie_header(header, fp.policy, out2.get(), &small_list);
    FUZZ_CHECK(r2.len == r.len && r2.kept == r.kept && std::memcmp(out2.get(), out.get(), r.len) == 0,
               "the NameList changed the rewrite");
    const CookieRewrite r3 = rewrite_cookie_header(header, fp.policy, out2.get(), nullptr);
    FUZZ_CHECK(r3.len == r.len && r3.kept == r.kept && std::memcmp(out2.get(), out.get(), r.len) == 0,
               "names == nullptr changed the rewrite");
    fuzz::check_names(big_list.view(), names, small_list.view(), small_cap);

    std::vector<std::string> probes = fp.probe_names();
    if (!pairs.empty()) probes.emplace_back(pairs.front().name);
    for (const std::string& name : probes) {
        std::string_view v1, v2;
        const bool f1 = find_cookie(header, name, &v1), f2 = ref_find(header, name, &v2);
        FUZZ_CHECK(f1 == f2, "find_cookie(%s, %s) = %d, reference %d", show(header).c_str(), show(name).c_str(), f1,
                   f2);
        if (f1) FUZZ_CHECK(v1 == v2, "value of %s: %s, reference %s", show(name).c_str(), show(v1).c_str(),
                           show(v2).c_str());
        std::string_view v3;
        if (fp.removes(name))
            FUZZ_CHECK(!find_cookie(got, name, &v3), "%s removed but still found in %s", show(name).c_str(),
                       show(got).c_str());
    }
    return 0;
}
