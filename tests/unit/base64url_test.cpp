#include "crypto/base64url.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <random>
#include <string>
#include <vector>

using namespace consent;

namespace {

std::string encode(const std::vector<uint8_t>& v) {
    std::string s(base64url_encoded_len(v.size()), '\0');
    s.resize(base64url_encode(v.data(), v.size(), s.data()));
    return s;
}

long decode(std::string_view s, std::vector<uint8_t>* out) {
    out->assign(base64url_decoded_max(s.size()), 0);
    const long n = base64url_decode(s, out->data(), out->size());
    if (n >= 0) out->resize(static_cast<size_t>(n));
    return n;
}

}  // namespace

TEST(Base64url, Rfc4648Vectors) {
    // RFC 4648 section 10, without padding.
    const std::pair<const char*, const char*> cases[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, text] : cases) {
        std::vector<uint8_t> in(plain, plain + strlen(plain));
        EXPECT_EQ(encode(in), text);
        std::vector<uint8_t> out;
        ASSERT_EQ(decode(text, &out), static_cast<long>(in.size())) << text;
        EXPECT_EQ(out, in);
    }
}

TEST(Base64url, UsesUrlAlphabet) {
    const std::vector<uint8_t> in = {0xfb, 0xff, 0xbf};
    EXPECT_EQ(encode(in), "-_-_");
    std::vector<uint8_t> out;
    EXPECT_EQ(decode("+/+/", &out), -1);  // standard alphabet is not accepted
}

TEST(Base64url, RejectsPaddingAndJunk) {
    std::vector<uint8_t> out;
    EXPECT_EQ(decode("Zg==", &out), -1);
    EXPECT_EQ(decode("Zm8=", &out), -1);
    EXPECT_EQ(decode("Zm 9v", &out), -1);
    EXPECT_EQ(decode(std::string("Zm\0v", 4), &out), -1);
    EXPECT_EQ(decode("Z", &out), -1);       // length 1 mod 4
    EXPECT_EQ(decode("Zm9vY", &out), -1);   // length 1 mod 4
    EXPECT_EQ(decode("Zm9v\xc3\xa9", &out), -1);
}

TEST(Base64url, RejectsNonCanonicalTrailingBits) {
    std::vector<uint8_t> out;
    EXPECT_EQ(decode("Zg", &out), 1);
    EXPECT_EQ(decode("Zh", &out), -1);   // same byte, non-zero trailing bits
    EXPECT_EQ(decode("Zm8", &out), 2);
    EXPECT_EQ(decode("Zm9", &out), -1);
}

TEST(Base64url, RefusesSmallOutputBuffer) {
    uint8_t buf[2];
    EXPECT_EQ(base64url_decode("Zm9v", buf, sizeof buf), -1);
    EXPECT_EQ(base64url_decode("Zm8", buf, sizeof buf), 2);
}

TEST(Base64url, RoundTripsAndMatchesLibsodium) {
    ASSERT_GE(sodium_init(), 0);
    std::mt19937 rng(42);
    for (size_t len = 0; len < 300; len++) {
        std::vector<uint8_t> in(len);
        for (auto& b : in) b = static_cast<uint8_t>(rng());
        const std::string text = encode(in);
        std::vector<char> ref(sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
        sodium_bin2base64(ref.data(), ref.size(), in.data(), len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        ASSERT_EQ(text, std::string(ref.data())) << len;
        std::vector<uint8_t> out;
        ASSERT_EQ(decode(text, &out), static_cast<long>(len));
        ASSERT_EQ(out, in);
    }
}
