#include "policy/cookie_rewrite.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace consent;

namespace {

struct Result {
    std::string header;
    size_t removed = 0;
    size_t kept = 0;
    std::string names;
};

constexpr char kGuard = '\x5a';
constexpr size_t kGuardLen = 16;

// Runs rewrite_cookie_header into a buffer of exactly
// cookie_rewrite_max_len(header.size()) bytes followed by a guard.
Result rewrite(std::string_view header, const StripPolicy& policy) {
    const size_t cap = cookie_rewrite_max_len(header.size());
    std::vector<char> out(cap + kGuardLen, kGuard);
    char names_buf[1024];
    NameList names(names_buf, sizeof names_buf);
    const CookieRewrite r = rewrite_cookie_header(header, policy, out.data(), &names);
    EXPECT_LE(r.len, cap);
    for (size_t i = cap; i < out.size(); i++) EXPECT_EQ(out[i], kGuard) << "overflow at " << i;
    return {std::string(out.data(), r.len), r.removed, r.kept, std::string(names.view())};
}

class CookieRewriteTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(rules.add(0, "_ga", nullptr));
        ASSERT_TRUE(rules.add(0, "_ga_*", nullptr));
        ASSERT_TRUE(rules.add(0, "_gid", nullptr));
        ASSERT_TRUE(rules.add(1, "pref", nullptr));
        policy.always = "cuid";
        policy.rules = &rules;
        policy.granted = purpose_bit(1);
    }
    StripRules rules;
    StripPolicy policy;
};

}  // namespace

TEST(FindCookie, Basics) {
    std::string_view v;
    EXPECT_TRUE(find_cookie("a=1; cuid=TOKEN; b=2", "cuid", &v));
    EXPECT_EQ(v, "TOKEN");
    EXPECT_TRUE(find_cookie("cuid=first; cuid=second", "cuid", &v));
    EXPECT_EQ(v, "first");
    EXPECT_TRUE(find_cookie("CUID=upper", "cuid", &v));
    EXPECT_EQ(v, "upper");
    EXPECT_TRUE(find_cookie(" \t cuid=x \t;b", "cuid", &v));
    EXPECT_EQ(v, "x");
    EXPECT_TRUE(find_cookie("cuid = spaced ", "cuid", &v));
    EXPECT_EQ(v, "spaced");
    EXPECT_TRUE(find_cookie("a;cuid", "cuid", &v));  // no '=': all name, empty value
    EXPECT_EQ(v, "");
    EXPECT_TRUE(find_cookie("cuid=a=b", "cuid", &v));
    EXPECT_EQ(v, "a=b");
    EXPECT_TRUE(find_cookie(";;;cuid=v;;", "cuid", &v));
    EXPECT_EQ(v, "v");
}

TEST(FindCookie, Misses) {
    std::string_view v = "untouched";
    EXPECT_FALSE(find_cookie("", "cuid", &v));
    EXPECT_FALSE(find_cookie(";", "cuid", &v));
    EXPECT_FALSE(find_cookie("cuidx=1; xcuid=2", "cuid", &v));
    EXPECT_FALSE(find_cookie("a=cuid", "cuid", &v));
    EXPECT_FALSE(find_cookie("cu%69d=1", "cuid", &v));  // cookie names are not decoded
    EXPECT_FALSE(find_cookie("c uid=1", "cuid", &v));
    EXPECT_EQ(v, "untouched");
}

TEST_F(CookieRewriteTest, NothingRemovedIsVerbatim) {
    const std::pair<std::string_view, size_t> cases[] = {
        {"", 0}, {";", 0}, {" ; \t;", 0}, {"a=1", 1}, {"a=1;b=2", 2}, {"a=1;  b=2 ;", 2},
        {"pref=1; PREF=2", 2}, {"novalue", 1}, {"a;b;c", 3}, {"=x", 1},
    };
    for (auto [h, kept] : cases) {
        const Result r = rewrite(h, policy);
        EXPECT_EQ(r.header, h);
        EXPECT_EQ(r.removed, 0u);
        EXPECT_EQ(r.kept, kept) << h;
        EXPECT_EQ(r.names, "");
    }
}

TEST_F(CookieRewriteTest, RemovesAndJoins) {
    Result r = rewrite("a=1; _ga=GA1.2.3; b=2", policy);
    EXPECT_EQ(r.header, "a=1; b=2");
    EXPECT_EQ(r.removed, 1u);
    EXPECT_EQ(r.kept, 2u);
    EXPECT_EQ(r.names, "_ga");

    r = rewrite("_ga=1", policy);
    EXPECT_EQ(r.header, "");
    EXPECT_EQ(r.kept, 0u);
    EXPECT_EQ(r.removed, 1u);

    r = rewrite("cuid=T;_ga_ABC=1;_gid=2;pref=dark", policy);
    EXPECT_EQ(r.header, "pref=dark");
    EXPECT_EQ(r.names, "cuid,_ga_ABC,_gid");

    r = rewrite("a=1;b=2;c=3;_gid=x", policy);  // grows: the reason for cookie_rewrite_max_len
    EXPECT_EQ(r.header, "a=1; b=2; c=3");
}

TEST_F(CookieRewriteTest, GrantedKeeps) {
    policy.granted = purpose_bit(0) | purpose_bit(1);
    Result r = rewrite("_ga=1; cuid=T; pref=x", policy);
    EXPECT_EQ(r.header, "_ga=1; pref=x");
    EXPECT_EQ(r.names, "cuid");
    policy.granted = 0;
    r = rewrite("_ga=1; cuid=T; pref=x", policy);
    EXPECT_EQ(r.header, "");
    EXPECT_EQ(r.names, "_ga,cuid,pref");
}

TEST_F(CookieRewriteTest, BlanksAndEmptyPairs) {
    const Result r = rewrite(" \ta=1 \t;;  ; _ga=x ;\tb = 2\t; ;c=3  ", policy);
    EXPECT_EQ(r.header, "a=1; b = 2; c=3");
    EXPECT_EQ(r.kept, 3u);
    EXPECT_EQ(r.removed, 1u);
}

TEST_F(CookieRewriteTest, NameTrimmedBeforeMatching) {
    const Result r = rewrite("_ga \t= 1; _GID=2; k", policy);
    EXPECT_EQ(r.header, "k");
    EXPECT_EQ(r.names, "_ga,_GID");
}

TEST_F(CookieRewriteTest, PairsWithoutEquals) {
    // A pair without '=' is all name: the cautious reading strips it.
    Result r = rewrite("_ga; a=1; cuid", policy);
    EXPECT_EQ(r.header, "a=1");
    EXPECT_EQ(r.removed, 2u);
    r = rewrite("justtext", policy);
    EXPECT_EQ(r.header, "justtext");
    EXPECT_EQ(r.kept, 1u);
}

TEST_F(CookieRewriteTest, EmptyNamesAndValues) {
    const Result r = rewrite("=; =v; _ga=; a=; cuid=", policy);
    EXPECT_EQ(r.header, "=; =v; a=");
    EXPECT_EQ(r.removed, 2u);
    EXPECT_EQ(r.kept, 3u);
}

TEST_F(CookieRewriteTest, RepeatedAndUpperCase) {
    const Result r = rewrite("_GA=1; x=1; _ga=2; _Ga_Q=3; x=2; CUID=4; cuid=5", policy);
    EXPECT_EQ(r.header, "x=1; x=2");
    EXPECT_EQ(r.removed, 5u);
    EXPECT_EQ(r.names, "_GA,_ga,_Ga_Q,CUID,cuid");
}

TEST_F(CookieRewriteTest, UnlistableNamesAreRemovedButNotListed) {
    const Result r = rewrite(std::string("_ga_\x01=1; _ga_\xc3\xa9=2; _ga_a,b=3; k=v"), policy);
    EXPECT_EQ(r.header, "k=v");
    EXPECT_EQ(r.removed, 3u);
    EXPECT_EQ(r.names, "");
}

TEST_F(CookieRewriteTest, KeptBytesAreExact) {
    const std::string weird = std::string("v=\"q,\\\"x\"%zz+\x01\x7f\xff=") + std::string(1, '\0') + "z";
    const Result r = rewrite("_ga=1;" + weird + ";a=b=c", policy);
    EXPECT_EQ(r.header, weird + "; a=b=c");
}

TEST_F(CookieRewriteTest, ManyAndHuge) {
    std::string h, want;
    for (int i = 0; i < 500; i++) {
        h += "k" + std::to_string(i) + "=" + std::to_string(i) + ";_ga_" + std::to_string(i) + "=x;";
        want += (want.empty() ? "" : "; ") + ("k" + std::to_string(i) + "=" + std::to_string(i));
    }
    Result r = rewrite(h, policy);
    EXPECT_EQ(r.header, want);
    EXPECT_EQ(r.kept, 500u);
    EXPECT_EQ(r.removed, 500u);

    const std::string big(1 << 20, 'v');
    r = rewrite("a=" + big + "; _gid=1; " + std::string(50000, ';') + "b=" + big, policy);
    EXPECT_EQ(r.header, "a=" + big + "; b=" + big);
}

TEST_F(CookieRewriteTest, WorstCaseGrowthFits) {
    // One-byte pairs without spaces and one removed pair: the most growth.
    for (int n = 1; n < 200; n++) {
        std::string h;
        for (int i = 0; i < n; i++) h += "k;";
        h += "cuid";
        const Result r = rewrite(h, policy);  // checks the guard
        EXPECT_EQ(r.kept, static_cast<size_t>(n));
        EXPECT_EQ(r.header.size(), static_cast<size_t>(3 * n - 2));
    }
}

TEST_F(CookieRewriteTest, NullNames) {
    char out[32];
    const CookieRewrite r = rewrite_cookie_header("a=1; cuid=2", policy, out, nullptr);
    EXPECT_EQ(std::string(out, r.len), "a=1");
    EXPECT_EQ(r.removed, 1u);
}

TEST_F(CookieRewriteTest, RandomizedAgainstModel) {
    std::mt19937 rng(611);
    const std::vector<std::string> names = {"a", "b", "_ga", "_GA", "_ga_x", "_gid", "_gidx", "cuid", "CUID",
                                            "pref", "", "_ga_", "x y", "_g"};
    const std::string junk = " \t=;,%\x01\xff";
    auto model_removes = [](std::string n) {
        for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return n == "_ga" || n == "_gid" || n == "cuid" || n.rfind("_ga_", 0) == 0;
    };
    auto trim = [](std::string s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(0, 1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
        return s;
    };
    for (int iter = 0; iter < 3000; iter++) {
        std::string h;
        const int n = std::uniform_int_distribution<int>(0, 10)(rng);
        for (int i = 0; i < n; i++) {
            if (i) h += std::uniform_int_distribution<int>(0, 1)(rng) ? "; " : ";";
            if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) h += ' ';
            h += names[std::uniform_int_distribution<size_t>(0, names.size() - 1)(rng)];
            if (std::uniform_int_distribution<int>(0, 4)(rng)) {
                h += '=';
                const int vl = std::uniform_int_distribution<int>(0, 5)(rng);
                for (int j = 0; j < vl; j++) {
                    char c = junk[std::uniform_int_distribution<size_t>(0, junk.size() - 1)(rng)];
                    h += c == ';' ? 'v' : c;
                }
            }
        }
        std::vector<std::string> kept;
        size_t removed = 0;
        size_t pos = 0;
        while (pos < h.size()) {
            const size_t end = std::min(h.find(';', pos), h.size());
            const std::string pair = trim(h.substr(pos, end - pos));
            pos = end + 1;
            if (pair.empty()) continue;
            if (model_removes(trim(pair.substr(0, pair.find('='))))) {
                removed++;
            } else {
                kept.push_back(pair);
            }
        }
        std::string want;
        for (size_t i = 0; i < kept.size(); i++) want += (i ? "; " : "") + kept[i];
        if (removed == 0) want = h;
        const Result r = rewrite(h, policy);
        ASSERT_EQ(r.header, want) << "header: " << h;
        ASSERT_EQ(r.removed, removed);
        ASSERT_EQ(r.kept, kept.size());
        if (removed == 0) continue;
        std::string_view rest = r.header;
        while (!rest.empty()) {
            const size_t sep = std::min(rest.find("; "), rest.size());
            const std::string pair(rest.substr(0, sep));
            ASSERT_FALSE(model_removes(trim(pair.substr(0, pair.find('='))))) << r.header;
            rest.remove_prefix(std::min(sep + 2, rest.size()));
        }
    }
}

TEST(SetCookieName, Forms) {
    EXPECT_EQ(set_cookie_name("_ga=GA1.2; Path=/; Max-Age=10"), "_ga");
    EXPECT_EQ(set_cookie_name(" \t_ga \t= x"), "_ga");
    EXPECT_EQ(set_cookie_name("_ga"), "_ga");
    EXPECT_EQ(set_cookie_name("  _ga  "), "_ga");
    EXPECT_EQ(set_cookie_name("_ga; Path=/"), "_ga");  // ';' before any '='
    EXPECT_EQ(set_cookie_name("_ga=a;b"), "_ga");
    EXPECT_EQ(set_cookie_name("=v"), "");
    EXPECT_EQ(set_cookie_name(""), "");
    EXPECT_EQ(set_cookie_name(";x=1"), "");
    EXPECT_EQ(set_cookie_name("a b=1"), "a b");
}
