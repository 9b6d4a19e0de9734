#include "policy/strip_rules.h"

#include <cstring>

#include "policy/byte_scan.h"

namespace consent {

namespace {

// `lowered` is already lowercase; only `s` needs folding.
bool lowered_equal(const char* s, std::string_view lowered) noexcept {
    for (size_t i = 0; i < lowered.size(); i++) {
        if (ascii_lower(s[i]) != lowered[i]) return false;
    }
    return true;
}

// The first min(8, n) bytes at s in the low bytes of a little-endian word
// (the rest zero). Short names without a loop: two loads that overlap, or
// three bytes.
inline uint64_t head8(const char* s, size_t n) noexcept {
    const auto* b = reinterpret_cast<const unsigned char*>(s);
    uint64_t w = 0;
    if (n >= 8) {
        w = scan::load8(s);
    } else if (n >= 4) {
        w = scan::load4(s) | uint64_t(scan::load4(s + n - 4)) << (8 * (n - 4));
    } else if (n > 0) {
        w = uint64_t(b[0]) | uint64_t(b[n / 2]) << (8 * (n / 2)) | uint64_t(b[n - 1]) << (8 * (n - 1));
    }
    return w;
}

// Eight bytes lowercased at once: +0x20 where a byte is 'A'..'Z' (never
// for bytes with the top bit set).
inline uint64_t lower8(uint64_t w) noexcept {
    constexpr uint64_t ones = 0x0101010101010101ull;
    const uint64_t low7 = w & (0x7f * ones);
    const uint64_t ge_a = low7 + (0x80 - 'A') * ones;
    const uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ones;
    const uint64_t upper = (ge_a ^ gt_z) & ~w & (0x80 * ones);
    return w | (upper >> 2);
}

uint64_t head_mask(size_t len) noexcept { return len >= 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * len)) - 1; }

}  // namespace

// Eight bytes at a time: the UID cookie's and the token argument's names
// are compared on every request.
bool ascii_iequal(std::string_view a, std::string_view b) noexcept {
    const size_t n = a.size();
    if (n != b.size()) return false;
    if (n < 8) return lower8(head8(a.data(), n)) == lower8(head8(b.data(), n));
    for (size_t i = 0; i + 8 < n; i += 8) {
        if (lower8(scan::load8(a.data() + i)) != lower8(scan::load8(b.data() + i))) return false;
    }
    // the last eight, which may overlap the ones before
    return lower8(scan::load8(a.data() + n - 8)) == lower8(scan::load8(b.data() + n - 8));
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
    if (patterns_.size() >= UINT16_MAX) return fail("too many patterns");
    if (pattern.size() > UINT32_MAX - tails_.size()) return fail("pattern too long");
    std::string text(pattern);
    for (char& c : text) c = ascii_lower(c);
    const auto first = static_cast<unsigned char>(text[0]);
    for (unsigned char c : {first, static_cast<unsigned char>(first >= 'a' && first <= 'z' ? first - 32 : first)})
        first_[c >> 6] |= uint64_t(1) << (c & 63);
    patterns_.push_back(Pattern{std::move(text), prefix, purpose});
    pack();
    return true;
}

// Rebuilt whole on every add: configurations hold tens of patterns, and
// only the reading side is on the request path.
void StripRules::pack() {
    const auto rule_of = [](const Pattern& p, uint32_t tail) {
        const uint64_t mask = head_mask(p.text.size());
        uint64_t case_bits = 0;
        for (size_t i = 0; i < p.text.size() && i < 8; i++) {
            if (p.text[i] >= 'a' && p.text[i] <= 'z') case_bits |= uint64_t(0x20) << (8 * i);
        }
        // p.text is lowered already (add()), and head8 zeroes what is past it.
        return Rule{head8(p.text.data(), p.text.size()), mask, case_bits, static_cast<uint32_t>(p.text.size()), tail,
                    static_cast<uint8_t>(p.prefix), static_cast<uint8_t>(p.purpose)};
    };
    std::vector<Rule> long_rules[kBuckets], short_rules;
    std::string tails;
    for (const Pattern& p : patterns_) {
        const Rule r = rule_of(p, static_cast<uint32_t>(tails.size()));
        if (p.text.size() > 8) tails.append(p.text, 8, std::string::npos);
        if (p.text.size() >= 3) {
            long_rules[bucket(r.head)].push_back(r);
        } else {
            short_rules.push_back(r);
        }
    }
    std::vector<Rule> rules;
    for (size_t b = 0; b < kBuckets; b++) {
        begin_[b] = static_cast<uint32_t>(rules.size());
        rules.insert(rules.end(), long_rules[b].begin(), long_rules[b].end());
    }
    begin_[kShort] = static_cast<uint32_t>(rules.size());
    rules.insert(rules.end(), short_rules.begin(), short_rules.end());
    begin_[kShort + 1] = static_cast<uint32_t>(rules.size());
    rules_ = std::move(rules);
    tails_ = std::move(tails);
}

// `name` is not empty and starts with a byte some pattern starts with.
PurposeMask StripRules::owners_of_claimed(std::string_view name) const noexcept {
    const uint64_t head = head8(name.data(), name.size());  // not lowered: see Rule
    const Rule* const short_end = rules_.data() + begin_[kShort + 1];
    // Its bucket's rules, then the short ones; or, for a name too short
    // for a bucket, the short ones only. One loop over up to two runs.
    const size_t b = name.size() >= 3 ? bucket(head) : kShort;
    const Rule* r = rules_.data() + begin_[b];
    const Rule* end = rules_.data() + begin_[b + 1];
    PurposeMask m = 0;
    for (;;) {
        for (; r != end; r++) {
            // The head first: it turns down most of a bucket's rules by itself.
            if (((head | r->case_bits) & r->head_mask) != r->head) continue;
            if (r->prefix ? name.size() < r->len : name.size() != r->len) continue;
            if (r->len <= 8 ||
                lowered_equal(name.data() + 8, std::string_view(tails_.data() + r->tail, r->len - 8)))
                m |= purpose_bit(r->purpose);
        }
        if (end == short_end) return m;
        r = rules_.data() + begin_[kShort];
        end = short_end;
    }
}

void NameList::add(std::string_view name) noexcept {
    if (name.empty()) return;
    const uint64_t bit = uint64_t(1) << ((name.size() * 7 + static_cast<unsigned char>(name.back())) & 63);
    // Listed names never contain ',' (callers pass listable names only), so
    // splitting the buffer on ',' recovers them exactly.
    std::string_view listed(buf_, (seen_ & bit) ? len_ : 0);
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
    seen_ |= bit;
}

bool listable_name(std::string_view name) noexcept {
    if (name.empty()) return false;
    const char* p = name.data();
    const char* const end = p + name.size();
    // Eight bytes at a time: each byte must be 0x21..0x7e, and not ',' or ';'.
    for (; end - p >= 8; p += 8) {
        const uint64_t w = scan::load8(p);
        const uint64_t low = (w - scan::kOnes * 0x21) & ~w;                 // some byte < 0x21
        const uint64_t high = (w + scan::kOnes * (0x80 - 0x7f)) | w;       // some byte >= 0x7f
        if (((low | high) & scan::kHighs) || scan::bytes_equal(w, ',') || scan::bytes_equal(w, ';')) return false;
    }
    for (; p < end; p++) {
        const auto c = static_cast<unsigned char>(*p);
        if (c < 0x21 || c > 0x7e || c == ',' || c == ';') return false;
    }
    return true;
}

}  // namespace consent
