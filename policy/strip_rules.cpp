#include "policy/strip_rules.h"

#include <cstring>

namespace consent {

namespace {

inline unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c; }

// `lowered` is already lowercase; only `s` needs folding.
bool lowered_equal(const char* s, std::string_view lowered) noexcept {
    for (size_t i = 0; i < lowered.size(); i++) {
        if (lower(static_cast<unsigned char>(s[i])) != static_cast<unsigned char>(lowered[i])) return false;
    }
    return true;
}

}  // namespace

bool ascii_iequal(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); i++) {
        if (lower(static_cast<unsigned char>(a[i])) != lower(static_cast<unsigned char>(b[i]))) return false;
    }
    return true;
}

bool StripRules::add(unsigned purpose, std::string_view pattern, std::string* err) {
    auto fail = [err](const char* msg) {
        if (err) *err = msg;
        return false;
    };
    if (purpose >= kMaxPurposes) return fail("purpose index out of range");
    if (pattern.empty()) return fail("empty pattern");
    const size_t star = pattern.find('*');
    const bool prefix = star != std::string_view::npos;
    if (prefix && star != pattern.size() - 1) return fail("'*' is allowed only at the end of a pattern");
    if (prefix && pattern.size() == 1) return fail("a lone '*' would match every name");
    if (prefix) pattern.remove_suffix(1);
    std::string text(pattern);
    for (char& c : text) c = static_cast<char>(lower(static_cast<unsigned char>(c)));
    const auto first = static_cast<unsigned char>(text[0]);
    for (unsigned char c : {first, static_cast<unsigned char>(first >= 'a' && first <= 'z' ? first - 32 : first)})
        first_[c >> 6] |= uint64_t(1) << (c & 63);
    rules_.push_back(Rule{std::move(text), prefix, purpose});
    return true;
}

PurposeMask StripRules::owners(std::string_view name) const noexcept {
    if (name.empty()) return 0;
    const auto c = static_cast<unsigned char>(name[0]);
    if (!(first_[c >> 6] >> (c & 63) & 1)) return 0;
    PurposeMask m = 0;
    for (const Rule& r : rules_) {
        const bool fits = r.prefix ? name.size() >= r.text.size() : name.size() == r.text.size();
        if (fits && lowered_equal(name.data(), r.text)) m |= purpose_bit(r.purpose);
    }
    return m;
}

void NameList::add(std::string_view name) noexcept {
    if (name.empty()) return;
    // Listed names never contain ',' (callers pass listable names only), so
    // splitting the buffer on ',' recovers them exactly.
    std::string_view listed(buf_, len_);
    while (!listed.empty()) {
        const size_t comma = listed.find(',');
        if (listed.substr(0, comma) == name) return;
        if (comma == std::string_view::npos) break;
        listed.remove_prefix(comma + 1);
    }
    const size_t sep = len_ ? 1 : 0;
    if (name.size() + sep > cap_ - len_) return;
    if (sep) buf_[len_++] = ',';
    std::memcpy(buf_ + len_, name.data(), name.size());
    len_ += name.size();
    count_++;
}

bool listable_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    for (char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x21 || c > 0x7e || c == ',' || c == ';') return false;
    }
    return true;
}

}  // namespace consent
