// Our XChaCha20-Poly1305 open (crypto/xchacha20poly1305.h), part by part,
// against libsodium's and the published test vectors; and Key::open built
// on it against libsodium's one-shot seal.
#include "crypto/xchacha20poly1305.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "crypto/key.h"
#include "tests/unit/hex.h"

using namespace consent;

namespace {

std::vector<uint8_t> random_bytes(std::mt19937_64& rng, size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

// Bytes that push Poly1305's carries: all ones, all zeros, and random
// mixes of the two with random bytes.
std::vector<uint8_t> edgy_bytes(std::mt19937_64& rng, size_t n) {
    std::vector<uint8_t> v(n);
    const unsigned style = rng() % 4;
    for (auto& b : v) {
        if (style == 0) b = 0xff;
        else if (style == 1) b = 0;
        else if (style == 2) b = (rng() % 2) ? 0xff : 0;
        else b = (rng() % 4 == 0) ? static_cast<uint8_t>(rng()) : 0xff;
    }
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

// RFC 8439, section 2.3.2.
TEST(ChaCha20, RfcBlockVector) {
    uint8_t key[32];
    for (int i = 0; i < 32; i++) key[i] = static_cast<uint8_t>(i);
    const auto nonce = unhex("000000090000004a00000000");
    const auto want = unhex(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e");
    uint8_t out[64];
    chacha20_block(out, key, 1, nonce.data());
    EXPECT_EQ(0, std::memcmp(out, want.data(), 64));
}

TEST(ChaCha20, BlockMatchesLibsodium) {
    ASSERT_TRUE(crypto_init());
    std::mt19937_64 rng(8439);
    const uint8_t zeros[64] = {};
    for (int i = 0; i < 20000; i++) {
        const auto key = random_bytes(rng, 33);
        const auto nonce = random_bytes(rng, 13);
        // Counters near the top of the 32-bit range too.
        const uint32_t counter = i % 3 == 0 ? 0xffffffffu - static_cast<uint32_t>(rng() % 4)
                                            : static_cast<uint32_t>(rng());
        uint8_t ours[65], theirs[64];
        chacha20_block(ours + 1, key.data() + 1, counter, nonce.data() + 1);
        crypto_stream_chacha20_ietf_xor_ic(theirs, zeros, 64, nonce.data() + 1, counter, key.data() + 1);
        ASSERT_EQ(0, std::memcmp(ours + 1, theirs, 64)) << "case " << i;
    }
}

// RFC 8439, section 2.5.2, and appendix A.3's vectors 1, 5, 6, 10 and 8:
// a zero key, and the ones that need the final reduction.
TEST(Poly1305, RfcVectors) {
    struct Vector {
        const char *key, *msg, *tag;
    } const vectors[] = {
        {"85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
         "43727970746f6772617068696320466f72756d2052657365617263682047726f7570",
         "a8061dc1305136c6c22b8baf0c0127a9"},
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
         "000000000000000000000000000000000000000000",
         "00000000000000000000000000000000"},
        {"0200000000000000000000000000000000000000000000000000000000000000", "ffffffffffffffffffffffffffffffff",
         "03000000000000000000000000000000"},
        {"02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
         "02000000000000000000000000000000", "03000000000000000000000000000000"},
        {"0100000000000000040000000000000000000000000000000000000000000000",
         "e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000"
         "000000000000000000000000",
         "14000000000000005500000000000000"},
        {"0100000000000000000000000000000000000000000000000000000000000000",
         "fffffffffffffffffffffffffffffffffbfefefefefefefefefefefefefefefe01010101010101010101010101010101",
         "00000000000000000000000000000000"},
    };
    for (const auto& v : vectors) {
        const auto key = unhex(v.key);
        const auto msg = unhex(v.msg);
        const auto want = unhex(v.tag);
        uint8_t tag[16];
        poly1305(tag, msg.data(), msg.size(), key.data());
        EXPECT_EQ(0, std::memcmp(tag, want.data(), 16)) << v.msg;
    }
}

TEST(Poly1305, MatchesLibsodium) {
    ASSERT_TRUE(crypto_init());
    std::mt19937_64 rng(1305);
    for (int i = 0; i < 100000; i++) {
        // Half the keys and messages carry-heavy, half random; every
        // length up to 8 blocks and a bit, unaligned.
        const auto key = i % 2 ? edgy_bytes(rng, 32) : random_bytes(rng, 32);
        const size_t len = rng() % 140;
        auto msg = i % 3 ? edgy_bytes(rng, len + 1) : random_bytes(rng, len + 1);
        uint8_t ours[17], theirs[16];
        poly1305(ours + 1, msg.data() + 1, len, key.data());
        crypto_onetimeauth_poly1305(theirs, msg.data() + 1, len, key.data());
        ASSERT_EQ(0, std::memcmp(ours + 1, theirs, 16)) << "case " << i << ", " << len << " bytes";
    }
}

// draft-irtf-cfrg-xchacha-03, appendix A.3.1.
TEST(XChaCha20Poly1305, DraftVector) {
    const auto key = unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    const auto nonce = unhex("404142434445464748494a4b4c4d4e4f5051525354555657");
    const auto ad = unhex("50515253c0c1c2c3c4c5c6c7");
    const std::string msg =
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
        "sunscreen would be it.";
    auto ct = unhex(
        "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
        "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
        "21f9664c97637da9768812f615c68b13b52e"
        "c0875924c1c7987947deafd8780acf49");
    ASSERT_EQ(msg.size() + 16, ct.size());
    std::vector<uint8_t> pt(msg.size());
    ASSERT_TRUE(xchacha20poly1305_open(pt.data(), ct.data(), ct.size(), ad.data(), ad.size(), nonce.data(),
                                       key.data()));
    EXPECT_EQ(msg, std::string(pt.begin(), pt.end()));
    ct.back() ^= 0x80;
    EXPECT_FALSE(xchacha20poly1305_open(pt.data(), ct.data(), ct.size(), ad.data(), ad.size(), nonce.data(),
                                        key.data()));
}

// The whole open against libsodium's, on what libsodium sealed and on
// every kind of damage: each call must accept exactly what libsodium
// accepts, write exactly its plaintext, and leave the output alone when it
// refuses.
TEST(XChaCha20Poly1305, OpenAgreesWithLibsodium) {
    ASSERT_TRUE(crypto_init());
    std::mt19937_64 rng(24);
    for (int i = 0; i < 20000; i++) {
        const auto key = random_bytes(rng, 32);
        const auto nonce = random_bytes(rng, 24);
        const auto ad = random_bytes(rng, rng() % 40);
        const auto msg = i % 2 ? random_bytes(rng, rng() % 400) : edgy_bytes(rng, rng() % 400);
        std::vector<uint8_t> ct(msg.size() + 16);
        unsigned long long ct_len = 0;
        ASSERT_EQ(0, crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &ct_len, msg.data(), msg.size(),
                                                                ad.data(), ad.size(), nullptr, nonce.data(),
                                                                key.data()));
        // Damage: none; a flipped bit of the ciphertext, the tag, the
        // nonce, the additional data or the key; or a shorter ciphertext.
        auto c = ct;
        auto n = nonce;
        auto a = ad;
        auto k = key;
        size_t len = c.size();
        switch (i % 7) {
            case 0: break;
            case 1: c[rng() % c.size()] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 2: c[c.size() - 1 - rng() % 16] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 3: n[rng() % 24] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 4:
                if (!a.empty()) a[rng() % a.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
                break;
            case 5: k[rng() % 32] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 6: len = rng() % c.size(); break;
        }
        std::vector<uint8_t> ours(msg.size() + 1, 0xa5), theirs(msg.size() + 1, 0xa5);
        unsigned long long their_len = 0;
        const bool want = crypto_aead_xchacha20poly1305_ietf_decrypt(theirs.data(), &their_len, nullptr, c.data(),
                                                                     len, a.data(), a.size(), n.data(),
                                                                     k.data()) == 0;
        const bool got = xchacha20poly1305_open(ours.data(), c.data(), len, a.data(), a.size(), n.data(), k.data());
        ASSERT_EQ(want, got) << "case " << i;
        if (got) {
            ASSERT_EQ(msg.size(), their_len);
            ASSERT_TRUE(std::equal(msg.begin(), msg.end(), ours.begin())) << "case " << i;
            ASSERT_EQ(0xa5, ours[msg.size()]) << "wrote past the plaintext";
        } else {
            ASSERT_TRUE(std::all_of(ours.begin(), ours.end(), [](uint8_t b) { return b == 0xa5; }))
                << "case " << i << ": wrote a refused plaintext";
        }
    }
}
