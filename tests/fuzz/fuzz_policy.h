// A strip policy chosen by the fuzzer, and an independent reference for
// which names it removes (tests/fuzz/fuzz_query_rewrite.cpp and
// fuzz_cookie_rewrite.cpp).
//
// Input layout (FuzzedDataProvider): from the end, one byte each: the
// granted mask (purposes 0..7), the pattern count (0..4), four purpose
// indexes, the kind of `always` (none, "ctk", fuzzer text), whether the
// rules apply (0: no rules, else yes); then from the
// front, '\'-terminated strings: `always` (when fuzzer text) and the
// patterns; the rest is the query string or Cookie header.
// tests/fuzz/make_corpus.py writes seeds in this layout.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <string>
#include <string_view>
#include <vector>

#include "policy/query_rewrite.h"
#include "policy/strip_rules.h"
#include "tests/fuzz/fuzz_check.h"

namespace fuzz {

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

struct Pattern {
    std::string text;  // without the '*'
    bool prefix;
    unsigned purpose;
};

struct FuzzPolicy {
    std::string always;
    std::vector<Pattern> patterns;  // the ones StripRules accepted
    consent::StripRules rules;
    consent::StripPolicy policy;

    explicit FuzzPolicy(FuzzedDataProvider& fdp) {
        const auto granted = fdp.ConsumeIntegral<uint8_t>();
        const int count = fdp.ConsumeIntegralInRange<int>(0, 4);
        unsigned purpose[4];
        for (unsigned& p : purpose) p = fdp.ConsumeIntegralInRange<unsigned>(0, 7);
        const int always_kind = fdp.ConsumeIntegralInRange<int>(0, 2);
        const bool use_rules = fdp.ConsumeIntegralInRange<int>(0, 3) != 0;
        if (always_kind == 1) always = "ctk";
        // Directive arguments are at most kMaxArgName bytes (conf.cpp); the
        // token argument and UID cookie names are short.
        if (always_kind == 2) always = fdp.ConsumeRandomLengthString(64);
        for (int i = 0; i < count; i++) {
            const std::string p = fdp.ConsumeRandomLengthString(consent::kMaxArgName);
            const size_t star = p.find('*');
            const bool want_ok = !p.empty() && (star == std::string::npos || (star == p.size() - 1 && p.size() > 1));
            std::string err;
            const bool ok = rules.add(purpose[i], p, &err);
            FUZZ_CHECK(ok == want_ok, "StripRules::add(%s) = %d", show(p).c_str(), ok);
            FUZZ_CHECK(ok || !err.empty(), "no reason for refusing %s", show(p).c_str());
            if (ok) {
                const bool prefix = star != std::string::npos;
                patterns.push_back({prefix ? p.substr(0, p.size() - 1) : p, prefix, purpose[i]});
            }
        }
        policy.always = always;
        policy.rules = use_rules ? &rules : nullptr;
        policy.granted = granted;
    }

    // The reference: which names the policy removes.
    bool removes(std::string_view name) const {
        if (!always.empty() && iequal(name, always)) return true;
        if (!policy.rules) return false;
        for (const Pattern& p : patterns) {
            if ((policy.granted >> p.purpose) & 1) continue;
            if (p.prefix ? name.size() >= p.text.size() && iequal(name.substr(0, p.text.size()), p.text)
                         : iequal(name, p.text))
                return true;
        }
        return false;
    }

    // Names worth looking up with find_query_arg / find_cookie.
    std::vector<std::string> probe_names() const {
        std::vector<std::string> v;
        if (!always.empty()) v.push_back(always);
        for (const Pattern& p : patterns) v.push_back(p.prefix ? p.text + "x" : p.text);
        return v;
    }
};

inline bool listable(std::string_view name) {
    if (name.empty()) return false;
    for (unsigned char c : name)
        if (c < 0x21 || c > 0x7e || c == ',' || c == ';') return false;
    return true;
}

inline std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> v;
    size_t pos = 0;
    for (;;) {
        const size_t end = s.find(sep, pos);
        v.push_back(s.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
        if (end == std::string_view::npos) return v;
        pos = end + 1;
    }
}

// Checks a NameList filled with a large buffer against the expected list,
// and one filled with a small buffer against it.
inline void check_names(std::string_view big, const std::vector<std::string>& want, std::string_view small,
                        size_t small_cap) {
    std::string joined;
    for (const std::string& n : want) joined += (joined.empty() ? "" : ",") + n;
    FUZZ_CHECK(big == joined, "names listed %s, expected %s", show(big).c_str(), show(joined).c_str());
    FUZZ_CHECK(small.size() <= small_cap, "NameList overran its %zu bytes", small_cap);
    if (small.empty()) return;
    for (std::string_view n : split(small, ',')) {
        bool found = false;
        for (const std::string& w : want) found |= w == n;
        FUZZ_CHECK(found, "small NameList holds %s", show(n).c_str());
    }
}

}  // namespace fuzz
