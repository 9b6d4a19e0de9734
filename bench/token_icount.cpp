// Instruction counts per operation, for callgrind: `token_icount OP N` runs
// OP N times. bench/icount.sh runs it under callgrind at two values of N, so
// setup cancels out and what remains is instructions per call: repeatable
// on a noisy machine, unlike wall time. (AES-NI and SIMD instructions count
// one each, so this ranks code paths, it does not predict nanoseconds.)
#include <openssl/evp.h>
#include <sodium.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "crypto/base64url.h"
#include "crypto/token.h"

using namespace consent;

static const uint8_t kKey[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    const std::string op = argv[1];
    const long n = std::atol(argv[2]);
    crypto_init();
    const Suite suite = op.find("aes") != std::string::npos ? Suite::aes256gcm : Suite::xchacha20poly1305;
    std::string err;
    KeyRing ring;
    ring.add(Key::create(5, suite, kKey, &err), false, &err);
    TokenClaims c;
    c.set("customer-00012345", "newsletter-2026-11");
    c.issued_at = 1800000000 - 60;
    c.expires_at = 1800000000 + 86400;
    char text[kMaxTokenTextOut];
    const size_t tlen = seal_token(*ring.find(5), TokenKind::purl, c, nullptr, text, sizeof text);
    uint8_t blob[kMaxTokenBytes];
    const long blen = base64url_decode({text, tlen}, blob, sizeof blob);
    const size_t nl = nonce_bytes(suite);
    const uint8_t* ct = blob + kHeaderBytes + nl;
    const size_t ct_len = static_cast<size_t>(blen) - kHeaderBytes - nl;
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, kKey, nullptr);

    long ok = 0;
    uint8_t pt[kMaxPlaintext];
    TokenHeader h;
    TokenClaims out;
    for (long i = 0; i < n; i++) {
        if (op == "check-xchacha" || op == "check-aes") {
            ok += open_token({text, tlen}, ExpectKind::purl, ring, 1800000000, &h, &out) == TokenStatus::valid;
        } else if (op == "bare-xchacha") {
            unsigned long long pl;
            ok += crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &pl, nullptr, ct, ct_len, blob, kHeaderBytes,
                                                             blob + kHeaderBytes, kKey) == 0;
        } else if (op == "bare-aes") {
            int len, fin;
            const int body = static_cast<int>(ct_len - kTagBytes);
            EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, blob + kHeaderBytes);
            EVP_DecryptUpdate(ctx, nullptr, &len, blob, kHeaderBytes);
            EVP_DecryptUpdate(ctx, pt, &len, ct, body);
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(ct + body));
            ok += EVP_DecryptFinal_ex(ctx, pt + len, &fin) == 1;
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    return ok == n ? 0 : 1;
}
