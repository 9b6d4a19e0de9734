// The token path beside the bare library calls it is built on, in one run:
// a whole token check (base64url decode + header checks + AEAD open +
// plaintext parse) against the bare AEAD call on the same bytes.
// Run: ./dev bench   (or build/bench/token_bench)
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <string>
#include <vector>

#include "crypto/base64url.h"
#include "crypto/pseudonym.h"
#include "crypto/token.h"

using namespace consent;

namespace {

constexpr uint64_t kNow = 1800000000;
const uint8_t kKeyBytes32[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

struct Fixture {
    KeyRing ring;
    std::string text;
    std::vector<uint8_t> blob;
    Suite suite;

    explicit Fixture(Suite s) : suite(s) {
        crypto_init();
        std::string err;
        ring.add(Key::create(5, s, kKeyBytes32, &err), false, &err);
        TokenClaims c;
        c.set("customer-00012345", "newsletter-2026-11");
        c.issued_at = kNow - 60;
        c.expires_at = kNow + 86400 * 30;
        char out[kMaxTokenTextOut];
        text.assign(out, seal_token(*ring.find(5), TokenKind::purl, c, nullptr, out, sizeof out));
        blob.resize(base64url_decoded_max(text.size()));
        blob.resize(static_cast<size_t>(base64url_decode(text, blob.data(), blob.size())));
    }
};

Fixture& fixture(Suite s) {
    static Fixture x(Suite::xchacha20poly1305), a(Suite::aes256gcm);
    return s == Suite::xchacha20poly1305 ? x : a;
}

void BM_Base64urlDecode(benchmark::State& st) {
    auto& f = fixture(Suite::xchacha20poly1305);
    uint8_t out[kMaxTokenBytes];
    for (auto _ : st) benchmark::DoNotOptimize(base64url_decode(f.text, out, sizeof out));
}
BENCHMARK(BM_Base64urlDecode);

void BM_SodiumBase642Bin(benchmark::State& st) {
    auto& f = fixture(Suite::xchacha20poly1305);
    uint8_t out[kMaxTokenBytes];
    size_t len;
    for (auto _ : st)
        benchmark::DoNotOptimize(sodium_base642bin(out, sizeof out, f.text.data(), f.text.size(), nullptr, &len,
                                                   nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
}
BENCHMARK(BM_SodiumBase642Bin);

// Bare libsodium XChaCha20-Poly1305 decrypt of the token's own bytes.
void BM_BareXChaChaOpen(benchmark::State& st) {
    auto& f = fixture(Suite::xchacha20poly1305);
    const uint8_t* nonce = f.blob.data() + kHeaderBytes;
    const uint8_t* ct = nonce + 24;
    const size_t ct_len = f.blob.size() - kHeaderBytes - 24;
    uint8_t pt[kMaxPlaintext];
    unsigned long long pt_len;
    for (auto _ : st)
        benchmark::DoNotOptimize(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pt_len, nullptr, ct, ct_len,
                                                                            f.blob.data(), kHeaderBytes, nonce,
                                                                            kKeyBytes32));
}
BENCHMARK(BM_BareXChaChaOpen);

// Bare OpenSSL EVP AES-256-GCM decrypt, with the key schedule prepared once.
void BM_BareAesGcmOpen(benchmark::State& st) {
    auto& f = fixture(Suite::aes256gcm);
    const uint8_t* nonce = f.blob.data() + kHeaderBytes;
    const uint8_t* ct = nonce + 12;
    const int body = static_cast<int>(f.blob.size() - kHeaderBytes - 12 - kTagBytes);
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, kKeyBytes32, nullptr);
    uint8_t pt[kMaxPlaintext];
    for (auto _ : st) {
        int len, fin;
        EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce);
        EVP_DecryptUpdate(ctx, nullptr, &len, f.blob.data(), kHeaderBytes);
        EVP_DecryptUpdate(ctx, pt, &len, ct, body);
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(ct + body));
        benchmark::DoNotOptimize(EVP_DecryptFinal_ex(ctx, pt + len, &fin));
    }
    EVP_CIPHER_CTX_free(ctx);
}
BENCHMARK(BM_BareAesGcmOpen);

void open_bench(benchmark::State& st, Suite s) {
    auto& f = fixture(s);
    TokenHeader h;
    TokenClaims c;
    for (auto _ : st) {
        const auto r = open_token(f.text, ExpectKind::purl, f.ring, kNow, &h, &c);
        if (r != TokenStatus::valid) st.SkipWithError("token did not open");
        benchmark::DoNotOptimize(c);
    }
}
void BM_TokenCheckXChaCha(benchmark::State& st) { open_bench(st, Suite::xchacha20poly1305); }
void BM_TokenCheckAesGcm(benchmark::State& st) { open_bench(st, Suite::aes256gcm); }
BENCHMARK(BM_TokenCheckXChaCha);
BENCHMARK(BM_TokenCheckAesGcm);

// A forged token: the cost an attacker can impose per request.
void BM_TokenCheckForged(benchmark::State& st) {
    auto& f = fixture(Suite::xchacha20poly1305);
    std::string forged = f.text;
    forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
    TokenHeader h;
    TokenClaims c;
    for (auto _ : st) benchmark::DoNotOptimize(open_token(forged, ExpectKind::purl, f.ring, kNow, &h, &c));
}
BENCHMARK(BM_TokenCheckForged);

void BM_Pseudonym(benchmark::State& st) {
    PseudonymKey pk(kKeyBytes32);
    char out[kPseudonymHex];
    for (auto _ : st) {
        pk.pseudonym("customer-00012345", out);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_Pseudonym);

void BM_BareGenericHash(benchmark::State& st) {
    uint8_t h[16];
    for (auto _ : st)
        benchmark::DoNotOptimize(crypto_generichash(h, 16, reinterpret_cast<const uint8_t*>("customer-00012345"), 17,
                                                    kKeyBytes32, 32));
}
BENCHMARK(BM_BareGenericHash);

}  // namespace

BENCHMARK_MAIN();
