#include "store/record.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using namespace consent;

namespace {

// Declared purposes, by index: service, analysis, marketing, ads.
const std::string_view kNames[] = {"service", "analysis", "marketing", "ads"};
const PurposeNames kPurposes{kNames, 4};
constexpr PurposeMask kService = purpose_bit(0), kAnalysis = purpose_bit(1), kMarketing = purpose_bit(2),
                      kAds = purpose_bit(3);

struct Parsed {
    RecordParse status;
    Record rec;
};

Parsed parse(const std::vector<std::string>& items, const PurposeNames& purposes = kPurposes) {
    std::vector<std::string_view> views(items.begin(), items.end());
    Parsed p{RecordParse::malformed, {}};
    p.status = parse_record(views.data(), views.size(), purposes, &p.rec);
    return p;
}

const char* name(RecordParse r) {
    switch (r) {
        case RecordParse::ok: return "ok";
        case RecordParse::none: return "none";
        case RecordParse::malformed: return "malformed";
    }
    return "?";
}

}  // namespace

// ---- parse_record -------------------------------------------------------------------

TEST(ParseRecord, NoFieldsIsNoRecord) {
    Record r;
    EXPECT_EQ(parse_record(nullptr, 0, kPurposes, &r), RecordParse::none);
}

TEST(ParseRecord, FullRecord) {
    const auto p = parse({"v", "3", "service", "1", "analysis", "0", "marketing", "1", "exp", "1790000000",
                          "erased", "0"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.version, 3u);
    EXPECT_EQ(p.rec.granted, kService | kMarketing);
    EXPECT_EQ(p.rec.denied, kAnalysis);
    EXPECT_TRUE(p.rec.has_exp);
    EXPECT_EQ(p.rec.exp, 1790000000u);
    EXPECT_FALSE(p.rec.erased);
}

TEST(ParseRecord, OddItemCountIsMalformed) {
    EXPECT_EQ(parse({"v"}).status, RecordParse::malformed);
    EXPECT_EQ(parse({"v", "1", "service"}).status, RecordParse::malformed);
}

TEST(ParseRecord, MissingVersionIsZero) {
    const auto p = parse({"analysis", "1"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.version, 0u);
    EXPECT_EQ(p.rec.granted, kAnalysis);
    EXPECT_FALSE(p.rec.has_exp);
    EXPECT_FALSE(p.rec.erased);
}

TEST(ParseRecord, Versions) {
    EXPECT_EQ(parse({"v", "0"}).rec.version, 0u);
    EXPECT_EQ(parse({"v", "007"}).rec.version, 7u);
    EXPECT_EQ(parse({"v", "18446744073709551615"}).rec.version, UINT64_MAX);
    for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1.0", "0x10", "1e3", "abc", "18446744073709551616",
                            "99999999999999999999", "１"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(parse({"v", bad, "service", "1"}).status, RecordParse::malformed);
    }
}

TEST(ParseRecord, Expiry) {
    auto p = parse({"v", "1", "exp", "0"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_TRUE(p.rec.has_exp);
    EXPECT_EQ(p.rec.exp, 0u);
    p = parse({"exp", "18446744073709551615"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.exp, UINT64_MAX);
    for (const char* bad : {"", "-5", "+5", "1790000000.5", "soon", "18446744073709551616", "2026-01-01"}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(parse({"v", "1", "exp", bad}).status, RecordParse::malformed);
    }
}

TEST(ParseRecord, Erased) {
    auto p = parse({"v", "2", "erased", "1"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_TRUE(p.rec.erased);
    p = parse({"v", "2", "erased", "0"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_FALSE(p.rec.erased);
    for (const char* bad : {"", "2", "01", "true", "yes", " 1", "1 "}) {
        SCOPED_TRACE(bad);
        EXPECT_EQ(parse({"v", "2", "erased", bad}).status, RecordParse::malformed);
    }
}

TEST(ParseRecord, MalformedPurposeValueIsDenied) {
    for (const char* bad : {"", "2", "01", "10", "true", "yes", "granted", " 1", "1 ", "-1", "+1", "1\n"}) {
        SCOPED_TRACE(bad);
        const auto p = parse({"v", "1", "marketing", bad, "analysis", "1"});
        ASSERT_EQ(p.status, RecordParse::ok);
        EXPECT_EQ(p.rec.granted, kAnalysis);
        EXPECT_EQ(p.rec.denied, kMarketing);
    }
}

TEST(ParseRecord, MissingPurposeIsNeither) {
    const auto p = parse({"v", "1", "ads", "0"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.granted, 0u);
    EXPECT_EQ(p.rec.denied, kAds);
}

TEST(ParseRecord, UndeclaredAndCaseMismatchedFieldsAreIgnored) {
    const auto p = parse({"v", "1", "Marketing", "1", "MARKETING", "1", "marketing_x", "1", "market", "1",
                          "unknown", "whatever", "", "1", "service", "1"});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.granted, kService);
    EXPECT_EQ(p.rec.denied, 0u);
}

TEST(ParseRecord, DuplicateFieldLastWins) {
    auto p = parse({"marketing", "1", "marketing", "0"});
    EXPECT_EQ(p.rec.granted, 0u);
    EXPECT_EQ(p.rec.denied, kMarketing);
    p = parse({"marketing", "0", "marketing", "1"});
    EXPECT_EQ(p.rec.granted, kMarketing);
    EXPECT_EQ(p.rec.denied, 0u);
    p = parse({"marketing", "1", "marketing", "maybe"});  // a malformed last value never grants
    EXPECT_EQ(p.rec.granted, 0u);
    EXPECT_EQ(p.rec.denied, kMarketing);
    p = parse({"v", "1", "v", "9"});
    EXPECT_EQ(p.rec.version, 9u);
}

TEST(ParseRecord, SchemaFieldsAreNeverPurposes) {
    // Even if an edge declared purposes with these names, v, exp and erased
    // keep their schema meaning.
    const std::string_view names[] = {"v", "exp", "erased"};
    const auto p = parse({"v", "1", "exp", "5", "erased", "0"}, PurposeNames{names, 3});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.granted, 0u);
    EXPECT_EQ(p.rec.denied, 0u);
}

TEST(ParseRecord, NoDeclaredPurposes) {
    const auto p = parse({"v", "4", "marketing", "1"}, PurposeNames{});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.version, 4u);
    EXPECT_EQ(p.rec.granted, 0u);
}

TEST(ParseRecord, ThirtyTwoPurposes) {
    std::vector<std::string> storage;
    for (int i = 0; i < 32; i++) storage.push_back("p" + std::to_string(i));
    std::vector<std::string_view> names(storage.begin(), storage.end());
    const auto p = parse({"p0", "1", "p31", "1", "p30", "0"}, PurposeNames{names.data(), names.size()});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.granted, purpose_bit(0) | purpose_bit(31));
    EXPECT_EQ(p.rec.denied, purpose_bit(30));
}

TEST(ParseRecord, BinaryValuesAreSafe) {
    const std::string nul("1\0", 2);
    const auto p = parse({"v", "1", "service", nul, "analysis", std::string(1, '\0')});
    ASSERT_EQ(p.status, RecordParse::ok);
    EXPECT_EQ(p.rec.granted, 0u);
    EXPECT_EQ(p.rec.denied, kService | kAnalysis);
    EXPECT_EQ(parse({"v", std::string("1\0", 2)}).status, RecordParse::malformed);
}

// Property: whatever HGETALL returns, a purpose is granted only when its
// (last) field is exactly "1", and a parse is ok only when v, exp and
// erased are well-formed.
TEST(ParseRecord, RandomizedMalformedValuesNeverGrant) {
    std::mt19937 rng(20240917);
    const std::vector<std::string> fields = {"v", "exp", "erased", "service", "analysis", "marketing", "ads",
                                             "other", "Service", ""};
    const std::vector<std::string> values = {"0", "1", "2", "01", "10", "", " ", "1 ", "true", "-1", "+1",
                                             "18446744073709551616", "42", std::string("1\0", 2)};
    auto random_value = [&]() -> std::string {
        if (rng() % 3) return values[rng() % values.size()];
        std::string s(rng() % 4, '\0');
        for (auto& c : s) c = static_cast<char>(rng() % 256);
        return s;
    };
    auto is_u64 = [](const std::string& s) {
        if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) return false;
        return s.size() < 20 || s <= "18446744073709551615";
    };
    for (int iter = 0; iter < 20000; iter++) {
        std::vector<std::string> items;
        const size_t pairs = rng() % 8;
        for (size_t i = 0; i < pairs; i++) {
            items.push_back(fields[rng() % fields.size()]);
            items.push_back(random_value());
        }
        // Reference: the last value of each field.
        bool well_formed = true;
        PurposeMask expect_granted = 0, expect_denied = 0;
        for (size_t i = 0; i < items.size(); i += 2) {
            const std::string &f = items[i], &v = items[i + 1];
            if (f == "v" || f == "exp") {
                well_formed = well_formed && is_u64(v);
            } else if (f == "erased") {
                well_formed = well_formed && (v == "0" || v == "1");
            } else {
                for (unsigned k = 0; k < 4; k++) {
                    if (f != kNames[k]) continue;
                    expect_granted &= ~purpose_bit(k);
                    expect_denied &= ~purpose_bit(k);
                    (v == "1" ? expect_granted : expect_denied) |= purpose_bit(k);
                }
            }
        }
        const auto p = parse(items);
        SCOPED_TRACE(::testing::Message() << "iteration " << iter << " -> " << name(p.status));
        if (items.empty()) {
            EXPECT_EQ(p.status, RecordParse::none);
        } else if (!well_formed) {
            EXPECT_EQ(p.status, RecordParse::malformed);
        } else {
            ASSERT_EQ(p.status, RecordParse::ok);
            EXPECT_EQ(p.rec.granted, expect_granted);
            EXPECT_EQ(p.rec.denied, expect_denied);
            EXPECT_EQ(p.rec.granted & p.rec.denied, 0u);
        }
    }
}

// ---- record_key ---------------------------------------------------------------------

TEST(RecordKey, PrefixBraceSubjectBrace) {
    char buf[64];
    std::fill(std::begin(buf), std::end(buf), '#');
    size_t n = record_key("consent:", "cust-000042", buf);
    EXPECT_EQ(std::string(buf, n), "consent:{cust-000042}");
    EXPECT_EQ(n, 8u + 11u + 2u);
    EXPECT_EQ(buf[n], '#');  // nothing written past the documented size
    n = record_key("", "a b", buf);
    EXPECT_EQ(std::string(buf, n), "{a b}");
}

// ---- parse_update -------------------------------------------------------------------

TEST(ParseUpdate, FlushAll) {
    UpdateMessage m;
    m.subject = "x";
    m.version = 9;
    ASSERT_TRUE(parse_update("*", &m));
    EXPECT_TRUE(m.flush_all);
    EXPECT_TRUE(m.subject.empty());
    EXPECT_EQ(m.version, 0u);
}

TEST(ParseUpdate, SubjectAndVersion) {
    UpdateMessage m;
    ASSERT_TRUE(parse_update("cust-000042 17", &m));
    EXPECT_FALSE(m.flush_all);
    EXPECT_EQ(m.subject, "cust-000042");
    EXPECT_EQ(m.version, 17u);

    ASSERT_TRUE(parse_update("a b  c 3", &m));  // split at the last space
    EXPECT_EQ(m.subject, "a b  c");
    EXPECT_EQ(m.version, 3u);

    ASSERT_TRUE(parse_update("* 2", &m));  // "*" is also a possible subject
    EXPECT_FALSE(m.flush_all);
    EXPECT_EQ(m.subject, "*");

    ASSERT_TRUE(parse_update("s 18446744073709551615", &m));
    EXPECT_EQ(m.version, UINT64_MAX);
    ASSERT_TRUE(parse_update("s 0", &m));
    EXPECT_EQ(m.version, 0u);
}

TEST(ParseUpdate, SubjectLength) {
    UpdateMessage m;
    EXPECT_TRUE(parse_update(std::string(64, 'x') + " 1", &m));
    EXPECT_EQ(m.subject.size(), 64u);
    EXPECT_FALSE(parse_update(std::string(65, 'x') + " 1", &m));
    EXPECT_FALSE(parse_update(" 1", &m));
}

TEST(ParseUpdate, Rejects) {
    UpdateMessage m;
    const std::vector<std::string> bad_messages = {
        "", " ", "**", "* ", "cust", "cust ", "cust -1", "cust +1", "cust 1x", "cust 1.0", "cust 0x1",
        "cust 18446744073709551616", "cust 1\n", "cust\t1", "cu\tst 1", "cu\x7fst 1", "cu\x80st 1",
        std::string("cu\0st 1", 7), "cust 1 "};
    for (const std::string& bad : bad_messages) {
        SCOPED_TRACE(bad);
        EXPECT_FALSE(parse_update(bad, &m));
    }
}
