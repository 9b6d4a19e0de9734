#include "crypto/key.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <climits>
#include <cstring>

#include "crypto/xchacha20poly1305.h"

namespace consent {

std::optional<Suite> suite_from_byte(uint8_t b) {
    switch (b) {
        case 1: return Suite::xchacha20poly1305;
        case 2: return Suite::aes256gcm;
        default: return std::nullopt;
    }
}

std::optional<Suite> suite_from_name(std::string_view name) {
    if (name == "xchacha20poly1305") return Suite::xchacha20poly1305;
    if (name == "aes256gcm") return Suite::aes256gcm;
    return std::nullopt;
}

const char* suite_name(Suite s) {
    return s == Suite::xchacha20poly1305 ? "xchacha20poly1305" : "aes256gcm";
}

bool crypto_init() {
    static const bool ok = sodium_init() >= 0;
    return ok;
}

std::unique_ptr<Key> Key::create(uint16_t id, Suite suite, const uint8_t bytes[kKeyBytes], std::string* err) {
    if (!crypto_init()) {
        *err = "libsodium failed to initialise";
        return nullptr;
    }
    std::unique_ptr<Key> k(new Key(id, suite));
    std::memcpy(k->bytes_, bytes, kKeyBytes);
    if (suite == Suite::aes256gcm) {
        k->enc_ = EVP_CIPHER_CTX_new();
        k->dec_ = EVP_CIPHER_CTX_new();
        if (!k->enc_ || !k->dec_ ||
            EVP_EncryptInit_ex(k->enc_, EVP_aes_256_gcm(), nullptr, k->bytes_, nullptr) != 1 ||
            EVP_DecryptInit_ex(k->dec_, EVP_aes_256_gcm(), nullptr, k->bytes_, nullptr) != 1) {
            *err = "OpenSSL could not set up AES-256-GCM";
            return nullptr;
        }
    }
    return k;
}

Key::~Key() {
    // EVP_CIPHER_CTX_free cleanses the key schedule it holds.
    EVP_CIPHER_CTX_free(enc_);
    EVP_CIPHER_CTX_free(dec_);
    sodium_memzero(bytes_, sizeof bytes_);
}

bool Key::seal(const uint8_t* nonce, const uint8_t* ad, size_t ad_len, const uint8_t* pt, size_t pt_len,
               uint8_t* ct) const noexcept {
    if (suite_ == Suite::xchacha20poly1305) {
        unsigned long long ct_len = 0;
        return crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ct_len, pt, pt_len, ad, ad_len, nullptr, nonce,
                                                          bytes_) == 0;
    }
    if (pt_len > INT_MAX || ad_len > INT_MAX) return false;
    int len = 0, fin = 0;
    return EVP_EncryptInit_ex(enc_, nullptr, nullptr, nullptr, nonce) == 1 &&
           EVP_EncryptUpdate(enc_, nullptr, &len, ad, static_cast<int>(ad_len)) == 1 &&
           EVP_EncryptUpdate(enc_, ct, &len, pt, static_cast<int>(pt_len)) == 1 &&
           EVP_EncryptFinal_ex(enc_, ct + len, &fin) == 1 &&
           EVP_CIPHER_CTX_ctrl(enc_, EVP_CTRL_GCM_GET_TAG, kTagBytes, ct + pt_len) == 1;
}

bool Key::open(const uint8_t* nonce, const uint8_t* ad, size_t ad_len, const uint8_t* ct, size_t ct_len,
               uint8_t* pt) const noexcept {
    if (ct_len < kTagBytes) return false;
    if (suite_ == Suite::xchacha20poly1305) {
        // Our open (crypto/xchacha20poly1305.h): the same construction as
        // libsodium's, with less code and fewer instructions. seal()
        // keeps libsodium's one-shot call, so every round trip in the tests
        // checks this path against libsodium's.
        static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == kXChaChaNonceBytes &&
                          crypto_aead_xchacha20poly1305_ietf_KEYBYTES == kKeyBytes &&
                          crypto_aead_xchacha20poly1305_ietf_ABYTES == kTagBytes,
                      "the XChaCha20-Poly1305 layout of draft-irtf-cfrg-xchacha");
        return xchacha20poly1305_open(pt, ct, ct_len, ad, ad_len, nonce, bytes_);
    }
    const size_t body = ct_len - kTagBytes;
    if (body > INT_MAX || ad_len > INT_MAX) return false;
    int len = 0, fin = 0;
    // The tag is only read, but OpenSSL's ctrl takes a non-const pointer.
    void* tag = const_cast<uint8_t*>(ct + body);
    return EVP_DecryptInit_ex(dec_, nullptr, nullptr, nullptr, nonce) == 1 &&
           EVP_DecryptUpdate(dec_, nullptr, &len, ad, static_cast<int>(ad_len)) == 1 &&
           EVP_DecryptUpdate(dec_, pt, &len, ct, static_cast<int>(body)) == 1 &&
           EVP_CIPHER_CTX_ctrl(dec_, EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) == 1 &&
           EVP_DecryptFinal_ex(dec_, pt + len, &fin) == 1;
}

}  // namespace consent
