// scan::find_pair, the one pass that splits queries and Cookie headers,
// against a byte-at-a-time model: every start in random buffers of 0 to 80
// bytes, so that pairs end in the first block, in a later one, in the last
// (overlapping) block, and in buffers too short for a 16-byte load. Each
// buffer is allocated at its exact size, so the ASan leg catches a read
// past its end.
#include "policy/byte_scan.h"
#include "tests/unit/byte_scan_model.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "policy/strip_rules.h"

using namespace consent;

namespace {

template <bool kMark>
void check_all_starts(const std::string& text, char sep, char mark) {
    std::unique_ptr<char[]> buf(new char[text.size() ? text.size() : 1]);
    std::memcpy(buf.get(), text.data(), text.size());
    const char* const begin = buf.get();
    const char* const end = begin + text.size();
    for (size_t at = 0; at <= text.size(); at++) {
        const scan::PairEnds want = test::find_pair_model(begin + at, end, sep, mark);
        const scan::PairEnds got = scan::find_pair<kMark>(begin, begin + at, end, sep, mark);
        ASSERT_EQ(got.name_end - begin, want.name_end - begin) << "'" << text << "' from " << at;
        ASSERT_EQ(got.end - begin, want.end - begin) << "'" << text << "' from " << at;
        if (kMark) {
            ASSERT_EQ(got.marked, want.marked) << "'" << text << "' from " << at;
        }
    }
}

}  // namespace

TEST(ByteScan, FindPairAgreesWithTheModel) {
    std::mt19937 rng(20261206);
    // Few separators, so that names and values run across blocks.
    const std::string alphabet = "abcdefghij%= ;&\t";
    for (int round = 0; round < 4000; round++) {
        const size_t len = rng() % 81;
        const unsigned dense = 1 + rng() % 16;  // how often a special byte appears
        std::string text;
        for (size_t i = 0; i < len; i++)
            text += (rng() % dense == 0) ? alphabet[10 + rng() % 6] : alphabet[rng() % 10];
        check_all_starts<true>(text, '&', '%');
        check_all_starts<false>(text, ';', ';');
    }
}

TEST(ByteScan, FindPairAtTheBlockEdges) {
    // A pair whose '=' or separator is the 16th or 17th byte, or the last.
    for (size_t len : {15, 16, 17, 31, 32, 33}) {
        for (size_t at = 0; at < len; at++) {
            std::string eq(len, 'x'), sep(len, 'x');
            eq[at] = '=';
            sep[at] = ';';
            check_all_starts<false>(eq, ';', ';');
            check_all_starts<false>(sep, ';', ';');
            std::string both(len, 'x');
            both[at] = '=';
            both[len - 1] = ';';
            check_all_starts<false>(both, ';', ';');
        }
    }
}

TEST(ByteScan, FindPairOnAQueryAndACookieHeader) {
    const std::string q = "utm_source=news%20letter&gcl%69d=abc&flag&x=1";
    const char* b = q.data();
    const char* e = b + q.size();
    scan::PairEnds r = scan::find_pair<true>(b, b, e, '&', '%');
    EXPECT_EQ(std::string(b, r.name_end), "utm_source");
    EXPECT_EQ(std::string(b, r.end), "utm_source=news%20letter");
    EXPECT_FALSE(r.marked);  // the '%' is in the value
    r = scan::find_pair<true>(b, r.end + 1, e, '&', '%');
    EXPECT_EQ(std::string(b + 25, r.name_end), "gcl%69d");
    EXPECT_TRUE(r.marked);
    r = scan::find_pair<true>(b, r.end + 1, e, '&', '%');
    EXPECT_EQ(r.name_end, r.end);  // "flag": no value
    EXPECT_EQ(std::string(b + 37, r.end), "flag");

    const std::string c = "_ga=GA1.1.1593746201.1732871234; lang=en-GB";
    b = c.data();
    e = b + c.size();
    r = scan::find_pair<false>(b, b, e, ';', ';');
    EXPECT_EQ(std::string(b, r.name_end), "_ga");
    EXPECT_EQ(std::string(b, r.end), "_ga=GA1.1.1593746201.1732871234");
    r = scan::find_pair<false>(b, r.end + 1, e, ';', ';');
    EXPECT_EQ(r.end, e);
}

TEST(ByteScan, AsciiIequalAgreesWithTheByteModel) {
    std::mt19937 rng(6122026);
    const std::string alphabet = "aAzZ@[`{_-09\x80\xc1\xe1";
    const auto model = [](const std::string& a, const std::string& b) {
        if (a.size() != b.size()) return false;
        for (size_t i = 0; i < a.size(); i++)
            if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
        return true;
    };
    int equal = 0;
    for (int round = 0; round < 200000; round++) {
        const size_t len = rng() % 20;
        std::string a, b;
        for (size_t i = 0; i < len; i++) {
            a += alphabet[rng() % alphabet.size()];
            // mostly the same letter in either case, so that most pairs get
            // far before they differ
            const char c = a.back();
            b += rng() % 8 ? (rng() % 2 ? ascii_upper(c) : ascii_lower(c)) : alphabet[rng() % alphabet.size()];
        }
        if (rng() % 16 == 0) b.push_back('a');
        // exact-size copies, so that the ASan leg sees a read past either
        const std::unique_ptr<char[]> pa(new char[a.size() ? a.size() : 1]), pb(new char[b.size() ? b.size() : 1]);
        std::memcpy(pa.get(), a.data(), a.size());
        std::memcpy(pb.get(), b.data(), b.size());
        const bool want = model(a, b);
        equal += want;
        ASSERT_EQ(ascii_iequal(std::string_view(pa.get(), a.size()), std::string_view(pb.get(), b.size())), want)
            << "'" << a << "' '" << b << "'";
    }
    EXPECT_GT(equal, 10000);  // the equal case is exercised, not only the unequal
}

// The block test CPUs without SSE2 use, checked here on every CPU: every
// byte value, next to the ones it could be confused with (a byte one off,
// or differing only in its top bit, next to a match).
TEST(ByteScan, PortableBlockTestIsExact) {
    std::mt19937 rng(16122026);
    const char specials[] = {'=', ';', '&', '%'};
    for (int round = 0; round < 100000; round++) {
        char block[16];
        for (char& c : block) {
            const unsigned r = rng() % 4;
            const char s = specials[rng() % 4];
            c = r == 0 ? s : r == 1 ? static_cast<char>(s ^ 0x80) : r == 2 ? static_cast<char>(s + (rng() % 2 ? 1 : -1))
                                                                             : static_cast<char>(rng());
        }
        const char sep = specials[1 + rng() % 2];
        const scan::Masks16 want = scan::masks16_bytes(block, block + 16, sep, '%');
        const scan::Masks16 got = scan::block16_swar(block, sep, '%', true);
        ASSERT_EQ(got.eq, want.eq) << round;
        ASSERT_EQ(got.sep, want.sep) << round;
        ASSERT_EQ(got.mark, want.mark) << round;
        ASSERT_EQ(scan::block16_swar(block, sep, '%', false).mark, 0u);
    }
    // every byte value at every position
    for (int v = 0; v < 256; v++) {
        for (int at = 0; at < 16; at++) {
            char block[16];
            std::memset(block, 'x', sizeof block);
            block[at] = static_cast<char>(v);
            const scan::Masks16 want = scan::masks16_bytes(block, block + 16, ';', '%');
            const scan::Masks16 got = scan::block16_swar(block, ';', '%', true);
            ASSERT_EQ(got.eq, want.eq) << v << " at " << at;
            ASSERT_EQ(got.sep, want.sep) << v << " at " << at;
            ASSERT_EQ(got.mark, want.mark) << v << " at " << at;
        }
    }
}
