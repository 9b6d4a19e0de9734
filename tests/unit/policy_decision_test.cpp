#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "policy/purposes.h"
#include "policy/strip_rules.h"

using namespace consent;

namespace {

// Four declared purposes: service (granted), analysis, marketing (gpc),
// ads (gpc). Bit 5 is not declared.
constexpr PurposeMask kService = purpose_bit(0), kAnalysis = purpose_bit(1), kMarketing = purpose_bit(2),
                      kAds = purpose_bit(3), kUndeclared = purpose_bit(5);

DecisionInput base() {
    DecisionInput in;
    in.declared = kService | kAnalysis | kMarketing | kAds;
    in.defaults = kService;
    in.gpc = kMarketing | kAds;
    in.now = 1'700'000'000;
    return in;
}

DecisionInput with_record(const Record* rec, Source src = Source::redis) {
    DecisionInput in = base();
    in.has_subject = true;
    in.outcome = LookupOutcome::record;
    in.record_source = src;
    in.record = rec;
    return in;
}

}  // namespace

TEST(SourceName, AllValues) {
    EXPECT_STREQ(source_name(Source::none), "none");
    EXPECT_STREQ(source_name(Source::cache), "cache");
    EXPECT_STREQ(source_name(Source::redis), "redis");
    EXPECT_STREQ(source_name(Source::defaults), "default");
    EXPECT_STREQ(source_name(Source::failure), "failure");
}

TEST(Decide, NoSubjectTakesDefaults) {
    DecisionInput in = base();
    in.outcome = LookupOutcome::failure;  // ignored without a subject
    const Decision d = decide(in);
    EXPECT_EQ(d.granted, kService);
    EXPECT_EQ(d.source, Source::none);
    EXPECT_FALSE(d.erased);
    EXPECT_FALSE(d.has_version);
}

TEST(Decide, NoStoreAndNoRecordTakeDefaults) {
    for (LookupOutcome o : {LookupOutcome::no_store, LookupOutcome::no_record}) {
        DecisionInput in = base();
        in.has_subject = true;
        in.outcome = o;
        in.record_source = Source::cache;
        const Decision d = decide(in);
        EXPECT_EQ(d.granted, kService);
        EXPECT_EQ(d.source, Source::defaults);
        EXPECT_FALSE(d.has_version);
    }
}

TEST(Decide, RecordOverridesDefaults) {
    Record rec;
    rec.version = 7;
    rec.granted = kAnalysis | kMarketing;
    rec.denied = kService;
    for (Source src : {Source::cache, Source::redis}) {
        const Decision d = decide(with_record(&rec, src));
        EXPECT_EQ(d.granted, kAnalysis | kMarketing);
        EXPECT_EQ(d.source, src);
        EXPECT_TRUE(d.has_version);
        EXPECT_EQ(d.version, 7u);
        EXPECT_FALSE(d.erased);
    }
}

TEST(Decide, MissingFieldsTakeDefaults) {
    Record rec;
    rec.version = 1;
    rec.granted = kAds;
    const Decision d = decide(with_record(&rec));
    EXPECT_EQ(d.granted, kService | kAds);
}

TEST(Decide, UndeclaredBitsNeverGranted) {
    Record rec;
    rec.granted = kUndeclared | kAnalysis;
    DecisionInput in = with_record(&rec);
    in.defaults |= purpose_bit(31);
    EXPECT_EQ(decide(in).granted, kService | kAnalysis);

    DecisionInput none = base();
    none.defaults = ~PurposeMask(0);
    EXPECT_EQ(decide(none).granted, none.declared);
}

TEST(Decide, ExpiredRecordTakesDefaults) {
    Record rec;
    rec.version = 3;
    rec.granted = kAnalysis;
    rec.has_exp = true;
    for (uint64_t exp : {uint64_t(0), uint64_t(1'699'999'999), uint64_t(1'700'000'000)}) {
        rec.exp = exp;
        const Decision d = decide(with_record(&rec));
        EXPECT_EQ(d.granted, kService) << exp;
        EXPECT_EQ(d.source, Source::defaults);
        EXPECT_FALSE(d.has_version);
        EXPECT_FALSE(d.erased);
    }
    rec.exp = 1'700'000'001;  // one second left: live
    const Decision d = decide(with_record(&rec));
    EXPECT_EQ(d.granted, kService | kAnalysis);
    EXPECT_EQ(d.source, Source::redis);
    EXPECT_TRUE(d.has_version);
}

TEST(Decide, ExpWithoutHasExpIsIgnored) {
    Record rec;
    rec.granted = kAnalysis;
    rec.exp = 1;
    EXPECT_EQ(decide(with_record(&rec)).granted, kService | kAnalysis);
}

TEST(Decide, ErasedGrantsNothing) {
    Record rec;
    rec.version = 9;
    rec.granted = kAnalysis | kService;
    rec.erased = true;
    const Decision d = decide(with_record(&rec, Source::cache));
    EXPECT_EQ(d.granted, 0u);
    EXPECT_TRUE(d.erased);
    EXPECT_EQ(d.source, Source::cache);
    EXPECT_TRUE(d.has_version);
    EXPECT_EQ(d.version, 9u);
}

TEST(Decide, ErasedStaysErasedPastExp) {
    Record rec;
    rec.version = 4;
    rec.erased = true;
    rec.has_exp = true;
    rec.exp = 1;
    const Decision d = decide(with_record(&rec));
    EXPECT_TRUE(d.erased);
    EXPECT_EQ(d.granted, 0u);
    EXPECT_EQ(d.source, Source::redis);
    EXPECT_EQ(d.version, 4u);
}

TEST(Decide, RecordOutcomeWithoutRecordTakesDefaults) {
    const Decision d = decide(with_record(nullptr));
    EXPECT_EQ(d.granted, kService);
    EXPECT_EQ(d.source, Source::defaults);
}

TEST(Decide, FailureDeniesOrDefaults) {
    DecisionInput in = base();
    in.has_subject = true;
    in.outcome = LookupOutcome::failure;
    Decision d = decide(in);
    EXPECT_EQ(d.granted, 0u);
    EXPECT_EQ(d.source, Source::failure);
    EXPECT_FALSE(d.has_version);

    in.failure_uses_defaults = true;
    d = decide(in);
    EXPECT_EQ(d.granted, kService);
    EXPECT_EQ(d.source, Source::failure);
}

TEST(Decide, SecGpcDeniesGpcPurposesWhateverTheSource) {
    Record rec;
    rec.granted = kMarketing | kAds | kAnalysis;
    DecisionInput in = with_record(&rec);
    in.sec_gpc = true;
    EXPECT_EQ(decide(in).granted, kService | kAnalysis);

    in.sec_gpc = false;
    EXPECT_EQ(decide(in).granted, kService | kAnalysis | kMarketing | kAds);

    DecisionInput none = base();
    none.defaults = kService | kMarketing;
    none.sec_gpc = true;
    EXPECT_EQ(decide(none).granted, kService);

    DecisionInput fail = base();
    fail.has_subject = true;
    fail.outcome = LookupOutcome::failure;
    fail.failure_uses_defaults = true;
    fail.defaults = kAds | kService;
    fail.sec_gpc = true;
    EXPECT_EQ(decide(fail).granted, kService);
}

TEST(Decide, AllThirtyTwoPurposes) {
    Record rec;
    rec.granted = purpose_bit(31);
    rec.denied = purpose_bit(0);
    DecisionInput in = with_record(&rec);
    in.declared = ~PurposeMask(0);
    in.defaults = purpose_bit(0) | purpose_bit(30);
    in.gpc = 0;
    EXPECT_EQ(decide(in).granted, purpose_bit(30) | purpose_bit(31));
}

TEST(AsciiIequal, Basics) {
    EXPECT_TRUE(ascii_iequal("", ""));
    EXPECT_TRUE(ascii_iequal("UTM_Source", "utm_source"));
    EXPECT_FALSE(ascii_iequal("utm", "utm_"));
    EXPECT_FALSE(ascii_iequal("a[", "A{"));  // only letters fold
    EXPECT_FALSE(ascii_iequal("\xc3\xa9", "\xc3\x89"));
    EXPECT_TRUE(ascii_iequal(std::string("a\0b", 3), std::string("A\0B", 3)));
}

TEST(StripRules, RejectsBadPatterns) {
    StripRules rules;
    std::string err;
    EXPECT_FALSE(rules.add(0, "", &err));
    EXPECT_FALSE(err.empty());
    err.clear();
    EXPECT_FALSE(rules.add(0, "*", &err));
    EXPECT_FALSE(err.empty());
    EXPECT_FALSE(rules.add(0, "*utm", &err));
    EXPECT_FALSE(rules.add(0, "ut*m", &err));
    EXPECT_FALSE(rules.add(0, "utm**", &err));
    EXPECT_FALSE(rules.add(32, "utm", &err));
    EXPECT_FALSE(rules.add(1000, "utm", nullptr));
    EXPECT_TRUE(rules.empty());
    EXPECT_TRUE(rules.add(31, "utm", nullptr));
    EXPECT_FALSE(rules.empty());
}

TEST(StripRules, ExactAndPrefixMatchCaseInsensitively) {
    StripRules rules;
    std::string err;
    ASSERT_TRUE(rules.add(2, "utm_*", &err)) << err;
    ASSERT_TRUE(rules.add(2, "gclid", &err));
    ASSERT_TRUE(rules.add(1, "_ga", &err));
    ASSERT_TRUE(rules.add(1, "_ga_*", &err));
    ASSERT_TRUE(rules.add(3, "_GA", &err));

    EXPECT_EQ(rules.owners("utm_source"), purpose_bit(2));
    EXPECT_EQ(rules.owners("UTM_SOURCE"), purpose_bit(2));
    EXPECT_EQ(rules.owners("utm_"), purpose_bit(2));  // empty rest still matches the prefix
    EXPECT_EQ(rules.owners("utm"), 0u);
    EXPECT_EQ(rules.owners("xutm_a"), 0u);
    EXPECT_EQ(rules.owners("GCLID"), purpose_bit(2));
    EXPECT_EQ(rules.owners("gclid2"), 0u);
    EXPECT_EQ(rules.owners("_ga"), purpose_bit(1) | purpose_bit(3));
    EXPECT_EQ(rules.owners("_Ga_XYZ"), purpose_bit(1));
    EXPECT_EQ(rules.owners(""), 0u);
}

// Randomized: the indexed matcher (first-byte bitmap, three-byte buckets,
// one-word heads folded by each rule's case bits) against a plain
// case-insensitive loop over the patterns, on a small alphabet so that
// heads, buckets and prefixes collide often. The alphabet holds the bytes
// that differ from a letter only in 0x20 ('@', '[', '`', '{', DEL), which
// a fold of every byte would wrongly match; and short patterns, which
// every bucket is checked against.
TEST(StripRules, RandomizedAgainstModel) {
    const std::string alphabet = "aAbB_-zZ@[`{\x7f\xc3";
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto next = [&x]() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    auto word = [&](size_t max_len) {
        std::string w(1 + next() % max_len, 'a');
        for (char& c : w) c = alphabet[next() % alphabet.size()];
        return w;
    };
    auto fold = [](std::string s) {
        for (char& c : s)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        return s;
    };
    for (int round = 0; round < 200; round++) {
        StripRules rules;
        std::vector<std::pair<std::string, unsigned>> model;  // folded pattern, '*' kept
        // Up to 64 patterns of up to 20 bytes: several per bucket of the
        // packed form, and texts past the 8 bytes kept in each rule's head.
        const size_t n = 1 + next() % 64;
        for (size_t i = 0; i < n; i++) {
            std::string pat = word(round % 2 ? 20 : 12);
            if (next() % 2) pat += '*';
            if (pat == "*") continue;
            const unsigned purpose = static_cast<unsigned>(next() % kMaxPurposes);
            ASSERT_TRUE(rules.add(purpose, pat, nullptr)) << pat;
            model.emplace_back(fold(pat), purpose);
        }
        for (int k = 0; k < 300; k++) {
            std::string name = word(14);
            // Half the names are built from a pattern, to hit matches.
            if (next() % 2 && !model.empty()) {
                std::string base = model[next() % model.size()].first;
                if (!base.empty() && base.back() == '*') base.pop_back();
                for (char& c : base)
                    if (next() % 2 && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
                name = base + (next() % 2 ? word(4) : std::string());
            }
            PurposeMask want = 0;
            const std::string folded = fold(name);
            for (const auto& [pat, purpose] : model) {
                const bool prefix = pat.back() == '*';
                const std::string stem = prefix ? pat.substr(0, pat.size() - 1) : pat;
                if (prefix ? folded.compare(0, stem.size(), stem) == 0 && folded.size() >= stem.size()
                           : folded == stem)
                    want |= purpose_bit(purpose);
            }
            ASSERT_EQ(rules.owners(name), want) << "name " << name;
        }
    }
}

TEST(StripPolicy, AlwaysAndNotGranted) {
    StripRules rules;
    ASSERT_TRUE(rules.add(0, "a", nullptr));
    ASSERT_TRUE(rules.add(1, "b", nullptr));
    ASSERT_TRUE(rules.add(0, "both", nullptr));
    ASSERT_TRUE(rules.add(1, "both", nullptr));
    StripPolicy p{"ctk", &rules, purpose_bit(0)};
    EXPECT_TRUE(p.removes("ctk"));
    EXPECT_TRUE(p.removes("CTK"));
    EXPECT_FALSE(p.removes("a"));
    EXPECT_TRUE(p.removes("b"));
    EXPECT_TRUE(p.removes("both"));  // one owner not granted is enough
    EXPECT_FALSE(p.removes("c"));
    EXPECT_FALSE(p.removes(""));

    StripPolicy bare;
    EXPECT_FALSE(bare.removes(""));
    EXPECT_FALSE(bare.removes("x"));
}

TEST(NameList, DedupesAndSeparates) {
    char buf[64];
    NameList l(buf, sizeof buf);
    l.add("utm_source");
    l.add("ctk");
    l.add("utm_source");
    l.add("UTM_SOURCE");  // exact bytes: a different spelling is listed
    l.add("");
    l.add("utm");  // a prefix of a listed name is not that name
    l.add("ctk");
    EXPECT_EQ(l.view(), "utm_source,ctk,UTM_SOURCE,utm");
    EXPECT_EQ(l.count(), 4u);
}

TEST(NameList, DropsWhatDoesNotFit) {
    char buf[8];
    NameList l(buf, sizeof buf);
    l.add("abcdefghi");  // 9 > 8
    EXPECT_EQ(l.count(), 0u);
    l.add("abcd");
    l.add("efgh");  // needs 5 with the comma, 4 left
    l.add("efg");   // exactly fits
    EXPECT_EQ(l.view(), "abcd,efg");
    EXPECT_EQ(l.count(), 2u);
    l.add("x");
    EXPECT_EQ(l.count(), 2u);

    NameList empty(nullptr, 0);
    empty.add("a");
    EXPECT_EQ(empty.view(), "");
    EXPECT_EQ(empty.count(), 0u);

    char one[1];
    NameList l1(one, 1);
    l1.add("a");
    l1.add("b");
    EXPECT_EQ(l1.view(), "a");
}

// Every byte value at every position of names long enough for the
// eight-bytes-at-a-time path, against the rule spelled out byte by byte.
TEST(ListableName, EveryByteAtEveryPosition) {
    for (size_t len : {1u, 7u, 8u, 9u, 16u, 17u}) {
        for (size_t pos = 0; pos < len; pos++) {
            for (int b = 0; b < 256; b++) {
                std::string name(len, 'a');
                name[pos] = static_cast<char>(b);
                const bool want = b >= 0x21 && b <= 0x7e && b != ',' && b != ';';
                ASSERT_EQ(listable_name(name), want) << "len " << len << " pos " << pos << " byte " << b;
            }
        }
    }
}

TEST(ListableName, Bytes) {
    EXPECT_TRUE(listable_name("utm_source"));
    EXPECT_TRUE(listable_name("a%00b"));
    EXPECT_TRUE(listable_name("!~\"'=%"));
    EXPECT_FALSE(listable_name(""));
    EXPECT_FALSE(listable_name("a b"));
    EXPECT_FALSE(listable_name("a,b"));
    EXPECT_FALSE(listable_name("a;b"));
    EXPECT_FALSE(listable_name("a\tb"));
    EXPECT_FALSE(listable_name(std::string("a\0b", 3)));
    EXPECT_FALSE(listable_name("a\x7f"));
    EXPECT_FALSE(listable_name("a\r\nSet-Cookie: x"));
    EXPECT_FALSE(listable_name("\xc3\xa9"));
}
