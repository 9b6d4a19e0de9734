#include "crypto/token.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "crypto/base64url.h"

using namespace consent;

namespace {

constexpr uint64_t kNow = 1800000000;

std::unique_ptr<Key> make_key(uint16_t id, Suite suite, uint8_t fill) {
    uint8_t bytes[32];
    std::memset(bytes, fill, sizeof bytes);
    std::string err;
    auto k = Key::create(id, suite, bytes, &err);
    EXPECT_TRUE(k) << err;
    return k;
}

class TokenTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(crypto_init());
        std::string err;
        ASSERT_TRUE(ring.add(make_key(7, Suite::xchacha20poly1305, 0x11), false, &err));
        ASSERT_TRUE(ring.add(make_key(9, Suite::aes256gcm, 0x22), false, &err));
    }

    std::string mint(uint16_t kid, TokenKind kind, const char* subject, const char* campaign,
                     uint64_t issued = kNow - 10, uint64_t expires = kNow + 3600) {
        TokenClaims c;
        EXPECT_TRUE(c.set(subject, campaign));
        c.issued_at = issued;
        c.expires_at = expires;
        char out[kMaxTokenTextOut];
        const size_t n = seal_token(*ring.find(kid), kind, c, nullptr, out, sizeof out);
        EXPECT_GT(n, 0u);
        return std::string(out, n);
    }

    // A PURL token sealed under key id 300, which `ring` does not hold.
    static std::string mint_under_key_300(const uint8_t* nonce = nullptr) {
        KeyRing other;
        std::string err;
        EXPECT_TRUE(other.add(make_key(300, Suite::xchacha20poly1305, 0x11), false, &err));
        TokenClaims c;
        c.set("cust-42", "");
        c.issued_at = kNow;
        c.expires_at = kNow + 60;
        char out[kMaxTokenTextOut];
        return std::string(out, seal_token(*other.find(300), TokenKind::purl, c, nonce, out, sizeof out));
    }

    TokenStatus open(const std::string& text, ExpectKind expect = ExpectKind::purl) {
        TokenHeader h;
        return open_token(text, expect, ring, kNow, &h, &claims);
    }

    // Seals an arbitrary header and plaintext, to build malformed tokens
    // that still authenticate.
    static std::string seal_raw(const Key& key, const std::vector<uint8_t>& header, const std::vector<uint8_t>& pt) {
        std::vector<uint8_t> blob(header);
        blob.resize(header.size() + nonce_bytes(key.suite()), 0x5a);
        const size_t off = blob.size();
        blob.resize(off + pt.size() + kTagBytes);
        EXPECT_TRUE(key.seal(blob.data() + header.size(), header.data(), header.size(), pt.data(), pt.size(),
                             blob.data() + off));
        std::string text(base64url_encoded_len(blob.size()), '\0');
        base64url_encode(blob.data(), blob.size(), text.data());
        return text;
    }

    static std::vector<uint8_t> plaintext(uint64_t iat, uint64_t exp, const std::string& subj, const std::string& camp) {
        std::vector<uint8_t> p;
        for (int i = 7; i >= 0; i--) p.push_back(static_cast<uint8_t>(iat >> (8 * i)));
        for (int i = 7; i >= 0; i--) p.push_back(static_cast<uint8_t>(exp >> (8 * i)));
        p.push_back(static_cast<uint8_t>(subj.size()));
        p.insert(p.end(), subj.begin(), subj.end());
        p.push_back(static_cast<uint8_t>(camp.size()));
        p.insert(p.end(), camp.begin(), camp.end());
        return p;
    }

    static std::vector<uint8_t> decode(const std::string& text) {
        std::vector<uint8_t> b(base64url_decoded_max(text.size()));
        const long n = base64url_decode(text, b.data(), b.size());
        EXPECT_GE(n, 0);
        b.resize(static_cast<size_t>(n));
        return b;
    }

    static std::string encode(const std::vector<uint8_t>& b) {
        std::string t(base64url_encoded_len(b.size()), '\0');
        base64url_encode(b.data(), b.size(), t.data());
        return t;
    }

    KeyRing ring;
    TokenClaims claims;
};

}  // namespace

TEST_F(TokenTest, RoundTripsBothSuitesAndKinds) {
    for (uint16_t kid : {7, 9}) {
        for (auto kind : {TokenKind::purl, TokenKind::uid}) {
            const auto text = mint(kid, kind, "cust-42", kind == TokenKind::purl ? "spring-sale" : "");
            TokenHeader h;
            const auto expect = kind == TokenKind::purl ? ExpectKind::purl : ExpectKind::uid;
            ASSERT_EQ(open_token(text, expect, ring, kNow, &h, &claims), TokenStatus::valid) << text;
            EXPECT_EQ(h.version, 1);
            EXPECT_EQ(h.kind, kind);
            EXPECT_EQ(h.key_id, kid);
            EXPECT_EQ(h.suite, kid == 7 ? Suite::xchacha20poly1305 : Suite::aes256gcm);
            EXPECT_EQ(claims.subject_view(), "cust-42");
            EXPECT_EQ(claims.campaign_view(), kind == TokenKind::purl ? "spring-sale" : "");
            EXPECT_EQ(claims.issued_at, kNow - 10);
            EXPECT_EQ(claims.expires_at, kNow + 3600);
        }
    }
}

TEST_F(TokenTest, FreshNonceEveryTime) {
    EXPECT_NE(mint(7, TokenKind::purl, "a", ""), mint(7, TokenKind::purl, "a", ""));
    EXPECT_NE(mint(9, TokenKind::purl, "a", ""), mint(9, TokenKind::purl, "a", ""));
}

TEST_F(TokenTest, MaximalFieldsFitAndOpen) {
    const std::string s(64, 'S'), c(64, '~');
    for (uint16_t kid : {7, 9}) {
        const auto text = mint(kid, TokenKind::purl, s.c_str(), c.c_str());
        EXPECT_LE(text.size(), kMaxTokenText);
        ASSERT_EQ(open(text), TokenStatus::valid);
        EXPECT_EQ(claims.subject_view(), s);
        EXPECT_EQ(claims.campaign_view(), c);
    }
}

TEST_F(TokenTest, WrongKindIsInvalid) {
    EXPECT_EQ(open(mint(7, TokenKind::uid, "cust-42", ""), ExpectKind::purl), TokenStatus::invalid);
    EXPECT_EQ(open(mint(9, TokenKind::purl, "cust-42", ""), ExpectKind::uid), TokenStatus::invalid);
    EXPECT_EQ(open(mint(9, TokenKind::purl, "cust-42", ""), ExpectKind::any), TokenStatus::valid);
}

TEST_F(TokenTest, UnknownKeyId) {
    TokenHeader h;
    EXPECT_EQ(open_token(mint_under_key_300(), ExpectKind::purl, ring, kNow, &h, &claims), TokenStatus::unknown_key);
    EXPECT_EQ(h.key_id, 300);
}

// open_sealed decodes the header's characters before the rest; the status
// must still be the one a whole decode first gives: a malformed rest is
// `invalid` even under a key id the ring lacks, and a well formed token
// under such a key is `unknown_key` at every length that decodes, down to
// the bare header.
TEST_F(TokenTest, UnknownKeyIdOnlyWhenTheWholeTextDecodes) {
    const uint8_t nonce[kMaxNonceBytes] = {};  // zero bits after the header: its 7 characters decode alone
    const std::string text = mint_under_key_300(nonce);
    for (size_t pos = 8; pos < text.size(); pos++) {
        std::string bad = text;
        bad[pos] = '*';
        EXPECT_EQ(open(bad), TokenStatus::invalid) << pos;
    }
    std::string odd = text + "A";
    while (odd.size() % 4 != 1) odd += "A";
    EXPECT_EQ(open(odd), TokenStatus::invalid);  // a length no base64 text has
    EXPECT_EQ(open(text.substr(0, 7)), TokenStatus::unknown_key);  // the header alone
    EXPECT_EQ(open(text.substr(0, 8)), TokenStatus::unknown_key);
    EXPECT_EQ(open(text.substr(0, 6)), TokenStatus::invalid);  // not even the header
    std::string bad_head = text;
    bad_head[3] = '*';
    EXPECT_EQ(open(bad_head), TokenStatus::invalid);
}

TEST_F(TokenTest, SuiteMustMatchTheKeysSuite) {
    // Same key id and same key bytes as ring's key 7, but sealed as AES-GCM.
    auto aes7 = make_key(7, Suite::aes256gcm, 0x11);
    const auto pt = plaintext(kNow, kNow + 60, "cust-42", "");
    EXPECT_EQ(open(seal_raw(*aes7, {1, 1, 2, 0, 7}, pt)), TokenStatus::invalid);
    // A header that names the right suite but was sealed with the other algorithm.
    EXPECT_EQ(open(seal_raw(*aes7, {1, 1, 1, 0, 7}, pt)), TokenStatus::invalid);
    // Control: the same construction with the right suite is valid.
    auto x7 = make_key(7, Suite::xchacha20poly1305, 0x11);
    EXPECT_EQ(open(seal_raw(*x7, {1, 1, 1, 0, 7}, pt)), TokenStatus::valid);
}

TEST_F(TokenTest, UnknownVersionKindOrSuiteByte) {
    auto x7 = make_key(7, Suite::xchacha20poly1305, 0x11);
    const auto pt = plaintext(kNow, kNow + 60, "cust-42", "");
    EXPECT_EQ(open(seal_raw(*x7, {2, 1, 1, 0, 7}, pt)), TokenStatus::invalid);
    EXPECT_EQ(open(seal_raw(*x7, {1, 3, 1, 0, 7}, pt), ExpectKind::any), TokenStatus::invalid);
    EXPECT_EQ(open(seal_raw(*x7, {1, 1, 3, 0, 7}, pt)), TokenStatus::invalid);
    EXPECT_EQ(open(seal_raw(*x7, {1, 1, 1, 0, 0}, pt)), TokenStatus::invalid);
}

TEST_F(TokenTest, ExpiryEdges) {
    EXPECT_EQ(open(mint(7, TokenKind::purl, "a", "", kNow - 100, kNow)), TokenStatus::expired);
    EXPECT_EQ(open(mint(7, TokenKind::purl, "a", "", kNow - 100, kNow - 1)), TokenStatus::expired);
    EXPECT_EQ(open(mint(7, TokenKind::purl, "a", "", kNow - 100, kNow + 1)), TokenStatus::valid);
    EXPECT_EQ(open(mint(9, TokenKind::purl, "a", "", kNow - 100, 0)), TokenStatus::expired);
    // Expired tokens still report their claims, for diagnostics.
    EXPECT_EQ(claims.subject_view(), "a");
}

TEST_F(TokenTest, FutureDatedEdges) {
    EXPECT_EQ(open(mint(7, TokenKind::purl, "a", "", kNow + 300, kNow + 900)), TokenStatus::valid);
    EXPECT_EQ(open(mint(7, TokenKind::purl, "a", "", kNow + 301, kNow + 900)), TokenStatus::invalid);
    EXPECT_EQ(open(mint(9, TokenKind::purl, "a", "", UINT64_MAX, UINT64_MAX)), TokenStatus::invalid);
    // Future-dated and already expired: the forgery signal wins.
    EXPECT_EQ(open(mint(9, TokenKind::purl, "a", "", kNow + 1000, kNow - 5)), TokenStatus::invalid);
}

TEST_F(TokenTest, FlippedBitInEveryRegion) {
    for (uint16_t kid : {7, 9}) {
        const auto text = mint(kid, TokenKind::purl, "cust-42", "spring");
        const auto blob = decode(text);
        for (size_t bit = 0; bit < blob.size() * 8; bit++) {
            auto b = blob;
            b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            const auto st = open(encode(b));
            const bool in_kid = bit / 8 == 3 || bit / 8 == 4;
            if (in_kid)
                EXPECT_TRUE(st == TokenStatus::unknown_key || st == TokenStatus::invalid) << kid << " bit " << bit;
            else
                EXPECT_EQ(st, TokenStatus::invalid) << kid << " bit " << bit;
        }
    }
}

TEST_F(TokenTest, TruncatedAtEveryLength) {
    for (uint16_t kid : {7, 9}) {
        const auto text = mint(kid, TokenKind::purl, "cust-42", "spring");
        for (size_t len = 0; len < text.size(); len++)
            EXPECT_EQ(open(text.substr(0, len)), TokenStatus::invalid) << kid << " len " << len;
    }
}

TEST_F(TokenTest, PaddedOrExtendedText) {
    for (uint16_t kid : {7, 9}) {
        const auto text = mint(kid, TokenKind::purl, "cust-42", "");
        ASSERT_EQ(open(text), TokenStatus::valid);
        for (const char* suffix : {"=", "==", "A", "AA", "AAAA", " ", "%3D", "\n"})
            EXPECT_EQ(open(text + suffix), TokenStatus::invalid) << suffix;
        EXPECT_EQ(open(" " + text), TokenStatus::invalid);
    }
}

TEST_F(TokenTest, OversizedText) {
    EXPECT_EQ(open(std::string(513, 'A')), TokenStatus::invalid);
    EXPECT_EQ(open(std::string(512, 'A')), TokenStatus::invalid);
    EXPECT_EQ(open(std::string(1 << 20, 'A')), TokenStatus::invalid);
    EXPECT_EQ(open(""), TokenStatus::invalid);
}

TEST_F(TokenTest, MalformedPlaintextThatAuthenticates) {
    auto x7 = make_key(7, Suite::xchacha20poly1305, 0x11);
    auto a9 = make_key(9, Suite::aes256gcm, 0x22);
    for (const Key* k : {x7.get(), a9.get()}) {
        const std::vector<uint8_t> hdr = {1, 1, static_cast<uint8_t>(k->suite()), 0, static_cast<uint8_t>(k->id())};
        auto good = plaintext(kNow, kNow + 60, "cust-42", "c");
        ASSERT_EQ(open(seal_raw(*k, hdr, good)), TokenStatus::valid);

        auto trailing = good;
        trailing.push_back('x');
        EXPECT_EQ(open(seal_raw(*k, hdr, trailing)), TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, "", "c"))), TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, std::string(65, 's'), ""))),
                  TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, "s", std::string(65, 'c')))),
                  TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, std::string("a\0b", 3), ""))),
                  TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, "a\x7f", ""))), TokenStatus::invalid);
        EXPECT_EQ(open(seal_raw(*k, hdr, plaintext(kNow, kNow + 60, "ok", "\xc3\xa9"))), TokenStatus::invalid);
        auto short_pt = good;
        short_pt.resize(16);
        EXPECT_EQ(open(seal_raw(*k, hdr, short_pt)), TokenStatus::invalid);
        // campaign_len byte missing
        auto no_camp = plaintext(kNow, kNow + 60, "cust-42", "");
        no_camp.pop_back();
        EXPECT_EQ(open(seal_raw(*k, hdr, no_camp)), TokenStatus::invalid);
    }
}

TEST_F(TokenTest, SealRefusesWhatTheFormatCannotHold) {
    TokenClaims c;
    EXPECT_FALSE(c.set("", ""));
    EXPECT_FALSE(c.set(std::string(65, 'a'), ""));
    EXPECT_FALSE(c.set("a", std::string(65, 'a')));
    EXPECT_FALSE(c.set("a\n", ""));
    ASSERT_TRUE(c.set("a", ""));
    char small[10];
    EXPECT_EQ(seal_token(*ring.find(7), TokenKind::purl, c, nullptr, small, sizeof small), 0u);
}

// The UID cookie path sets an empty campaign as std::string_view(), whose
// data() is null: no memcpy from it (the ASan/UBSan build, ./dev test
// --asan, aborts on "null pointer passed as argument 2" otherwise).
TEST_F(TokenTest, DefaultConstructedEmptyCampaign) {
    TokenClaims c;
    ASSERT_TRUE(c.set(std::string_view("cust-42"), std::string_view()));
    EXPECT_EQ(c.campaign_len, 0u);
    EXPECT_EQ(c.subject_view(), "cust-42");
    c.issued_at = kNow - 10;
    c.expires_at = kNow + 3600;
    char text[kMaxTokenText + 1];
    const size_t n = seal_token(*ring.find(7), TokenKind::uid, c, nullptr, text, sizeof text);
    ASSERT_GT(n, 0u);
    TokenHeader h;
    TokenClaims back;
    EXPECT_EQ(open_token(std::string_view(text, n), ExpectKind::uid, ring, kNow, &h, &back),
              TokenStatus::valid);
    EXPECT_EQ(back.campaign_len, 0u);
}

TEST(KeyRing, RejectsDuplicatesAndZeroAndTwoIssuers) {
    ASSERT_TRUE(crypto_init());
    KeyRing r;
    std::string err;
    EXPECT_EQ(r.issuer(), nullptr);
    ASSERT_TRUE(r.add(make_key(1, Suite::aes256gcm, 1), false, &err));
    EXPECT_EQ(r.issuer()->id(), 1);
    ASSERT_TRUE(r.add(make_key(2, Suite::aes256gcm, 2), true, &err));
    ASSERT_TRUE(r.add(make_key(3, Suite::xchacha20poly1305, 3), false, &err));
    EXPECT_EQ(r.issuer()->id(), 2);  // marked `issue` wins over last declared
    EXPECT_FALSE(r.add(make_key(2, Suite::xchacha20poly1305, 9), false, &err));
    EXPECT_NE(err.find("duplicate key id 2"), std::string::npos);
    EXPECT_FALSE(r.add(make_key(0, Suite::xchacha20poly1305, 9), false, &err));
    EXPECT_FALSE(r.add(make_key(4, Suite::xchacha20poly1305, 9), true, &err));
    EXPECT_EQ(r.size(), 3u);
}
