#include "crypto/token.h"

#include <cstring>

#include "crypto/base64url.h"

namespace consent {

namespace {

bool printable(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e) return false;
    return true;
}

bool printable(std::string_view s) { return printable(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

// Parses the decrypted plaintext; false on any layout violation.
bool parse_plaintext(const uint8_t* p, size_t n, TokenClaims* c) {
    if (n < kMinPlaintext || n > kMaxPlaintext) return false;
    c->issued_at = load_be(p, 8);
    c->expires_at = load_be(p + 8, 8);
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
    constexpr size_t kMaxText = base64url_encoded_len(kMaxTokenBytes);
    static_assert(kMaxText <= kMaxTokenText, "format maximum within the contract's limit");
    const unsigned kinds = expect == ExpectKind::any ? kind_bit(TokenKind::purl) | kind_bit(TokenKind::uid)
                                                     : 1u << static_cast<unsigned>(expect);
    uint8_t pt[kMaxPlaintext];
    size_t n = 0;
    const TokenStatus st = open_sealed(text, kinds, kMaxText, ring, hdr, pt, sizeof pt, &n);
    if (st != TokenStatus::valid) return st;

    // Parsed straight into the caller's claims: they are only meaningful
    // when the status says so, and a copy costs as much as the parse.
    if (!parse_plaintext(pt, n, claims)) return TokenStatus::invalid;
    if (claims->issued_at > now && claims->issued_at - now > kMaxClockSkew) return TokenStatus::invalid;
    return claims->expires_at <= now ? TokenStatus::expired : TokenStatus::valid;
}

size_t seal_token(const Key& key, TokenKind kind, const TokenClaims& claims, const uint8_t* nonce, char* out,
                  size_t cap) noexcept {
    if (kind == TokenKind::choice) return 0;
    if (claims.subject_len < 1 || claims.subject_len > kMaxSubject || claims.campaign_len > kMaxCampaign)
        return 0;
    if (!printable(claims.subject_view()) || !printable(claims.campaign_view())) return 0;

    uint8_t pt[kMaxPlaintext];
    store_be(pt, 8, claims.issued_at);
    store_be(pt + 8, 8, claims.expires_at);
    size_t off = 16;
    pt[off++] = claims.subject_len;
    std::memcpy(pt + off, claims.subject, claims.subject_len);
    off += claims.subject_len;
    pt[off++] = claims.campaign_len;
    std::memcpy(pt + off, claims.campaign, claims.campaign_len);
    off += claims.campaign_len;

    if (base64url_encoded_len(kHeaderBytes + nonce_bytes(key.suite()) + off + kTagBytes) > cap) return 0;
    return seal_sealed(key, kind, pt, off, nonce, out, cap);
}

}  // namespace consent
