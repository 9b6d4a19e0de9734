#include "crypto/pseudonym.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>

using namespace consent;

TEST(Pseudonym, KeyedBlake2b16Hex) {
    ASSERT_TRUE(crypto_init());
    uint8_t key[32];
    for (int i = 0; i < 32; i++) key[i] = static_cast<uint8_t>(i);
    PseudonymKey pk(key);
    char out[kPseudonymHex];
    pk.pseudonym("cust-42", out);
    const std::string got(out, sizeof out);

    uint8_t h[16];
    crypto_generichash(h, 16, reinterpret_cast<const uint8_t*>("cust-42"), 7, key, 32);
    char ref[33];
    sodium_bin2hex(ref, sizeof ref, h, 16);
    EXPECT_EQ(got, std::string(ref));
    EXPECT_EQ(got.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(got, "56dc69b5cb1a01356b9c95df0b0e8ee8");  // regression guard
}

TEST(Pseudonym, DependsOnKeyAndSubject) {
    uint8_t k1[32] = {1}, k2[32] = {2};
    PseudonymKey a(k1), b(k2);
    char x[32], y[32], z[32];
    a.pseudonym("cust-42", x);
    b.pseudonym("cust-42", y);
    a.pseudonym("cust-43", z);
    EXPECT_NE(std::string(x, 32), std::string(y, 32));
    EXPECT_NE(std::string(x, 32), std::string(z, 32));
}
