// The split-once API the module uses (policy/segments.h): scan in the
// extract step, then emit and list from the table after the decision.
// query_rewrite_test and cookie_rewrite_test check the same semantics
// through the one-call wrappers.
#include "policy/segments.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/cookie_rewrite.h"
#include "policy/query_rewrite.h"

using namespace consent;

namespace {

// An arena that fails after `budget` allocations.
struct CountingArena {
    HeapArena heap;
    int budget = 1 << 30;
    int calls = 0;

    static void* alloc(void* self, size_t bytes) noexcept {
        auto* a = static_cast<CountingArena*>(self);
        a->calls++;
        if (a->budget-- <= 0) return nullptr;
        SegmentArena h = a->heap.arena();
        return h.alloc(h.arg, bytes);
    }
    SegmentArena arena() { return {&CountingArena::alloc, this}; }
};

std::string emit(std::string_view q, const Segments& t, const Removal& r, size_t* removed = nullptr) {
    std::string out(q.size(), '\0');
    const QueryRewrite w = emit_query(q, t, r, out.data());
    if (removed) *removed = w.removed;
    out.resize(w.len);
    return out;
}

}  // namespace

TEST(Segments, GrowsFromTheHintAndKeepsOrder) {
    CountingArena a;
    Segments t;
    for (uint32_t i = 0; i < 100; i++) ASSERT_TRUE(t.push(Segment{i, 1, 1, 0, false}, a.arena(), 1));
    ASSERT_EQ(t.size(), 100u);
    uint32_t i = 0;
    for (const Segment& s : t) EXPECT_EQ(s.start, i++);
    // 8, 16, 32, 64, 128 entries: one allocation per doubling, no more.
    EXPECT_EQ(a.calls, 5);
}

// first() reads what push noted: the first of each kind, across growth.
TEST(Segments, FirstOfEachKindIsNotedWhilePushing) {
    CountingArena a;
    Segments t;
    EXPECT_EQ(t.first(kAlwaysNamed), nullptr);
    EXPECT_EQ(t.first(kAlwaysChoice), nullptr);
    const uint8_t kinds[] = {0, 0, kAlwaysChoice, 0, 0, 0, 0, 0, 0, kAlwaysNamed, kAlwaysChoice, kAlwaysNamed};
    uint32_t i = 0;
    for (uint8_t k : kinds) ASSERT_TRUE(t.push(Segment{i++, 1, 1, 0, k}, a.arena(), 1));
    ASSERT_GT(a.calls, 1);  // it grew past the first block
    ASSERT_NE(t.first(kAlwaysNamed), nullptr);
    EXPECT_EQ(t.first(kAlwaysNamed)->start, 9u);
    ASSERT_NE(t.first(kAlwaysChoice), nullptr);
    EXPECT_EQ(t.first(kAlwaysChoice)->start, 2u);
    EXPECT_EQ(t.first(0), nullptr);
    EXPECT_EQ(t.first(3), nullptr);
}

TEST(Segments, ArenaFailureIsReported) {
    std::string q;
    for (int i = 0; i < 200; i++) q += "a=1&";
    CountingArena a;
    a.budget = 1;  // the first block (hint: 4 + 800/16 = 54 entries) but no growth
    Segments t;
    EXPECT_FALSE(scan_query(q, nullptr, "ctk", &t, a.arena()));
    EXPECT_EQ(t.size(), 54u);

    CountingArena none;
    none.budget = 0;
    Segments c;
    EXPECT_FALSE(scan_cookie_header("a=1; b=2", nullptr, "vid", &c, none.arena()));
    EXPECT_EQ(c.size(), 0u);
    // An empty input needs no memory.
    Segments e;
    EXPECT_TRUE(scan_query("", nullptr, "ctk", &e, none.arena()));
    EXPECT_TRUE(scan_cookie_header("", nullptr, "vid", &e, none.arena()));
}

TEST(Segments, HidingTheTokenRemovesEveryTokenArgumentAndNothingElse) {
    StripRules rules;
    ASSERT_TRUE(rules.add(0, "utm_*", nullptr));
    const std::string q = "ctk=A&utm_source=x&CTK=B&c%74k=C&q=1";
    HeapArena heap;
    Segments t;
    ASSERT_TRUE(scan_query(q, &rules, "ctk", &t, heap.arena()));
    std::string_view v;
    ASSERT_TRUE(token_value(q, t, &v));
    EXPECT_EQ(v, "A");

    size_t removed = 0;
    EXPECT_EQ(emit(q, t, Removal{}, &removed), "utm_source=x&q=1");  // the request line of the logs
    EXPECT_EQ(removed, 3u);
    Removal all;
    all.denied = ~PurposeMask(0);
    EXPECT_EQ(emit(q, t, all), "q=1");
    Removal rules_only;
    rules_only.always = false;
    rules_only.denied = purpose_bit(0);
    EXPECT_EQ(emit(q, t, rules_only), "ctk=A&CTK=B&c%74k=C&q=1");
    EXPECT_TRUE(removes_any(t, Removal{}));
    Removal nothing;
    nothing.always = false;
    EXPECT_FALSE(removes_any(t, nothing));
    EXPECT_EQ(emit(q, t, nothing), q);

    char buf[128];
    NameList names(buf, sizeof buf);
    list_removed_args(q, t, all, &names);
    EXPECT_EQ(names.view(), "ctk,utm_source,CTK");  // "c%74k" decodes to "ctk", listed once
}

TEST(Segments, CookiesScannedOnceServeTheUidTheRewriteAndTheList) {
    StripRules rules;
    ASSERT_TRUE(rules.add(1, "_ga*", nullptr));
    const std::string h = " _ga=1;__Host-vid = tok ; lang=en;_gat=2";
    HeapArena heap;
    Segments t;
    ASSERT_TRUE(scan_cookie_header(h, &rules, "__host-VID", &t, heap.arena()));
    ASSERT_EQ(t.size(), 4u);
    std::string_view v;
    ASSERT_TRUE(uid_value(h, t, &v));
    EXPECT_EQ(v, "tok");

    Removal granted_all;  // the UID cookie still goes
    std::vector<char> out(cookie_rewrite_max_len(h.size()));
    CookieRewrite r = emit_cookie_header(h, t, granted_all, out.data());
    EXPECT_EQ(std::string(out.data(), r.len), "_ga=1; lang=en; _gat=2");
    EXPECT_EQ(plan_cookie_rewrite(h, t, granted_all).len, r.len);
    EXPECT_EQ(r.removed, 1u);
    EXPECT_EQ(r.kept, 3u);

    Removal denied;
    denied.denied = purpose_bit(1);
    r = emit_cookie_header(h, t, denied, out.data());
    EXPECT_EQ(std::string(out.data(), r.len), "lang=en");
    EXPECT_EQ(plan_cookie_rewrite(h, t, denied).len, r.len);

    char buf[64];
    NameList names(buf, sizeof buf);
    list_removed_cookies(h, t, denied, &names);
    EXPECT_EQ(names.view(), "_ga,__Host-vid,_gat");

    Removal none;
    none.always = false;
    r = emit_cookie_header(h, t, none, out.data());
    EXPECT_EQ(std::string(out.data(), r.len), h);  // untouched: as it came
    EXPECT_EQ(r.removed, 0u);
}

TEST(Segments, NoUidNameFindsNoUidCookie) {
    HeapArena heap;
    Segments t;
    ASSERT_TRUE(scan_cookie_header("=x; a=1", nullptr, "", &t, heap.arena()));
    std::string_view v;
    EXPECT_FALSE(uid_value("=x; a=1", t, &v));
    Segments q;
    ASSERT_TRUE(scan_query("=x&a=1", nullptr, "", &q, heap.arena()));
    EXPECT_FALSE(token_value("=x&a=1", q, &v));
}

// The module allocates the rewritten header by plan_cookie_rewrite, and
// drops a header it says keeps nothing: it must agree with the rewrite in
// every case, including one that grows.
TEST(Segments, CookieRewritePlanIsWhatTheRewriteWrites) {
    StripRules rules;
    ASSERT_TRUE(rules.add(1, "_g*", nullptr));
    Removal denied;
    denied.denied = purpose_bit(1);
    for (const std::string h : {"a=1;b=2;c=3;_gid=x", "_ga=1; _gid=2", "a=1; b=2", " ; ;", "", "_gx=1;;a=2 ;  b"}) {
        HeapArena heap;
        Segments t;
        ASSERT_TRUE(scan_cookie_header(h, &rules, "", &t, heap.arena()));
        std::vector<char> out(cookie_rewrite_max_len(h.size()) + 1);
        const CookieRewrite r = emit_cookie_header(h, t, denied, out.data());
        const CookieRewrite plan = plan_cookie_rewrite(h, t, denied);
        EXPECT_EQ(plan.len, r.len) << h;
        EXPECT_EQ(plan.kept, r.kept) << h;
        EXPECT_EQ(plan.removed, r.removed) << h;
    }
    HeapArena heap;
    Segments t;
    const std::string grows = "a=1;b=2;c=3;_gid=x";
    ASSERT_TRUE(scan_cookie_header(grows, &rules, "", &t, heap.arena()));
    EXPECT_EQ(plan_cookie_rewrite(grows, t, denied).len, std::string("a=1; b=2; c=3").size());
    EXPECT_EQ(plan_cookie_rewrite(grows, t, Removal{}).len, grows.size());  // nothing removed: copied as it came
}
