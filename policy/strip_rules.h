// Which argument and cookie names belong to which purpose.
//
//   consent_strip_args    marketing utm_* gclid fbclid;
//   consent_strip_cookies analysis  _ga _ga_* _gid;
//
// A pattern is a name, or a prefix followed by one final '*'. Names compare
// ASCII case-insensitively, as nginx's own $arg_ and $cookie_ do, so that
// UTM_SOURCE cannot slip past utm_*.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/purposes.h"

namespace consent {

constexpr char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }
constexpr char ascii_upper(char c) noexcept { return c >= 'a' && c <= 'z' ? static_cast<char>(c - ('a' - 'A')) : c; }

bool ascii_iequal(std::string_view a, std::string_view b) noexcept;

class StripRules {
public:
    // False with *err for an empty pattern, a lone '*' or a '*' that is not last.
    bool add(unsigned purpose, std::string_view pattern, std::string* err);

    // The purposes that claim `name` (the mask of every matching pattern).
    // Inline up to the first-byte test, which turns down most names (a
    // request asks about thirty or more) without a call.
    PurposeMask owners(std::string_view name) const noexcept {
        if (name.empty()) return 0;
        const auto c = static_cast<unsigned char>(name[0]);
        if (!(first_[c >> 6] >> (c & 63) & 1)) return 0;
        return owners_of_claimed(name);
    }

    bool empty() const { return rules_.empty(); }

private:
    // A request asks about every argument and cookie name, thirty or more
    // for a returning visitor: the rules are packed in one array, in bucket
    // order, so that a lookup reads one short run of it, not a vector per
    // bucket and a string per rule spread over the heap.
    struct Rule {
        // The first (up to) 8 bytes of text as one word, so that most
        // rules are turned down by one compare of the name's first word:
        // (name's word | case_bits) & head_mask == head. case_bits has 0x20
        // in each byte where text has a letter, which folds the name's
        // letter there to lowercase, and only a letter can fold onto one;
        // so the name's word is never lowercased as a whole.
        uint64_t head;
        uint64_t head_mask;
        uint64_t case_bits;
        uint32_t len;     // of the text: the pattern, lowered, without the '*'
        uint32_t tail;    // where the text's bytes after the first 8 start in tails_
        uint8_t prefix;
        uint8_t purpose;
    };
    struct Pattern {      // as added, kept to rebuild the packed form
        std::string text;
        bool prefix;
        unsigned purpose;
    };
    void pack();
    PurposeMask owners_of_claimed(std::string_view name) const noexcept;

    std::vector<Pattern> patterns_;
    std::vector<Rule> rules_;  // bucket 0's rules, bucket 1's, ..., then the short rules
    std::string tails_;
    // The first bytes patterns start with (either case): most names match
    // no pattern, and this rejects them with one lookup.
    uint64_t first_[4] = {0, 0, 0, 0};
    // Rules of three bytes or more, by a hash of their first three
    // (lowered): a name is compared only with the rule or two its bucket
    // holds, not with every rule that shares its first byte or two ('_'
    // starts half of them, '_g' five of a common cookie list).
    // rules_[begin_[b], begin_[b + 1]) is bucket b; after the last bucket
    // come the shorter rules, which every name is compared with (there
    // are seldom any).
    static constexpr size_t kBuckets = 64;
    static constexpr size_t kShort = kBuckets;  // begin_[kShort]: where the short rules start
    // By the first three bytes with 0x20 set in each: a name and a rule
    // that match agree there up to case, so they agree after this too.
    static size_t bucket(uint64_t head) {
        return static_cast<size_t>((((head | 0x202020) & 0xffffff) * 0x9e3779b97f4a7c15ull) >> 58);  // 64
    }
    uint32_t begin_[kBuckets + 2] = {};
};

// What to remove from one request: the name that is always removed (the
// token argument, or the UID cookie), and every name owned by a purpose that
// is not granted.
struct StripPolicy {
    std::string_view always;           // may be empty
    const StripRules* rules = nullptr; // may be null
    PurposeMask granted = 0;

    bool removes(std::string_view name) const noexcept {
        if (name.size() == always.size() && !always.empty() && ascii_iequal(name, always)) return true;
        return rules && (rules->owners(name) & ~granted) != 0;
    }
};

// $consent_stripped: names, comma-separated, each once, in a buffer the
// caller provides (from the request pool). A name that could harm a header
// it is copied into (control bytes, ',', ';', space, non-ASCII) is not
// listed as is: the caller passes the raw, still percent-encoded form.
class NameList {
public:
    NameList(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
    // Adds `name` unless already listed; silently drops it when out of room.
    void add(std::string_view name) noexcept;
    std::string_view view() const { return {buf_, len_}; }
    size_t count() const { return count_; }

private:
    char* buf_;
    size_t cap_;
    size_t len_ = 0;
    size_t count_ = 0;
    // One bit per listed (length, last byte): a name whose bit is clear is
    // new without rescanning the list.
    uint64_t seen_ = 0;
};

// True when every byte of `name` is printable ASCII other than ',', ';' and
// space: safe to list in $consent_stripped.
bool listable_name(std::string_view name) noexcept;

}  // namespace consent
