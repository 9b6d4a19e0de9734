// fuzz_aead: our XChaCha20-Poly1305 open and Poly1305
// (crypto/xchacha20poly1305.h) against libsodium's, on fuzzer-chosen keys,
// nonces, data and damage.
//
// Input (LLVM's FuzzedDataProvider; integers come from the end): a mode,
// then
//   0: a 32-byte Poly1305 key, and the rest as the message. Our tag must
//      be libsodium's crypto_onetimeauth_poly1305 tag.
//   1: a key (32 bytes), a nonce (24), additional data (length 0..64) and a
//      message (length 0..400), sealed by libsodium; then damage while
//      input lasts: flip bits of one byte of the ciphertext, the additional
//      data or the nonce, or cut the ciphertext short.
//   2: a key, a nonce, additional data, and the rest as the ciphertext.
// Properties, for modes 1 and 2: our open accepts exactly what libsodium's
// crypto_aead_xchacha20poly1305_ietf_decrypt accepts, and then gives the
// same plaintext (the message itself when nothing was damaged); when it
// refuses, it writes nothing.
#include <fuzzer/FuzzedDataProvider.h>
#include <sodium.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "crypto/xchacha20poly1305.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;

namespace {

std::vector<uint8_t> take(FuzzedDataProvider& in, size_t n) {
    auto v = in.ConsumeBytes<uint8_t>(n);
    v.resize(n, 0);
    return v;
}

void check_open(const std::vector<uint8_t>& key, const std::vector<uint8_t>& nonce, const std::vector<uint8_t>& ad,
                const std::vector<uint8_t>& ct, const std::vector<uint8_t>* sealed_msg) {
    std::vector<uint8_t> ours(ct.size() + 1, 0xa5), theirs(ct.size() + 1, 0xa5);
    unsigned long long their_len = 0;
    // libsodium declares the ciphertext non-null, even when it is empty.
    static const uint8_t empty = 0;
    const uint8_t* c = ct.empty() ? &empty : ct.data();
    const bool want = crypto_aead_xchacha20poly1305_ietf_decrypt(theirs.data(), &their_len, nullptr, c,
                                                                 ct.size(), ad.data(), ad.size(), nonce.data(),
                                                                 key.data()) == 0;
    const bool got = xchacha20poly1305_open(ours.data(), c, ct.size(), ad.data(), ad.size(), nonce.data(),
                                            key.data());
    FUZZ_CHECK(want == got, "libsodium %s, ours %s, %zu bytes of ciphertext", want ? "opens" : "refuses",
               got ? "opens" : "refuses", ct.size());
    if (sealed_msg) FUZZ_CHECK(got, "an undamaged ciphertext was refused");
    if (got) {
        FUZZ_CHECK(their_len == ct.size() - 16, "length");
        FUZZ_CHECK(std::equal(ours.begin(), ours.begin() + their_len, theirs.begin()), "plaintexts differ");
        FUZZ_CHECK(ours[their_len] == 0xa5, "wrote past the plaintext");
        if (sealed_msg)
            FUZZ_CHECK(std::equal(sealed_msg->begin(), sealed_msg->end(), ours.begin()), "not the sealed message");
    } else {
        FUZZ_CHECK(std::all_of(ours.begin(), ours.end(), [](uint8_t b) { return b == 0xa5; }),
                   "wrote a refused plaintext");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool ok = sodium_init() >= 0;
    FUZZ_CHECK(ok, "libsodium init");
    FuzzedDataProvider in(data, size);
    const int mode = in.ConsumeIntegralInRange<int>(0, 2);

    if (mode == 0) {
        const auto key = take(in, 32);
        const auto msg = in.ConsumeRemainingBytes<uint8_t>();
        uint8_t ours[16], theirs[16];
        poly1305(ours, msg.data(), msg.size(), key.data());
        crypto_onetimeauth_poly1305(theirs, msg.data(), msg.size(), key.data());
        FUZZ_CHECK(std::memcmp(ours, theirs, 16) == 0, "Poly1305 tags differ over %zu bytes", msg.size());
        return 0;
    }

    const auto key = take(in, 32);
    auto nonce = take(in, 24);
    auto ad = take(in, in.ConsumeIntegralInRange<size_t>(0, 64));
    if (mode == 2) {
        check_open(key, nonce, ad, in.ConsumeRemainingBytes<uint8_t>(), nullptr);
        return 0;
    }

    const auto msg = take(in, in.ConsumeIntegralInRange<size_t>(0, 400));
    std::vector<uint8_t> ct(msg.size() + 16);
    unsigned long long ct_len = 0;
    FUZZ_CHECK(crypto_aead_xchacha20poly1305_ietf_encrypt(ct.data(), &ct_len, msg.data(), msg.size(), ad.data(),
                                                          ad.size(), nullptr, nonce.data(), key.data()) == 0,
               "seal");
    bool damaged = false;
    while (in.remaining_bytes() > 0) {
        const int what = in.ConsumeIntegralInRange<int>(0, 3);
        const size_t at = in.ConsumeIntegral<size_t>();
        const uint8_t bits = in.ConsumeIntegral<uint8_t>();
        switch (what) {
            case 0:
                if (!ct.empty()) ct[at % ct.size()] ^= bits;
                break;
            case 1:
                if (!ad.empty()) ad[at % ad.size()] ^= bits;
                break;
            case 2: nonce[at % nonce.size()] ^= bits; break;
            case 3: ct.resize(at % (ct.size() + 1)); break;
        }
        damaged = damaged || bits != 0 || what == 3;
    }
    // A flip of zero bits, or a cut at the whole length, leaves it intact.
    check_open(key, nonce, ad, ct, damaged ? nullptr : &msg);
    return 0;
}
