#include "crypto/token.h"

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

const char* token_kind_name(TokenKind k) { return k == TokenKind::purl ? "purl" : "uid"; }

namespace {

bool printable(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) return false;
    return true;
}

bool printable(std::string_view s) { return printable(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

uint64_t load_be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

void store_be64(uint8_t* p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = static_cast<uint8_t>(v);
}

// Parses the decrypted plaintext; false on any layout violation.
bool parse_plaintext(const uint8_t* p, size_t n, TokenClaims* c) {
    if (n < kMinPlaintext || n > kMaxPlaintext) return false;
    c->issued_at = load_be64(p);
    c->expires_at = load_be64(p + 8);
    size_t off = 16;
    const size_t slen = p[off++];
    if (slen < 1 || slen > kMaxSubject || off + slen + 1 > n) return false;
    if (!printable(p + off, slen)) return false;
    std::memcpy(c->subject, p + off, slen);
    c->subject_len = static_cast<uint8_t>(slen);
    off += slen;
    const size_t clen = p[off++];
    if (clen > kMaxCampaign || off + clen != n) return false;  // nothing may follow
    if (!printable(p + off, clen)) return false;
    std::memcpy(c->campaign, p + off, clen);
    c->campaign_len = static_cast<uint8_t>(clen);
    return true;
}

}  // namespace

bool TokenClaims::set(std::string_view subj, std::string_view camp) {
    if (subj.empty() || subj.size() > kMaxSubject || camp.size() > kMaxCampaign) return false;
    if (!printable(subj) || !printable(camp)) return false;
    std::memcpy(subject, subj.data(), subj.size());
    subject_len = static_cast<uint8_t>(subj.size());
    // An empty campaign may be a default string_view, {nullptr, 0}: memcpy
    // from a null pointer is undefined even for 0 bytes (UBSan, the UID
    // cookie path passes std::string_view()).
    if (!camp.empty()) std::memcpy(campaign, camp.data(), camp.size());
    campaign_len = static_cast<uint8_t>(camp.size());
    return true;
}

TokenStatus open_token(std::string_view text, ExpectKind expect, const KeyRing& ring, uint64_t now,
                       TokenHeader* hdr, TokenClaims* claims) noexcept {
    // Size limits first: nothing longer than the largest possible token is
    // decoded, so oversized input costs one comparison.
    constexpr size_t kMaxText = base64url_encoded_len(kMaxTokenBytes);
    static_assert(kMaxText <= kMaxTokenText, "format maximum within the contract's limit");
    if (text.size() > kMaxText) return TokenStatus::invalid;

    uint8_t blob[kMaxTokenBytes];
    const long n = base64url_decode(text, blob, sizeof blob);
    if (n < static_cast<long>(kHeaderBytes)) return TokenStatus::invalid;

    const auto suite = suite_from_byte(blob[2]);
    if (blob[0] != kTokenVersion || (blob[1] != 1 && blob[1] != 2) || !suite) return TokenStatus::invalid;
    hdr->version = blob[0];
    hdr->kind = static_cast<TokenKind>(blob[1]);
    hdr->suite = *suite;
    hdr->key_id = static_cast<uint16_t>(blob[3] << 8 | blob[4]);
    if (expect != ExpectKind::any && static_cast<uint8_t>(expect) != blob[1]) return TokenStatus::invalid;
    if (hdr->key_id == 0) return TokenStatus::invalid;

    const Key* key = ring.find(hdr->key_id);
    if (!key) return TokenStatus::unknown_key;
    if (key->suite() != *suite) return TokenStatus::invalid;

    const size_t nonce_len = nonce_bytes(*suite);
    const size_t min = kHeaderBytes + nonce_len + kMinPlaintext + kTagBytes;
    const size_t max = kHeaderBytes + nonce_len + kMaxPlaintext + kTagBytes;
    const size_t len = static_cast<size_t>(n);
    if (len < min || len > max) return TokenStatus::invalid;

    const uint8_t* nonce = blob + kHeaderBytes;
    const uint8_t* ct = nonce + nonce_len;
    const size_t ct_len = len - kHeaderBytes - nonce_len;
    uint8_t pt[kMaxPlaintext];
    if (!key->open(nonce, blob, kHeaderBytes, ct, ct_len, pt)) return TokenStatus::invalid;

    // Parsed straight into the caller's claims: they are only meaningful
    // when the status says so, and a copy costs as much as the parse.
    if (!parse_plaintext(pt, ct_len - kTagBytes, claims)) return TokenStatus::invalid;
    if (claims->issued_at > now + kMaxClockSkew) return TokenStatus::invalid;
    return claims->expires_at <= now ? TokenStatus::expired : TokenStatus::valid;
}

size_t seal_token(const Key& key, TokenKind kind, const TokenClaims& claims, const uint8_t* nonce, char* out,
                  size_t cap) noexcept {
    if (claims.subject_len < 1 || claims.subject_len > kMaxSubject || claims.campaign_len > kMaxCampaign)
        return 0;
    if (!printable(claims.subject_view()) || !printable(claims.campaign_view())) return 0;

    uint8_t pt[kMaxPlaintext];
    store_be64(pt, claims.issued_at);
    store_be64(pt + 8, claims.expires_at);
    size_t off = 16;
    pt[off++] = claims.subject_len;
    std::memcpy(pt + off, claims.subject, claims.subject_len);
    off += claims.subject_len;
    pt[off++] = claims.campaign_len;
    std::memcpy(pt + off, claims.campaign, claims.campaign_len);
    off += claims.campaign_len;

    uint8_t blob[kMaxTokenBytes];
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
    if (!key.seal(blob + kHeaderBytes, blob, kHeaderBytes, pt, off, ct)) return 0;

    const size_t total = kHeaderBytes + nonce_len + off + kTagBytes;
    if (base64url_encoded_len(total) > cap) return 0;
    return base64url_encode(blob, total, out);
}

}  // namespace consent
