// Symmetric token keys and the two AEAD suites of token format v1.
//
// A Key is bound to one suite for life: the suite byte of a token must match
// the suite of the key its key id names, so a key can never be used under
// the other algorithm. Key bytes are wiped with sodium_memzero when the Key
// is destroyed.
//
// For AES-256-GCM the Key keeps an initialised OpenSSL context, so opening a
// token neither allocates nor re-runs the key schedule. That makes a Key
// usable from one thread at a time only, which is what nginx workers and
// consentctl are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace consent {

enum class Suite : uint8_t { xchacha20poly1305 = 1, aes256gcm = 2 };

constexpr size_t kKeyBytes = 32;
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxNonceBytes = 24;

constexpr size_t nonce_bytes(Suite s) { return s == Suite::xchacha20poly1305 ? 24 : 12; }

std::optional<Suite> suite_from_byte(uint8_t b);
std::optional<Suite> suite_from_name(std::string_view name);
const char* suite_name(Suite s);

// Calls sodium_init() once; true when libsodium is usable.
bool crypto_init();

class Key {
public:
    // Returns nullptr and sets *err when the cipher cannot be set up.
    static std::unique_ptr<Key> create(uint16_t id, Suite suite, const uint8_t bytes[kKeyBytes], std::string* err);
    ~Key();
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;

    uint16_t id() const { return id_; }
    Suite suite() const { return suite_; }

    // AEAD seal: writes ct_len = pt_len + kTagBytes bytes to `ct`.
    bool seal(const uint8_t* nonce, const uint8_t* ad, size_t ad_len, const uint8_t* pt, size_t pt_len,
              uint8_t* ct) const noexcept;
    // AEAD open: `ct_len` includes the tag; writes ct_len - kTagBytes bytes to `pt`.
    // False when authentication fails; `pt` content is then meaningless.
    bool open(const uint8_t* nonce, const uint8_t* ad, size_t ad_len, const uint8_t* ct, size_t ct_len,
              uint8_t* pt) const noexcept;

private:
    Key(uint16_t id, Suite suite) : id_(id), suite_(suite) {}

    uint16_t id_;
    Suite suite_;
    uint8_t bytes_[kKeyBytes]{};
    EVP_CIPHER_CTX* enc_ = nullptr;  // AES only
    EVP_CIPHER_CTX* dec_ = nullptr;  // AES only
};

}  // namespace consent
