#include "crypto/choice_token.h"

#include <cstring>

#include "crypto/base64url.h"

namespace consent {

namespace {

bool purpose_name_ok(const uint8_t* p, size_t n) {
    if (n < 1 || n > kMaxChoiceName) return false;
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

bool answered(const ChoiceClaims& c, std::string_view name) {
    for (size_t i = 0; i < c.count; i++)
        if (c.name(i) == name) return true;
    return false;
}

bool parse_choice_plaintext(const uint8_t* p, size_t n, ChoiceClaims* c) {
    if (n < kChoiceFixedBytes) return false;
    *c = ChoiceClaims();
    c->issued_at = load_be(p, 8);
    c->expires_at = load_be(p + 8, 8);
    c->revision = static_cast<uint32_t>(load_be(p + 16, 4));
    const size_t count = p[20];
    if (count > kMaxPurposes) return false;
    size_t off = kChoiceFixedBytes;
    for (size_t i = 0; i < count; i++) {
        if (off >= n) return false;
        const size_t len = p[off++];
        if (off + len + 1 > n || !purpose_name_ok(p + off, len)) return false;
        const uint8_t answer = p[off + len];
        if (answer > 1) return false;
        if (!c->add(std::string_view(reinterpret_cast<const char*>(p + off), len), answer == 1)) return false;
        off += len + 1;
    }
    return off == n;  // nothing may follow
}

}  // namespace

bool ChoiceClaims::add(std::string_view n, bool yes) {
    if (count >= kMaxPurposes || !purpose_name_ok(reinterpret_cast<const uint8_t*>(n.data()), n.size()) ||
        answered(*this, n))
        return false;
    const size_t off = count == 0 ? 0 : name_off[count - 1] + name_len[count - 1];
    std::memcpy(names + off, n.data(), n.size());
    name_off[count] = static_cast<uint16_t>(off);
    name_len[count] = static_cast<uint8_t>(n.size());
    granted[count] = yes;
    count++;
    return true;
}

Choices resolve_choices(const ChoiceClaims& c, const std::string_view* names, size_t count) noexcept {
    Choices a;
    a.revision = c.revision;
    if (count > kMaxPurposes) count = kMaxPurposes;
    for (size_t i = 0; i < c.count; i++) {
        const std::string_view n = c.name(i);
        for (size_t j = 0; j < count; j++) {
            if (names[j] != n) continue;
            a.answered |= purpose_bit(static_cast<unsigned>(j));
            if (c.granted[i]) a.granted |= purpose_bit(static_cast<unsigned>(j));
            break;
        }
    }
    return a;
}

TokenStatus open_choice_token(std::string_view text, const KeyRing& ring, uint64_t now, TokenHeader* hdr,
                              ChoiceClaims* claims) noexcept {
    uint8_t pt[kMaxSealedPlaintext];
    size_t n = 0;
    const TokenStatus st =
        open_sealed(text, kind_bit(TokenKind::choice), kMaxTokenText, ring, hdr, pt, sizeof pt, &n);
    if (st != TokenStatus::valid) return st;
    if (!parse_choice_plaintext(pt, n, claims)) return TokenStatus::invalid;
    if (claims->issued_at > now && claims->issued_at - now > kMaxClockSkew) return TokenStatus::invalid;
    return claims->expires_at <= now ? TokenStatus::expired : TokenStatus::valid;
}

size_t seal_choice_token(const Key& key, const ChoiceClaims& c, const uint8_t* nonce, char* out,
                         size_t cap) noexcept {
    uint8_t pt[kMaxSealedPlaintext];
    if (c.count > kMaxPurposes) return 0;
    size_t total = 0;
    for (size_t i = 0; i < c.count; i++) total += c.name_len[i];
    const size_t len = choice_plaintext_len(c.count, total);
    if (len > sizeof pt) return 0;
    store_be(pt, 8, c.issued_at);
    store_be(pt + 8, 8, c.expires_at);
    store_be(pt + 16, 4, c.revision);
    pt[20] = c.count;
    size_t off = kChoiceFixedBytes;
    for (size_t i = 0; i < c.count; i++) {
        const std::string_view n = c.name(i);
        if (!purpose_name_ok(reinterpret_cast<const uint8_t*>(n.data()), n.size())) return 0;
        pt[off++] = static_cast<uint8_t>(n.size());
        std::memcpy(pt + off, n.data(), n.size());
        off += n.size();
        pt[off++] = c.granted[i] ? 1 : 0;
    }
    if (base64url_encoded_len(kHeaderBytes + nonce_bytes(key.suite()) + off + kTagBytes) > cap) return 0;
    return seal_sealed(key, TokenKind::choice, pt, off, nonce, out, cap);
}

}  // namespace consent
