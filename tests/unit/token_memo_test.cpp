#include "crypto/token_memo.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

using namespace consent;

namespace {

constexpr uint64_t kNow = 1800000000;

TokenClaims claims_for(const char* subject, uint64_t expires = kNow + 3600) {
    TokenClaims c;
    EXPECT_TRUE(c.set(subject, "spring-sale"));
    c.issued_at = kNow - 10;
    c.expires_at = expires;
    return c;
}

struct Found {
    bool hit = false;
    TokenClaims claims;
    bool has_pseudonym = false;
    char pseudonym[kPseudonymHex] = {};
    TokenMemo::Ref ref;
};

Found look(TokenMemo& m, ExpectKind kind, const std::string& text, uint64_t now = kNow) {
    Found f;
    f.hit = m.find(kind, text, now, &f.claims, f.pseudonym, &f.has_pseudonym, &f.ref);
    return f;
}

TEST(TokenMemo, RemembersAndFindsTheExactToken) {
    TokenMemo m(64);
    const std::string t = "AQIBAAF" + std::string(100, 'x') + "tag1";
    EXPECT_FALSE(look(m, ExpectKind::uid, t).hit);
    m.remember(ExpectKind::uid, t, claims_for("cust-1001"));
    const Found f = look(m, ExpectKind::uid, t);
    ASSERT_TRUE(f.hit);
    EXPECT_EQ(f.claims.subject_view(), "cust-1001");
    EXPECT_EQ(f.claims.campaign_view(), "spring-sale");
    EXPECT_EQ(f.claims.expires_at, kNow + 3600);
    EXPECT_FALSE(f.has_pseudonym);
}

TEST(TokenMemo, OtherBytesOrKindMiss) {
    TokenMemo m(64);
    const std::string t = "AQIBAAF" + std::string(100, 'x') + "tag1";
    m.remember(ExpectKind::uid, t, claims_for("cust-1001"));
    EXPECT_FALSE(look(m, ExpectKind::purl, t).hit) << "a UID token must not answer for a PURL";
    // The same last 16 characters, so the same slot: the full comparison
    // must tell them apart, wherever they differ.
    for (size_t at : {size_t(0), size_t(50), t.size() - 17}) {
        std::string u = t;
        u[at] = 'y';
        EXPECT_FALSE(look(m, ExpectKind::uid, u).hit) << at;
    }
    EXPECT_FALSE(look(m, ExpectKind::uid, t.substr(0, t.size() - 1)).hit);
    EXPECT_FALSE(look(m, ExpectKind::uid, t + "x").hit);
    EXPECT_FALSE(look(m, ExpectKind::any, t).hit);
}

TEST(TokenMemo, ExpiryIsCheckedOnEveryHit) {
    TokenMemo m(64);
    const std::string t = std::string(120, 'e');
    m.remember(ExpectKind::uid, t, claims_for("cust-1001", kNow + 5));
    EXPECT_TRUE(look(m, ExpectKind::uid, t, kNow + 4).hit);
    // open_token() says expired when expires_at <= now; the memo must then
    // send the caller back to open_token().
    EXPECT_FALSE(look(m, ExpectKind::uid, t, kNow + 5).hit);
    EXPECT_FALSE(look(m, ExpectKind::uid, t, kNow + 500).hit);
}

TEST(TokenMemo, AClockSteppedBackMisses) {
    TokenMemo m(64);
    const std::string t = std::string(120, 's');
    m.remember(ExpectKind::uid, t, claims_for("cust-1001"));  // issued kNow - 10
    EXPECT_TRUE(look(m, ExpectKind::uid, t, kNow - 10 - kMaxClockSkew).hit);
    // open_token() calls a token issued more than kMaxClockSkew ahead invalid.
    EXPECT_FALSE(look(m, ExpectKind::uid, t, kNow - 11 - kMaxClockSkew).hit);
}

TEST(TokenMemo, PrefaultedMemoStartsEmptyAndWorks) {
    TokenMemo m(4096);
    m.prefault();
    const std::string t = std::string(130, 'p');
    EXPECT_FALSE(look(m, ExpectKind::uid, t).hit);
    m.remember(ExpectKind::uid, t, claims_for("cust-1001"));
    EXPECT_TRUE(look(m, ExpectKind::uid, t).hit);
}

TEST(TokenMemo, OpenRemembersOnlyValidTokens) {
    ASSERT_TRUE(crypto_init());
    uint8_t bytes[kKeyBytes];
    std::memset(bytes, 0x33, sizeof bytes);
    std::string err;
    KeyRing ring, empty;
    ASSERT_TRUE(ring.add(Key::create(1, Suite::xchacha20poly1305, bytes, &err), true, &err)) << err;
    const TokenClaims c = claims_for("cust-2002");
    char out[kMaxTokenTextOut];
    const std::string t(out, seal_token(*ring.find(1), TokenKind::uid, c, nullptr, out, sizeof out));
    ASSERT_FALSE(t.empty());
    std::string forged = t;
    forged[t.size() / 2] = forged[t.size() / 2] == 'A' ? 'B' : 'A';

    TokenMemo m(64);
    TokenClaims got;
    TokenMemo::Ref ref;
    char pseudonym[kPseudonymHex];
    bool has = true;
    EXPECT_EQ(m.open(forged, ExpectKind::uid, ring, kNow, &got, &ref, pseudonym, &has), TokenStatus::invalid);
    EXPECT_FALSE(has);
    EXPECT_FALSE(look(m, ExpectKind::uid, forged).hit) << "a forged token must never be remembered";

    EXPECT_EQ(m.open(t, ExpectKind::uid, ring, kNow, &got, &ref, pseudonym, &has), TokenStatus::valid);
    EXPECT_EQ(got.subject_view(), "cust-2002");
    const TokenMemo::Ref first = ref;
    EXPECT_NE(first.stamp, 0u);
    // A second open is answered by the memo: even a ring without the key
    // (which open_token() would answer unknown_key) says valid.
    got = TokenClaims();
    EXPECT_EQ(m.open(t, ExpectKind::uid, empty, kNow, &got, &ref, pseudonym, &has), TokenStatus::valid);
    EXPECT_EQ(got.subject_view(), "cust-2002");
    EXPECT_EQ(ref.stamp, first.stamp);
    // ... but not once expired: then open_token() answers.
    EXPECT_EQ(m.open(t, ExpectKind::uid, ring, kNow + 3600, &got, &ref, pseudonym, &has), TokenStatus::expired);
}

TEST(TokenMemo, TooLongIsNeverRemembered) {
    TokenMemo m(64);
    const std::string t(TokenMemo::kMaxText + 1, 'L');
    const TokenMemo::Ref r = m.remember(ExpectKind::uid, t, claims_for("cust-1001"));
    EXPECT_EQ(r.stamp, 0u);
    EXPECT_FALSE(look(m, ExpectKind::uid, t).hit);
}

TEST(TokenMemo, PseudonymAttachesToItsEntryOnly) {
    TokenMemo m(1);  // one slot: every token collides
    const std::string a(110, 'a'), b(110, 'b');
    const TokenMemo::Ref ra = m.remember(ExpectKind::uid, a, claims_for("cust-a"));
    const char pa[kPseudonymHex + 1] = "0123456789abcdef0123456789abcdef";
    m.attach_pseudonym(ra, "cust-a", pa);
    Found f = look(m, ExpectKind::uid, a);
    ASSERT_TRUE(f.hit);
    ASSERT_TRUE(f.has_pseudonym);
    EXPECT_EQ(std::string(f.pseudonym, kPseudonymHex), pa);
    EXPECT_EQ(f.ref.stamp, ra.stamp);

    // b evicts a; a's stale ref must not give b a's pseudonym.
    const TokenMemo::Ref rb = m.remember(ExpectKind::uid, b, claims_for("cust-b"));
    EXPECT_NE(rb.stamp, ra.stamp);
    EXPECT_FALSE(look(m, ExpectKind::uid, a).hit);
    m.attach_pseudonym(ra, "cust-a", pa);
    f = look(m, ExpectKind::uid, b);
    ASSERT_TRUE(f.hit);
    EXPECT_FALSE(f.has_pseudonym);
    EXPECT_EQ(f.claims.subject_view(), "cust-b");

    // Even a matching stamp attaches nothing to another subject.
    m.attach_pseudonym(rb, "cust-a", pa);
    EXPECT_FALSE(look(m, ExpectKind::uid, b).has_pseudonym);
}

TEST(TokenMemo, ManyTokensSpreadOverTheSlots) {
    TokenMemo m(1024);
    EXPECT_EQ(m.slots(), 1024u);
    // Random-looking tokens of one length: most must survive each other.
    std::string tokens[512];
    uint64_t x = 88172645463325252ull;
    for (auto& t : tokens) {
        t.resize(115);
        for (char& c : t) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            c = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[x & 63];
        }
        m.remember(ExpectKind::uid, t, claims_for("cust-x"));
    }
    int hits = 0;
    for (auto& t : tokens) hits += look(m, ExpectKind::uid, t).hit;
    // 512 keys in 1024 slots keep about 1024*(1-e^-0.5) = 403 distinct slots.
    EXPECT_GT(hits, 350);
}

}  // namespace
