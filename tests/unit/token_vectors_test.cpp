// Checks the test vectors published in docs/token-format.md, read from the
// document itself so that what issuers see is exactly what is tested.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "crypto/choice_token.h"
#include "crypto/keyfile.h"
#include "crypto/pseudonym.h"
#include "crypto/token.h"
#include "tests/unit/hex.h"

using namespace consent;

namespace {

using Vector = std::map<std::string, std::string>;

// A vector is a fenced block whose first line is "vector: NAME", then
// "field: value" lines.
std::vector<Vector> load_vectors() {
    std::ifstream in(CONSENT_SOURCE_DIR "/docs/token-format.md");
    EXPECT_TRUE(in.good());
    std::vector<Vector> out;
    std::string line;
    bool in_block = false;
    while (std::getline(in, line)) {
        if (line.rfind("```", 0) == 0) {
            in_block = !in_block;
            continue;
        }
        if (!in_block) continue;
        const auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string k = line.substr(0, colon), v = line.substr(colon + 1);
        v.erase(0, v.find_first_not_of(' '));
        if (k == "vector") out.emplace_back();
        if (!out.empty()) out.back()[k] = v;
    }
    return out;
}

// A CHOICE vector: the answers ("NAME=1|0 ..."), the revision and the times
// seal to exactly the published token, which opens back to them.
void check_choice_vector(const Vector& v, std::unique_ptr<Key> key, const std::vector<uint8_t>& nonce) {
    ChoiceClaims c;
    c.issued_at = std::stoull(v.at("issued_at"));
    c.expires_at = std::stoull(v.at("expires_at"));
    c.revision = static_cast<uint32_t>(std::stoul(v.at("revision")));
    std::istringstream answers(v.at("choices"));
    std::string a;
    while (answers >> a) ASSERT_TRUE(c.add(a.substr(0, a.find('=')), a.substr(a.find('=') + 1) == "1")) << a;

    char out[kMaxChoiceTextOut];
    const size_t n = seal_choice_token(*key, c, nonce.data(), out, sizeof out);
    EXPECT_EQ(std::string(out, n), v.at("token"));

    KeyRing ring;
    std::string err;
    ASSERT_TRUE(ring.add(std::move(key), false, &err));
    TokenHeader h;
    ChoiceClaims got;
    ASSERT_EQ(open_choice_token(v.at("token"), ring, c.issued_at, &h, &got), TokenStatus::valid);
    EXPECT_EQ(h.kind, TokenKind::choice);
    EXPECT_EQ(got.revision, c.revision);
    ASSERT_EQ(got.count, c.count);
    for (size_t i = 0; i < c.count; i++) {
        EXPECT_EQ(got.name(i), c.name(i));
        EXPECT_EQ(got.granted[i], c.granted[i]);
    }
    EXPECT_EQ(open_choice_token(v.at("token"), ring, c.expires_at, &h, &got), TokenStatus::expired);
    // neither a PURL nor a UID token, whatever is expected
    TokenClaims claims;
    EXPECT_EQ(open_token(v.at("token"), ExpectKind::any, ring, c.issued_at, &h, &claims), TokenStatus::invalid);
}

}  // namespace

TEST(TokenVectors, PublishedVectorsSealAndOpen) {
    ASSERT_TRUE(crypto_init());
    const auto vectors = load_vectors();
    int tokens = 0, choices = 0, pseudonyms = 0;
    for (const auto& v : vectors) {
        SCOPED_TRACE(v.at("vector"));
        if (v.count("pseudonym")) {
            const auto key = unhex(v.at("pseudonym_key"));
            ASSERT_EQ(key.size(), 32u);
            PseudonymKey pk(key.data());
            char out[kPseudonymHex];
            pk.pseudonym(v.at("subject"), out);
            EXPECT_EQ(std::string(out, sizeof out), v.at("pseudonym"));
            pseudonyms++;
            continue;
        }
        Suite suite;
        KeyBytes kb;
        std::string err;
        ASSERT_TRUE(parse_key_text(v.at("key_file"), &suite, &kb, &err)) << err;
        auto key = Key::create(static_cast<uint16_t>(std::stoi(v.at("key_id"))), suite, kb.b, &err);
        ASSERT_TRUE(key);
        const auto nonce = unhex(v.at("nonce"));
        ASSERT_EQ(nonce.size(), nonce_bytes(suite));
        if (v.at("kind") == "choice") {
            check_choice_vector(v, std::move(key), nonce);
            choices++;
            continue;
        }
        TokenClaims c;
        ASSERT_TRUE(c.set(v.at("subject"), v.at("campaign")));
        c.issued_at = std::stoull(v.at("issued_at"));
        c.expires_at = std::stoull(v.at("expires_at"));
        const TokenKind kind = v.at("kind") == "uid" ? TokenKind::uid : TokenKind::purl;

        char out[kMaxTokenTextOut];
        const size_t n = seal_token(*key, kind, c, nonce.data(), out, sizeof out);
        EXPECT_EQ(std::string(out, n), v.at("token"));

        KeyRing ring;
        ASSERT_TRUE(ring.add(std::move(key), false, &err));
        TokenHeader h;
        TokenClaims got;
        const auto expect = kind == TokenKind::uid ? ExpectKind::uid : ExpectKind::purl;
        ASSERT_EQ(open_token(v.at("token"), expect, ring, c.issued_at, &h, &got), TokenStatus::valid);
        EXPECT_EQ(got.subject_view(), v.at("subject"));
        EXPECT_EQ(got.campaign_view(), v.at("campaign"));
        EXPECT_EQ(got.expires_at, c.expires_at);
        EXPECT_EQ(open_token(v.at("token"), expect, ring, c.expires_at, &h, &got), TokenStatus::expired);
        tokens++;
    }
    EXPECT_GE(tokens, 2);
    EXPECT_GE(choices, 2);
    EXPECT_GE(pseudonyms, 1);
}
