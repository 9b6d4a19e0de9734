#include "crypto/token_memo.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include <sodium.h>

namespace consent {

struct TokenMemo::Entry {
    uint32_t stamp;  // 0: empty
    uint8_t kind;
    bool has_pseudonym;
    uint16_t text_len;
    char text[kMaxText];
    TokenClaims claims;  // CHOICE: the times only
    Choices choices;     // CHOICE: the answers, resolved
    char pseudonym[kPseudonymHex];
};

TokenMemo::TokenMemo(size_t slots) {
    size_t n = 1;
    while (n < slots) n <<= 1;
    // calloc: large blocks come from mmap as untouched zero pages, so the
    // nginx master, which never uses the memo, pays nothing for it; each
    // worker makes its copy resident with prefault().
    entries_ = static_cast<Entry*>(std::calloc(n, sizeof(Entry)));
    if (!entries_) throw std::bad_alloc();
    mask_ = n - 1;
}

TokenMemo::~TokenMemo() {
    // Subjects are personal data: leave none behind in freed memory. Only
    // used slots are wiped, so untouched pages stay untouched.
    for (size_t i = 0; i <= mask_; i++) {
        if (entries_[i].stamp) sodium_memzero(&entries_[i], sizeof(Entry));
    }
    std::free(entries_);
}

void TokenMemo::prefault() noexcept {
    // Zero is what the pages hold already: only the writes matter.
    std::memset(static_cast<void*>(entries_), 0, (mask_ + 1) * sizeof(Entry));
}

size_t TokenMemo::index(std::string_view text) const noexcept {
    // Only the last 16 characters: every token ends in its AEAD tag, 12
    // random bytes in 16 characters, so they spread valid tokens (the only
    // ones remembered) as well as the whole text would, at a sixth of the
    // cost of hashing 115 characters on every lookup. Text that is not a
    // token only ever misses: the full comparison in lookup() decides.
    const size_t n = text.size();
    const char* const p = text.data();
    uint64_t h = n * 0x9e3779b97f4a7c15ull;
    if (n >= 16) {
        uint64_t a, b;
        std::memcpy(&a, p + n - 16, 8);
        std::memcpy(&b, p + n - 8, 8);
        h = (h ^ a) * 0xff51afd7ed558ccdull;
        h = (h ^ b) * 0xff51afd7ed558ccdull;
    } else {
        for (size_t i = 0; i < n; i++) h = (h ^ static_cast<unsigned char>(p[i])) * 0x100000001b3ull;
    }
    h ^= h >> 32;
    return static_cast<size_t>(h) & mask_;
}

TokenMemo::Entry* TokenMemo::lookup(ExpectKind kind, std::string_view text, uint64_t now) noexcept {
    if (text.size() > kMaxText || kind == ExpectKind::any) return nullptr;
    Entry& e = entries_[index(text)];
    if (e.stamp == 0 || e.kind != static_cast<uint8_t>(kind) || e.text_len != text.size() ||
        std::memcmp(e.text, text.data(), text.size()) != 0)
        return nullptr;
    // Both time rules of open_token() again: expiry, and issued_at, should
    // the clock have been stepped back since.
    if (e.claims.expires_at <= now || (e.claims.issued_at > now && e.claims.issued_at - now > kMaxClockSkew))
        return nullptr;
    return &e;
}

bool TokenMemo::find(ExpectKind kind, std::string_view text, uint64_t now, TokenClaims* claims, char* pseudonym,
                     bool* has_pseudonym, Ref* ref) noexcept {
    const Entry* found = lookup(kind, text, now);
    if (!found) return false;
    const Entry& e = *found;
    const size_t i = static_cast<size_t>(found - entries_);
    *claims = e.claims;
    *has_pseudonym = e.has_pseudonym;
    if (e.has_pseudonym) std::memcpy(pseudonym, e.pseudonym, kPseudonymHex);
    ref->slot = static_cast<uint32_t>(i);
    ref->stamp = e.stamp;
    return true;
}

TokenStatus TokenMemo::open(std::string_view text, ExpectKind kind, const KeyRing& ring, uint64_t now,
                            TokenClaims* claims, Ref* ref, char* pseudonym, bool* has_pseudonym) noexcept {
    *has_pseudonym = false;
    if (find(kind, text, now, claims, pseudonym, has_pseudonym, ref)) return TokenStatus::valid;
    TokenHeader hdr;
    const TokenStatus status = open_token(text, kind, ring, now, &hdr, claims);
    if (status == TokenStatus::valid) *ref = remember(kind, text, *claims);
    return status;
}

TokenStatus TokenMemo::open_choice(std::string_view text, const KeyRing& ring, uint64_t now,
                                   const std::string_view* names, size_t count, Choices* out) noexcept {
    if (const Entry* e = lookup(ExpectKind::choice, text, now)) {
        *out = e->choices;
        return TokenStatus::valid;
    }
    TokenHeader hdr;
    ChoiceClaims claims;
    const TokenStatus status = open_choice_token(text, ring, now, &hdr, &claims);
    if (status != TokenStatus::valid) return status;
    *out = resolve_choices(claims, names, count);
    TokenClaims times;
    times.issued_at = claims.issued_at;
    times.expires_at = claims.expires_at;
    const Ref ref = remember(ExpectKind::choice, text, times);
    if (ref.stamp) entries_[ref.slot].choices = *out;
    return status;
}

TokenMemo::Ref TokenMemo::remember(ExpectKind kind, std::string_view text, const TokenClaims& claims) noexcept {
    Ref ref;
    if (text.size() > kMaxText || kind == ExpectKind::any) return ref;
    const size_t i = index(text);
    Entry& e = entries_[i];
    if (next_stamp_ == 0) next_stamp_ = 1;  // 0 means empty
    e.stamp = next_stamp_++;
    e.kind = static_cast<uint8_t>(kind);
    e.has_pseudonym = false;
    e.text_len = static_cast<uint16_t>(text.size());
    std::memcpy(e.text, text.data(), text.size());
    e.claims = claims;
    ref.slot = static_cast<uint32_t>(i);
    ref.stamp = e.stamp;
    return ref;
}

void TokenMemo::attach_pseudonym(Ref ref, std::string_view subject, const char pseudonym[kPseudonymHex]) noexcept {
    if (ref.stamp == 0 || ref.slot > mask_) return;
    Entry& e = entries_[ref.slot];
    // The subject check makes a wrapped stamp harmless.
    if (e.stamp != ref.stamp || e.claims.subject_view() != subject) return;
    std::memcpy(e.pseudonym, pseudonym, kPseudonymHex);
    e.has_pseudonym = true;
}

}  // namespace consent
