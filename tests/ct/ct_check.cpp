// Constant time, checked: our XChaCha20-Poly1305 open (crypto/
// xchacha20poly1305.cpp) under valgrind's memcheck with every key marked
// undefined ("secret"). memcheck reports a conditional jump or move, or a
// memory address, computed from an undefined value: exactly a branch or a
// table index that depends on the key, which is what a timing attack
// measures. The open's tag verdict is the one value it may branch on; the
// file, built here with CONSENT_CT_CHECK, marks it defined (public).
//
//   ct_check check     every part and the whole open, accepted and refused,
//                      over lengths that take every path; outputs are made
//                      defined before they are compared with libsodium's
//   ct_check control   a branch and a table index on the secret: memcheck
//                      must report both, or this check could not fail
//
// tests/ct/run.sh runs both under valgrind and asserts the outcomes.
#include <sodium.h>
#include <valgrind/memcheck.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "crypto/xchacha20poly1305.h"

using namespace consent;

namespace {

int failures = 0;

void secret(void* p, size_t n) { VALGRIND_MAKE_MEM_UNDEFINED(p, n); }
void reveal(void* p, size_t n) { VALGRIND_MAKE_MEM_DEFINED(p, n); }

void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "ct_check: wrong result: %s\n", what.c_str());
        failures++;
    }
}

void check_parts() {
    uint8_t key[32], in[16], nonce12[12], ref[64], out[64];
    randombytes_buf(key, sizeof key);
    randombytes_buf(in, sizeof in);
    randombytes_buf(nonce12, sizeof nonce12);

    crypto_core_hchacha20(ref, in, key, nullptr);
    secret(key, sizeof key);
    hchacha20(out, in, key);
    reveal(out, 32);
    expect(std::memcmp(out, ref, 32) == 0, "hchacha20");

    reveal(key, sizeof key);
    std::memset(ref, 0, sizeof ref);
    crypto_stream_chacha20_ietf_xor_ic(ref, ref, sizeof ref, nonce12, 7, key);
    secret(key, sizeof key);
    chacha20_block(out, key, 7, nonce12);
    reveal(out, 64);
    expect(std::memcmp(out, ref, 64) == 0, "chacha20_block");

    // Poly1305 over every length up to three blocks and a bit: partial
    // blocks, whole ones, and the final reduction's both outcomes.
    for (size_t len = 0; len <= 50; len++) {
        uint8_t m[50], tag[16], want[16];
        randombytes_buf(m, sizeof m);
        if (len % 7 == 0) std::memset(m, 0xff, sizeof m);
        reveal(key, sizeof key);
        crypto_onetimeauth_poly1305(want, m, len, key);
        secret(key, sizeof key);
        poly1305(tag, m, len, key);
        reveal(tag, sizeof tag);
        expect(std::memcmp(tag, want, 16) == 0, "poly1305, length " + std::to_string(len));
    }
}

void check_open() {
    const size_t m_lens[] = {0, 1, 15, 16, 17, 63, 64, 65, 100, 200};
    const size_t ad_lens[] = {0, 5, 16, 33};
    for (size_t m_len : m_lens) {
        for (size_t ad_len : ad_lens) {
            uint8_t key[32], nonce[24], msg[200], ad[33], ct[216], pt[200];
            randombytes_buf(key, sizeof key);
            randombytes_buf(nonce, sizeof nonce);
            randombytes_buf(msg, sizeof msg);
            randombytes_buf(ad, sizeof ad);
            unsigned long long ct_len = 0;
            crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, msg, m_len, ad, ad_len, nullptr, nonce, key);
            const std::string at = "open, message " + std::to_string(m_len) + ", ad " + std::to_string(ad_len);

            secret(key, sizeof key);
            bool ok = xchacha20poly1305_open(pt, ct, ct_len, ad, ad_len, nonce, key);
            reveal(&ok, sizeof ok);
            reveal(pt, m_len);
            expect(ok && std::memcmp(pt, msg, m_len) == 0, at);

            // refused: one bit of the tag, then one of the ciphertext
            ct[ct_len - 1] ^= 1;
            ok = xchacha20poly1305_open(pt, ct, ct_len, ad, ad_len, nonce, key);
            reveal(&ok, sizeof ok);
            expect(!ok, at + ", a flipped tag bit");
            ct[ct_len - 1] ^= 1;
            if (m_len) {
                ct[0] ^= 0x80;
                ok = xchacha20poly1305_open(pt, ct, ct_len, ad, ad_len, nonce, key);
                reveal(&ok, sizeof ok);
                expect(!ok, at + ", a flipped ciphertext bit");
            }
        }
    }
}

// What the check exists to catch: a branch and a table lookup on a secret.
int control() {
    static const uint8_t table[256] = {1, 2, 3};
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    secret(key, sizeof key);
    volatile uint8_t sink = table[key[0]];  // an address from the secret
    if (key[1] & 1) sink = sink + 1;        // a branch on the secret
    (void) sink;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (sodium_init() < 0) return 3;
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "control") return control();
    if (mode != "check") {
        std::fprintf(stderr, "usage: ct_check check|control (under valgrind: tests/ct/run.sh)\n");
        return 2;
    }
    check_parts();
    check_open();
    if (failures) return 1;
    std::printf("ct_check: every part and the open agree with libsodium\n");
    return 0;
}
