#include "policy/uid_cookie.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

using namespace consent;

namespace {

std::string format(const UidCookieAttrs& a, std::string_view value, bool clear) {
    const size_t cap = set_cookie_max_len(a, value.size());
    std::vector<char> out(cap + 16, '\x5a');
    const size_t n = format_set_cookie(a, value, clear, out.data());
    EXPECT_LE(n, cap);
    for (size_t i = cap; i < out.size(); i++) EXPECT_EQ(out[i], '\x5a') << "overflow at " << i;
    return std::string(out.data(), n);
}

UidFacts facts(bool purl, bool erased, bool granted, bool carried, bool same) {
    UidFacts f;
    f.subject_from_purl = purl;
    f.erased = erased;
    f.purpose_granted = granted;
    f.carried_cookie = carried;
    f.carried_valid_same = same;
    return f;
}

}  // namespace

TEST(UidAction, SetAfterPurlVisit) {
    EXPECT_EQ(uid_action(facts(true, false, true, false, false)), UidAction::set);
    // A carried cookie that is invalid or for another subject is replaced.
    EXPECT_EQ(uid_action(facts(true, false, true, true, false)), UidAction::set);
}

TEST(UidAction, NoneWhenAlreadyCarried) {
    EXPECT_EQ(uid_action(facts(true, false, true, true, true)), UidAction::none);
}

TEST(UidAction, ClearWhenErasedOrNotAllowed) {
    EXPECT_EQ(uid_action(facts(true, true, true, true, true)), UidAction::clear);
    EXPECT_EQ(uid_action(facts(true, false, false, true, false)), UidAction::clear);
    EXPECT_EQ(uid_action(facts(false, true, true, true, true)), UidAction::clear);
    EXPECT_EQ(uid_action(facts(false, false, false, true, false)), UidAction::clear);
    EXPECT_EQ(uid_action(facts(false, true, false, true, false)), UidAction::clear);
}

TEST(UidAction, NoneWithoutPurlOrCookie) {
    EXPECT_EQ(uid_action(facts(false, false, true, false, false)), UidAction::none);
    EXPECT_EQ(uid_action(facts(false, false, true, true, true)), UidAction::none);  // cookie subject, allowed
    EXPECT_EQ(uid_action(facts(true, true, true, false, false)), UidAction::none);   // erased, nothing to clear
    EXPECT_EQ(uid_action(facts(true, false, false, false, false)), UidAction::none);
    EXPECT_EQ(uid_action(facts(false, true, false, false, false)), UidAction::none);
}

TEST(UidAction, Exhaustive) {
    for (int bits = 0; bits < 32; bits++) {
        const UidFacts f = facts(bits & 1, bits & 2, bits & 4, bits & 8, bits & 16);
        UidAction want = UidAction::none;
        if (f.subject_from_purl && !f.erased && f.purpose_granted) {
            want = f.carried_valid_same ? UidAction::none : UidAction::set;
        } else if (f.carried_cookie && (f.erased || !f.purpose_granted)) {
            want = UidAction::clear;
        }
        EXPECT_EQ(uid_action(f), want) << bits;
    }
}

TEST(FormatSetCookie, Defaults) {
    UidCookieAttrs a;
    a.name = "cuid";
    EXPECT_EQ(format(a, "TOKEN", false), "cuid=TOKEN; Max-Age=15552000; Path=/; HttpOnly; Secure; SameSite=Lax");
}

TEST(FormatSetCookie, AllAttributes) {
    UidCookieAttrs a;
    a.name = "v";
    a.domain = ".example.com";
    a.path = "/shop";
    a.max_age = 60;
    a.samesite = SameSite::strict;
    a.secure = false;
    EXPECT_EQ(format(a, "x", false), "v=x; Max-Age=60; Path=/shop; Domain=.example.com; HttpOnly; SameSite=Strict");
    a.samesite = SameSite::none;
    a.secure = true;
    EXPECT_EQ(format(a, "x", false),
              "v=x; Max-Age=60; Path=/shop; Domain=.example.com; HttpOnly; Secure; SameSite=None");
}

TEST(FormatSetCookie, Clear) {
    UidCookieAttrs a;
    a.name = "cuid";
    a.domain = "example.com";
    EXPECT_EQ(format(a, "IGNORED", true),
              "cuid=; Max-Age=0; Path=/; Domain=example.com; HttpOnly; Secure; SameSite=Lax");
    EXPECT_EQ(format(a, "", true), format(a, "IGNORED", true));
}

TEST(FormatSetCookie, MaxAgeEdges) {
    UidCookieAttrs a;
    a.name = "c";
    a.max_age = 0;
    EXPECT_EQ(format(a, "v", false), "c=v; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax");
    a.max_age = UINT64_MAX;
    EXPECT_EQ(format(a, "v", false), "c=v; Max-Age=18446744073709551615; Path=/; HttpOnly; Secure; SameSite=Lax");
}

TEST(FormatSetCookie, MaxLenIsAnUpperBound) {
    // The largest number and longest SameSite: the bound is met exactly.
    UidCookieAttrs a;
    a.name = "cookie";
    a.domain = "d.example";
    a.path = "/p";
    a.max_age = UINT64_MAX;
    a.samesite = SameSite::strict;
    const std::string value(300, 'T');
    const std::string s = format(a, value, false);
    EXPECT_EQ(s.size(), set_cookie_max_len(a, value.size()));
    for (SameSite ss : {SameSite::lax, SameSite::strict, SameSite::none}) {
        for (bool secure : {false, true}) {
            for (uint64_t age : {uint64_t(0), uint64_t(9), uint64_t(86400), UINT64_MAX}) {
                for (std::string_view dom : {"", "x.y"}) {
                    for (std::string_view path : {"", "/", "/a/b"}) {
                        a.samesite = ss;
                        a.secure = secure;
                        a.max_age = age;
                        a.domain = dom;
                        a.path = path;
                        format(a, value, false);  // checks the bound and the guard
                        format(a, value, true);
                    }
                }
            }
        }
    }
}
