#include "crypto/sealed.h"

#include <sodium.h>

#include <cstring>

#include "crypto/base64url.h"

namespace consent {

const char* token_status_name(TokenStatus s) {
    switch (s) {
        case TokenStatus::none: return "none";
        case TokenStatus::valid: return "valid";
        case TokenStatus::invalid: return "invalid";
        case TokenStatus::expired: return "expired";
        case TokenStatus::unknown_key: return "unknown_key";
    }
    return "invalid";
}

const char* token_kind_name(TokenKind k) {
    switch (k) {
        case TokenKind::purl: return "purl";
        case TokenKind::uid: return "uid";
        case TokenKind::choice: return "choice";
    }
    return "purl";
}

TokenStatus open_sealed(std::string_view text, unsigned kinds, size_t max_text, const KeyRing& ring,
                        TokenHeader* hdr, uint8_t* pt, size_t pt_cap, size_t* pt_len) noexcept {
    // Size limits first: nothing longer than the largest token of the kind
    // is decoded, so oversized input costs one comparison.
    if (text.size() > max_text || text.size() > kMaxTokenText) return TokenStatus::invalid;

    // The first eight characters (the header) are decoded first: garbage,
    // or another version, kind or suite, is turned down before the rest is
    // decoded, a few hundred instructions per forged token. The rest must
    // still decode before a key is looked for, so every status is the one
    // a whole decode first would give.
    uint8_t blob[kMaxSealedBytes];
    const std::string_view head = text.substr(0, 8);  // whole quanta: the rest decodes on its own
    const long n_head = base64url_decode(head, blob, sizeof blob);
    if (n_head < static_cast<long>(kHeaderBytes)) return TokenStatus::invalid;

    const auto suite = suite_from_byte(blob[2]);
    if (blob[0] != kTokenVersion || blob[1] < 1 || blob[1] > 3 || !suite) return TokenStatus::invalid;
    hdr->version = blob[0];
    hdr->kind = static_cast<TokenKind>(blob[1]);
    hdr->suite = *suite;
    hdr->key_id = static_cast<uint16_t>(blob[3] << 8 | blob[4]);
    if (!(kinds & 1u << blob[1])) return TokenStatus::invalid;
    if (hdr->key_id == 0) return TokenStatus::invalid;

    const long n_rest = base64url_decode(text.substr(head.size()), blob + n_head, sizeof blob - n_head);
    if (n_rest < 0) return TokenStatus::invalid;
    const long n = n_head + n_rest;

    const Key* key = ring.find(hdr->key_id);
    if (!key) return TokenStatus::unknown_key;
    if (key->suite() != *suite) return TokenStatus::invalid;

    const size_t nonce_len = nonce_bytes(*suite);
    const size_t len = static_cast<size_t>(n);
    if (len < kHeaderBytes + nonce_len + kTagBytes || len - kHeaderBytes - nonce_len - kTagBytes > pt_cap)
        return TokenStatus::invalid;

    const uint8_t* nonce = blob + kHeaderBytes;
    const uint8_t* ct = nonce + nonce_len;
    const size_t ct_len = len - kHeaderBytes - nonce_len;
    if (!key->open(nonce, blob, kHeaderBytes, ct, ct_len, pt)) return TokenStatus::invalid;
    *pt_len = ct_len - kTagBytes;
    return TokenStatus::valid;
}

size_t seal_sealed(const Key& key, TokenKind kind, const uint8_t* pt, size_t pt_len, const uint8_t* nonce,
                   char* out, size_t cap) noexcept {
    if (pt_len > kMaxSealedPlaintext) return 0;
    uint8_t blob[kMaxSealedBytes];
    blob[0] = kTokenVersion;
    blob[1] = static_cast<uint8_t>(kind);
    blob[2] = static_cast<uint8_t>(key.suite());
    blob[3] = static_cast<uint8_t>(key.id() >> 8);
    blob[4] = static_cast<uint8_t>(key.id());
    const size_t nonce_len = nonce_bytes(key.suite());
    if (nonce)
        std::memcpy(blob + kHeaderBytes, nonce, nonce_len);
    else
        randombytes_buf(blob + kHeaderBytes, nonce_len);
    uint8_t* ct = blob + kHeaderBytes + nonce_len;
    if (!key.seal(blob + kHeaderBytes, blob, kHeaderBytes, pt, pt_len, ct)) return 0;

    const size_t total = kHeaderBytes + nonce_len + pt_len + kTagBytes;
    if (base64url_encoded_len(total) > cap) return 0;
    return base64url_encode(blob, total, out);
}

}  // namespace consent
