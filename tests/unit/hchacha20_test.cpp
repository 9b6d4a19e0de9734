// Our HChaCha20 (crypto/hchacha20.h) against libsodium's, and Key::open's
// XChaCha20-Poly1305 built on it against libsodium's one-shot call.
#include "crypto/hchacha20.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "crypto/key.h"

using namespace consent;

namespace {

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

}  // namespace

// draft-irtf-cfrg-xchacha-03, section 2.2.1.
TEST(HChaCha20, DraftTestVector) {
    uint8_t key[32];
    for (int i = 0; i < 32; i++) key[i] = static_cast<uint8_t>(i);
    const uint8_t in[16] = {0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x4a,
                            0x00, 0x00, 0x00, 0x00, 0x31, 0x41, 0x59, 0x27};
    const uint8_t want[32] = {0x82, 0x41, 0x3b, 0x42, 0x27, 0xb2, 0x7b, 0xfe, 0xd3, 0x0e, 0x42,
                              0x50, 0x8a, 0x87, 0x7d, 0x73, 0xa0, 0xf9, 0xe4, 0xd5, 0x8a, 0x74,
                              0xa8, 0x53, 0xc1, 0x2e, 0xc4, 0x13, 0x26, 0xd3, 0xec, 0xdc};
    uint8_t out[32];
    hchacha20(out, in, key);
    EXPECT_EQ(0, std::memcmp(out, want, 32));
}

TEST(HChaCha20, MatchesLibsodium) {
    ASSERT_TRUE(crypto_init());
    std::mt19937_64 rng(20261206);
    for (int i = 0; i < 20000; i++) {
        const auto key = random_bytes(rng, 32);
        // Unaligned inputs and output: the token's nonce sits anywhere in
        // its decoded bytes.
        const auto in = random_bytes(rng, 17);
        uint8_t ours[33], theirs[32];
        hchacha20(ours + 1, in.data() + 1, key.data());
        crypto_core_hchacha20(theirs, in.data() + 1, key.data(), nullptr);
        ASSERT_EQ(0, std::memcmp(ours + 1, theirs, 32)) << "case " << i;
    }
}

TEST(HChaCha20, KeyOpenMatchesLibsodiumXChaCha) {
    ASSERT_TRUE(crypto_init());
    std::mt19937_64 rng(7);
    for (int i = 0; i < 400; i++) {
        const auto key_bytes = random_bytes(rng, 32);
        std::string err;
        const auto key = Key::create(1, Suite::xchacha20poly1305, key_bytes.data(), &err);
        ASSERT_TRUE(key) << err;
        const auto nonce = random_bytes(rng, 24);
        const auto ad = random_bytes(rng, rng() % 24);
        const auto msg = random_bytes(rng, rng() % 200);
        std::vector<uint8_t> ct(msg.size() + 16);
        unsigned long long ct_len = 0;
        ASSERT_EQ(0, crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &ct_len, msg.data(), msg.size(),
                                                                ad.data(), ad.size(), nullptr, nonce.data(),
                                                                key_bytes.data()));
        std::vector<uint8_t> pt(msg.size() + 1);
        ASSERT_TRUE(key->open(nonce.data(), ad.data(), ad.size(), ct.data(), ct.size(), pt.data()));
        ASSERT_TRUE(std::equal(msg.begin(), msg.end(), pt.begin()));  // msg may be empty: no memcmp
        // Any flipped bit of the nonce's either part, the ciphertext or the
        // tag is refused.
        auto bad_nonce = nonce;
        bad_nonce[rng() % 24] ^= static_cast<uint8_t>(1u << (rng() % 8));
        EXPECT_FALSE(key->open(bad_nonce.data(), ad.data(), ad.size(), ct.data(), ct.size(), pt.data()));
        auto bad_ct = ct;
        bad_ct[rng() % bad_ct.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
        EXPECT_FALSE(key->open(nonce.data(), ad.data(), ad.size(), bad_ct.data(), bad_ct.size(), pt.data()));
    }
}
