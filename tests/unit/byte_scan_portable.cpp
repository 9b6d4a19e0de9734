// scan::find_pair built without SSE2 (-mno-sse -mno-sse2 on x86-64), so
// the portable block test that CPUs like arm64 run is the one checked,
// against the same byte-at-a-time model as byte_scan_test. No gtest here:
// its headers need SSE for floating point. Exits non-zero on a mismatch.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "policy/byte_scan.h"
#include "tests/unit/byte_scan_model.h"

#if defined(__SSE2__)
#error "built with SSE2: this test would check the SSE2 path again"
#endif

using namespace consent;

namespace {

uint64_t state = 20261206;
unsigned next() {  // xorshift64
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<unsigned>(state >> 32);
}

template <bool kMark>
bool check(const char* text, size_t len, char sep, char mark) {
    char* buf = static_cast<char*>(std::malloc(len ? len : 1));  // exact size
    std::memcpy(buf, text, len);
    bool ok = true;
    for (size_t at = 0; at <= len && ok; at++) {
        const scan::PairEnds want = test::find_pair_model(buf + at, buf + len, sep, mark);
        const scan::PairEnds got = scan::find_pair<kMark>(buf, buf + at, buf + len, sep, mark);
        ok = got.name_end == want.name_end && got.end == want.end && (!kMark || got.marked == want.marked);
        if (!ok) std::fprintf(stderr, "mismatch: '%.*s' from %zu\n", static_cast<int>(len), text, at);
    }
    std::free(buf);
    return ok;
}

}  // namespace

int main() {
    const char alphabet[] = "abcdefghij%= ;&\t";
    char text[80];
    for (int round = 0; round < 4000; round++) {
        const size_t len = next() % 81;
        const unsigned dense = 1 + next() % 16;
        // specials, letters, and any byte now and then (the top bit set
        // is where a word-at-a-time test goes wrong)
        for (size_t i = 0; i < len; i++)
            text[i] = next() % dense == 0 ? alphabet[10 + next() % 6]
                      : next() % 8 == 0   ? static_cast<char>(next())
                                          : alphabet[next() % 10];
        if (!check<true>(text, len, '&', '%') || !check<false>(text, len, ';', ';')) return 1;
    }
    std::printf("find_pair without SSE2: 4000 buffers agree with the model\n");
    return 0;
}
