#include "policy/query_rewrite.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

using namespace consent;

namespace {

struct Result {
    std::string query;
    size_t removed = 0;
    std::string names;
    size_t name_count = 0;
};

constexpr char kGuard = '\x5a';
constexpr size_t kGuardLen = 16;

// Runs rewrite_query into a buffer of exactly query.size() bytes followed by
// a guard, so a write past the documented size fails the test.
Result rewrite(std::string_view query, const StripPolicy& policy, size_t names_cap = 1024) {
    std::vector<char> out(query.size() + kGuardLen, kGuard);
    std::vector<char> names_buf(names_cap + kGuardLen, kGuard);
    NameList names(names_buf.data(), names_cap);
    const QueryRewrite r = rewrite_query(query, policy, out.data(), &names);
    EXPECT_LE(r.len, query.size());
    for (size_t i = query.size(); i < out.size(); i++) EXPECT_EQ(out[i], kGuard) << "overflow at " << i;
    for (size_t i = names_cap; i < names_buf.size(); i++) EXPECT_EQ(names_buf[i], kGuard);
    return {std::string(out.data(), r.len), r.removed, std::string(names.view()), names.count()};
}

std::string decode(std::string_view in) {
    std::string out(in.size(), '\0');
    const long n = percent_decode(in, out.data(), out.size());
    EXPECT_GE(n, 0);
    out.resize(static_cast<size_t>(n));
    return out;
}

class QueryRewriteTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(rules.add(0, "utm_*", nullptr));
        ASSERT_TRUE(rules.add(0, "gclid", nullptr));
        ASSERT_TRUE(rules.add(1, "ref", nullptr));
        policy.always = "ctk";
        policy.rules = &rules;
        policy.granted = purpose_bit(1);  // ref is kept, utm_* and gclid go
    }
    StripRules rules;
    StripPolicy policy;
};

}  // namespace

TEST(PercentDecode, Escapes) {
    EXPECT_EQ(decode(""), "");
    EXPECT_EQ(decode("abc"), "abc");
    EXPECT_EQ(decode("ut%6D_source"), "utm_source");
    EXPECT_EQ(decode("%4a%4A"), "JJ");
    EXPECT_EQ(decode("%7e%7E%2c"), "~~,");
    EXPECT_EQ(decode("a+b"), "a+b");  // '+' is not a space here
    EXPECT_EQ(decode("%00"), std::string(1, '\0'));
    EXPECT_EQ(decode("%ff"), "\xff");
}

TEST(PercentDecode, MalformedStaysLiteral) {
    EXPECT_EQ(decode("%"), "%");
    EXPECT_EQ(decode("a%"), "a%");
    EXPECT_EQ(decode("%4"), "%4");
    EXPECT_EQ(decode("%zz"), "%zz");
    EXPECT_EQ(decode("%4g"), "%4g");
    EXPECT_EQ(decode("%g4"), "%g4");
    EXPECT_EQ(decode("%%41"), "%A");
    EXPECT_EQ(decode("%2541"), "%41");  // decoded once only
    EXPECT_EQ(decode("100%"), "100%");
}

TEST(PercentDecode, Capacity) {
    char out[4];
    EXPECT_EQ(percent_decode("abcd", out, 4), 4);
    EXPECT_EQ(percent_decode("abcde", out, 4), -1);
    EXPECT_EQ(percent_decode("%41%42%43%44", out, 4), 4);
    EXPECT_EQ(std::string(out, 4), "ABCD");
    EXPECT_EQ(percent_decode("%41%42%43%44%45", out, 4), -1);
    EXPECT_EQ(percent_decode("", nullptr, 0), 0);
    EXPECT_EQ(percent_decode("a", nullptr, 0), -1);
}

TEST(FindQueryArg, Basics) {
    std::string_view v;
    EXPECT_TRUE(find_query_arg("a=1&ctk=TOKEN&b=2", "ctk", &v));
    EXPECT_EQ(v, "TOKEN");
    EXPECT_TRUE(find_query_arg("ctk=first&ctk=second", "ctk", &v));
    EXPECT_EQ(v, "first");
    EXPECT_TRUE(find_query_arg("CTK=upper", "ctk", &v));
    EXPECT_EQ(v, "upper");
    EXPECT_TRUE(find_query_arg("c%74k=enc%2Dval", "ctk", &v));
    EXPECT_EQ(v, "enc%2Dval");  // the value stays raw
    EXPECT_TRUE(find_query_arg("x=1&ctk", "ctk", &v));
    EXPECT_EQ(v, "");
    EXPECT_TRUE(find_query_arg("ctk=", "ctk", &v));
    EXPECT_EQ(v, "");
    EXPECT_TRUE(find_query_arg("ctk=a=b", "ctk", &v));
    EXPECT_EQ(v, "a=b");
    EXPECT_TRUE(find_query_arg("&&ctk=x&&", "ctk", &v));
    EXPECT_EQ(v, "x");
}

TEST(FindQueryArg, Misses) {
    std::string_view v = "untouched";
    EXPECT_FALSE(find_query_arg("", "ctk", &v));
    EXPECT_FALSE(find_query_arg("&", "ctk", &v));
    EXPECT_FALSE(find_query_arg("&&&", "ctk", &v));
    EXPECT_FALSE(find_query_arg("ctkx=1&xctk=2&ct=3", "ctk", &v));
    EXPECT_FALSE(find_query_arg("?ctk=1", "ctk", &v));  // the caller passes the bytes after '?'
    EXPECT_FALSE(find_query_arg("ct%00k=1&ctk%00=2", "ctk", &v));
    EXPECT_FALSE(find_query_arg("a=ctk", "ctk", &v));
    EXPECT_EQ(v, "untouched");
}

TEST(FindQueryArg, LongNames) {
    std::string_view v;
    const std::string long_name(kMaxArgName + 10, 'c');
    const std::string q = long_name + "=1&ctk=2";
    EXPECT_TRUE(find_query_arg(q, "ctk", &v));
    EXPECT_EQ(v, "2");
    // A name of exactly kMaxArgName decoded bytes is still decoded.
    std::string enc;
    for (size_t i = 0; i < kMaxArgName; i++) enc += "%61";
    const std::string q2 = enc + "=x";
    EXPECT_TRUE(find_query_arg(q2, std::string(kMaxArgName, 'a'), &v));
    EXPECT_EQ(v, "x");
}

TEST_F(QueryRewriteTest, NothingRemovedIsVerbatim) {
    for (std::string_view q : {"", "&", "&&", "a=1", "a=1&&b=2&", "&a", "=", "ref=1&REF=2", "a=%zz+%41&b",
                               "?utm_source=x"}) {
        const Result r = rewrite(q, policy);
        EXPECT_EQ(r.query, q);
        EXPECT_EQ(r.removed, 0u);
        EXPECT_EQ(r.names, "");
    }
}

TEST_F(QueryRewriteTest, RemovesTokenAndStripsWithoutDanglingAmpersand) {
    EXPECT_EQ(rewrite("ctk=T&a=1", policy).query, "a=1");
    EXPECT_EQ(rewrite("a=1&ctk=T", policy).query, "a=1");
    EXPECT_EQ(rewrite("a=1&ctk=T&b=2", policy).query, "a=1&b=2");
    EXPECT_EQ(rewrite("ctk=T", policy).query, "");
    EXPECT_EQ(rewrite("utm_source=a&utm_medium=b&gclid=c", policy).query, "");
    const Result r = rewrite("utm_source=a&x=1&gclid=c&ref=r&ctk=T", policy);
    EXPECT_EQ(r.query, "x=1&ref=r");
    EXPECT_EQ(r.removed, 3u);
    EXPECT_EQ(r.names, "utm_source,gclid,ctk");
    EXPECT_EQ(r.name_count, 3u);
}

TEST_F(QueryRewriteTest, EmptySegmentsGoWhenSomethingIsRemoved) {
    EXPECT_EQ(rewrite("&", policy).query, "&");
    EXPECT_EQ(rewrite("&ctk=1", policy).query, "");
    EXPECT_EQ(rewrite("&&a=1&&ctk=1&&b=2&&", policy).query, "a=1&b=2");
    EXPECT_EQ(rewrite("ctk&&&", policy).query, "");
}

TEST_F(QueryRewriteTest, GrantedPurposeKeepsItsArgs) {
    policy.granted = purpose_bit(0) | purpose_bit(1);
    const Result r = rewrite("utm_source=a&gclid=b&ctk=T&ref=c", policy);
    EXPECT_EQ(r.query, "utm_source=a&gclid=b&ref=c");
    EXPECT_EQ(r.names, "ctk");
    policy.granted = 0;
    EXPECT_EQ(rewrite("utm_source=a&gclid=b&ctk=T&ref=c&z", policy).query, "z");
}

TEST_F(QueryRewriteTest, PercentEncodedNames) {
    Result r = rewrite("ut%6D_source=x&a=1", policy);
    EXPECT_EQ(r.query, "a=1");
    EXPECT_EQ(r.names, "utm_source");
    r = rewrite("%75%74%6d%5f%73=1&%63%74%6B=t&b=2", policy);
    EXPECT_EQ(r.query, "b=2");
    EXPECT_EQ(r.names, "utm_s,ctk");
    // Only the name is decoded: an encoded '=' is part of the name.
    r = rewrite("gclid%3Dx=1&a", policy);
    EXPECT_EQ(r.query, "gclid%3Dx=1&a");
    // An encoded '&' does not split arguments.
    r = rewrite("a=1%26utm_x=2", policy);
    EXPECT_EQ(r.removed, 0u);
}

TEST_F(QueryRewriteTest, NulAndUnlistableNames) {
    // utm_\0 is still utm_*; it is listed in its raw form.
    Result r = rewrite("utm_%00=1&a=2", policy);
    EXPECT_EQ(r.query, "a=2");
    EXPECT_EQ(r.names, "utm_%00");
    // ct\0k is not ctk.
    r = rewrite("ct%00k=1", policy);
    EXPECT_EQ(r.removed, 0u);
    // A decoded name with ',' or ';' or CR LF is listed raw.
    r = rewrite("utm_a%2Cb=1&utm_c%3Bd=2&utm_%0d%0aX:%20y=3&k", policy);
    EXPECT_EQ(r.query, "k");
    EXPECT_EQ(r.removed, 3u);
    EXPECT_EQ(r.names, "utm_a%2Cb,utm_c%3Bd,utm_%0d%0aX:%20y");
    // Raw bytes that are not listable either: removed, not listed.
    r = rewrite("utm_a b=1&utm_\xc3\xa9=2&utm_x,y=3&k", policy);
    EXPECT_EQ(r.query, "k");
    EXPECT_EQ(r.removed, 3u);
    EXPECT_EQ(r.names, "");
    EXPECT_EQ(r.name_count, 0u);
}

TEST_F(QueryRewriteTest, EmptyNamesAndValues) {
    Result r = rewrite("=1&utm_a=&=&a&ctk=&b=", policy);
    EXPECT_EQ(r.query, "=1&=&a&b=");
    EXPECT_EQ(r.names, "utm_a,ctk");
    r = rewrite("utm_a", policy);  // no '=' at all
    EXPECT_EQ(r.query, "");
    EXPECT_EQ(r.removed, 1u);
}

TEST_F(QueryRewriteTest, RepeatedArgsAreAllRemovedAndListedOnce) {
    const Result r = rewrite("utm_a=1&x=1&utm_a=2&x=2&UTM_A=3&ut%6d_a=4", policy);
    EXPECT_EQ(r.query, "x=1&x=2");
    EXPECT_EQ(r.removed, 4u);
    EXPECT_EQ(r.names, "utm_a,UTM_A");
}

TEST_F(QueryRewriteTest, UpperCaseNames) {
    const Result r = rewrite("UTM_SOURCE=1&GcLiD=2&CTK=3&Ref=4", policy);
    EXPECT_EQ(r.query, "Ref=4");
    EXPECT_EQ(r.names, "UTM_SOURCE,GcLiD,CTK");
}

TEST_F(QueryRewriteTest, KeptBytesAreExact) {
    const std::string weird = std::string("v=%zz+%41;,\"'<>\x01\x7f\xff=") + std::string(1, '\0') + "x";
    const std::string q = "ctk=1&" + weird + "&a=b=c&%41=%42&ref=a%26b";
    const Result r = rewrite(q, policy);
    EXPECT_EQ(r.query, weird + "&a=b=c&%41=%42&ref=a%26b");
}

TEST_F(QueryRewriteTest, NamesLongerThanMaxArgName) {
    const std::string tail(300, 'a');
    // Plain long name owned by a prefix.
    Result r = rewrite("utm_" + tail + "=1&k", policy);
    EXPECT_EQ(r.query, "k");
    EXPECT_EQ(r.names, "utm_" + tail);
    // Encoded and long: the prefix still claims it, and it is listed raw.
    r = rewrite("ut%6D_" + tail + "=1&k", policy);
    EXPECT_EQ(r.query, "k");
    EXPECT_EQ(r.names, "ut%6D_" + tail);
    // Over kMaxArgName * 3 raw bytes, all escapes.
    std::string enc = "%75%74%6D%5F";
    for (int i = 0; i < 400; i++) enc += "%61";
    r = rewrite(enc + "=1&k", policy);
    EXPECT_EQ(r.query, "k");
    EXPECT_EQ(r.removed, 1u);
    // An exact name never matches a longer one.
    r = rewrite("gclid" + tail + "=1&ctk" + tail, policy);
    EXPECT_EQ(r.removed, 0u);
}

TEST(QueryRewriteLimits, ExactRuleOfMaxLength) {
    const std::string name(kMaxArgName, 'n');
    StripRules rules;
    ASSERT_TRUE(rules.add(0, name, nullptr));
    StripPolicy p{"", &rules, 0};
    std::string enc;
    for (size_t i = 0; i < kMaxArgName; i++) enc += "%6E";
    EXPECT_EQ(rewrite(enc + "=1&k", p).query, "k");
    EXPECT_EQ(rewrite(enc + "%6E=1&k", p).removed, 0u);  // one byte longer
    EXPECT_EQ(rewrite(name + "n=1&k", p).removed, 0u);
    EXPECT_EQ(rewrite(name + "=1&k", p).query, "k");
}

TEST_F(QueryRewriteTest, ManyArgs) {
    std::string q, want;
    for (int i = 0; i < 400; i++) {
        const std::string keep = "k" + std::to_string(i) + "=" + std::to_string(i * 7);
        q += keep + "&utm_" + std::to_string(i) + "=x&";
        want += (want.empty() ? "" : "&") + keep;
    }
    const Result r = rewrite(q, policy, 1 << 16);
    EXPECT_EQ(r.query, want);
    EXPECT_EQ(r.removed, 400u);
    EXPECT_EQ(r.name_count, 400u);
    // A small names buffer drops names silently; the rewrite is the same.
    const Result small = rewrite(q, policy, 20);
    EXPECT_EQ(small.query, want);
    EXPECT_EQ(small.names, "utm_0,utm_1,utm_2");
}

TEST_F(QueryRewriteTest, HugeQuery) {
    const std::string big_value(1 << 20, 'v');
    const std::string q = "a=" + big_value + "&ctk=T&" + std::string(100000, '&') + "b=" + big_value;
    const Result r = rewrite(q, policy);
    EXPECT_EQ(r.query, "a=" + big_value + "&b=" + big_value);
    const Result untouched = rewrite("a=" + big_value, policy);
    EXPECT_EQ(untouched.removed, 0u);
    EXPECT_EQ(untouched.query.size(), big_value.size() + 2);
}

TEST_F(QueryRewriteTest, NullNames) {
    char out[32];
    const QueryRewrite r = rewrite_query("a=1&ctk=2", policy, out, nullptr);
    EXPECT_EQ(std::string(out, r.len), "a=1");
    EXPECT_EQ(r.removed, 1u);
}

// Randomized: names from a pool (some owned, in every spelling), random
// values and empty segments. The rewrite must keep exactly the segments a
// reference model keeps, byte for byte and in order.
TEST_F(QueryRewriteTest, RandomizedAgainstModel) {
    std::mt19937 rng(20240611);
    const std::vector<std::string> pool = {
        "a",     "b",        "ref",        "utm_source", "UTM_Medium", "ut%6D_x",  "%75tm_",   "gclid",
        "GCLID", "gcli%64",  "gclid2",     "ctk",        "c%54k",      "ctk%00",   "",         "utm",
        "x%zz",  "utm_%2C",  "%",          "a+b",        "utm_a b",    "%63%74%6b", "xutm_a", "Ref"};
    const std::string value_bytes = "abc=%+;,/?#\x01\xff 09XZ";
    auto lower = [](std::string s) {
        for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    auto model_removes = [&](const std::string& raw) {
        const std::string n = lower(decode(raw));
        return n == "ctk" || n == "gclid" || n.rfind("utm_", 0) == 0;
    };
    for (int iter = 0; iter < 3000; iter++) {
        std::vector<std::string> segs;
        const int n = std::uniform_int_distribution<int>(0, 12)(rng);
        for (int i = 0; i < n; i++) {
            const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
            if (kind == 0) {
                segs.emplace_back();  // empty segment
                continue;
            }
            std::string seg = pool[std::uniform_int_distribution<size_t>(0, pool.size() - 1)(rng)];
            if (kind > 2) {
                seg += '=';
                const int vl = std::uniform_int_distribution<int>(0, 6)(rng);
                for (int j = 0; j < vl; j++)
                    seg += value_bytes[std::uniform_int_distribution<size_t>(0, value_bytes.size() - 1)(rng)];
            }
            segs.push_back(seg);
        }
        std::string q;
        for (size_t i = 0; i < segs.size(); i++) q += (i ? "&" : "") + segs[i];

        std::vector<std::string> kept, removed_names;
        size_t removed = 0;
        for (const auto& s : segs) {
            if (s.empty()) continue;
            const std::string name = s.substr(0, s.find('='));
            if (model_removes(name)) {
                removed++;
                removed_names.push_back(lower(decode(name)));
            } else {
                kept.push_back(s);
            }
        }
        std::string want;
        for (size_t i = 0; i < kept.size(); i++) want += (i ? "&" : "") + kept[i];
        if (removed == 0) want = q;

        const Result r = rewrite(q, policy);
        ASSERT_EQ(r.query, want) << "query: " << q;
        ASSERT_EQ(r.removed, removed) << "query: " << q;
        if (removed == 0) continue;
        // No removed name survives, and nothing else is dropped.
        size_t pos = 0;
        std::vector<std::string> out_segs;
        while (pos <= r.query.size()) {
            const size_t end = std::min(r.query.find('&', pos), r.query.size());
            out_segs.push_back(r.query.substr(pos, end - pos));
            pos = end + 1;
        }
        if (r.query.empty()) out_segs.clear();
        ASSERT_EQ(out_segs, kept);
        for (const auto& s : out_segs) {
            ASSERT_FALSE(s.empty());
            ASSERT_FALSE(model_removes(s.substr(0, s.find('='))));
        }
        // Every listed name is one that was removed, once.
        std::string_view listed = r.names;
        size_t count = 0;
        while (!listed.empty()) {
            const size_t comma = std::min(listed.find(','), listed.size());
            const std::string item(listed.substr(0, comma));
            ASSERT_TRUE(model_removes(item)) << item;
            ASSERT_EQ(std::count(r.names.begin(), r.names.end(), ',') + 1, static_cast<long>(r.name_count));
            listed.remove_prefix(std::min(comma + 1, listed.size()));
            count++;
        }
        ASSERT_EQ(count, r.name_count);
    }
}

// ---- the token in a Referer and in the request line ---------------------------

namespace {

// drop_url_arg into exactly text.size() bytes and a guard.
std::string drop(std::string_view text, UrlText kind, size_t* removed = nullptr, std::string_view name = "ctk") {
    std::vector<char> out(text.size() + kGuardLen, kGuard);
    const QueryRewrite r = drop_url_arg(text, kind, name, out.data());
    for (size_t i = 0; i < kGuardLen; i++) EXPECT_EQ(out[text.size() + i], kGuard) << "wrote past the text";
    if (removed) *removed = r.removed;
    return std::string(out.data(), r.len);
}

}  // namespace

TEST(UrlToken, RefererQueryLosesTheTokenOnly) {
    size_t n = 0;
    EXPECT_EQ(drop("https://shop.example/offers?page=2&ctk=T0K&utm_source=mail", UrlText::url, &n),
              "https://shop.example/offers?page=2&utm_source=mail");
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(drop("https://shop.example/offers?ctk=T0K", UrlText::url, &n), "https://shop.example/offers");
    EXPECT_EQ(drop("https://a/x?ctk=1&k=%41&ctk=2#frag?ctk=3", UrlText::url, &n), "https://a/x?k=%41#frag?ctk=3");
    EXPECT_EQ(n, 2u);
    EXPECT_EQ(drop("https://a/x?ctk=1#f", UrlText::url), "https://a/x#f");
    EXPECT_EQ(drop("https://a/x?%63tk=1&CTK=2&ctkx=3&xctk=4", UrlText::url, &n), "https://a/x?ctkx=3&xctk=4");
    EXPECT_EQ(n, 2u);
}

TEST(UrlToken, NothingToRemoveLeavesTheTextExactly) {
    for (std::string_view t : {"", "https://a/x", "https://a/x?", "https://a/x?&&a=1&&", "https://a/x#ctk=1",
                               "https://a/x?a=%zz&b=ctk", "?", "??ctk", "https://a/ctk=1?x"}) {
        size_t n = 9;
        EXPECT_EQ(drop(t, UrlText::url, &n), std::string(t));
        EXPECT_EQ(n, 0u) << t;
    }
}

TEST(UrlToken, RequestLineQueryEndsBeforeTheProtocol) {
    size_t n = 0;
    EXPECT_EQ(drop("GET /offers?page=2&ctk=T0K HTTP/1.1", UrlText::request_line, &n), "GET /offers?page=2 HTTP/1.1");
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(drop("GET /x%ZZ?ctk=T0K HTTP/1.1", UrlText::request_line), "GET /x%ZZ HTTP/1.1");
    EXPECT_EQ(drop("GET /x?ctk=T0K", UrlText::request_line), "GET /x");  // HTTP/0.9
    EXPECT_EQ(drop("GET /x?a#b&ctk=1 HTTP/1.1", UrlText::request_line), "GET /x?a#b HTTP/1.1");
}

TEST(UrlToken, MayNameNeverMissesAToken) {
    EXPECT_FALSE(url_may_name("https://a/x?page=2&utm_source=x&ctkx=1", "ctk"));
    EXPECT_FALSE(url_may_name("", "ctk"));
    EXPECT_FALSE(url_may_name("ctk=1", "ctk"));  // no '?' before it: not a query
    EXPECT_TRUE(url_may_name("/p?page=2&CtK=1", "ctk"));
    EXPECT_TRUE(url_may_name("/p?ctk", "ctk"));
    EXPECT_TRUE(url_may_name("/p?a=1&%63tk=1", "ctk"));  // may decode to it: scan it
    EXPECT_TRUE(url_may_name("/p?a=1&c%74k=1", "ctk"));
    EXPECT_FALSE(url_may_name("/p?a%20b=1&x%63tk=2", "ctk"));  // cannot decode to a name that begins with c
    EXPECT_TRUE(url_may_name("/p?a=1&ctk#frag", "ctk"));     // where a URL's query ends
    EXPECT_TRUE(url_may_name("GET /p?ctk HTTP/1.1", "ctk"));  // where a request line's query ends
    EXPECT_FALSE(url_may_name("/p?campaign=1&ctkey=2&c=3", "ctk"));
    // every position of a long URL, across the 16- and 32-byte blocks
    for (size_t pad = 0; pad < 80; pad++) {
        const std::string url = "https://shop.example/" + std::string(pad, 'a') + "?x=" + std::string(pad, 'b');
        EXPECT_FALSE(url_may_name(url, "ctk")) << pad;
        EXPECT_TRUE(url_may_name(url + "&ctk=1", "ctk")) << pad;
        EXPECT_TRUE(url_may_name(url + "&CTK", "ctk")) << pad;
        EXPECT_TRUE(url_may_name(url + "&%63tk=1&z=" + std::string(pad, 'z'), "ctk")) << pad;
    }
}
