// A per-process memo of tokens that opened valid.
//
// A returning visitor sends the same UID cookie, byte for byte, on every
// page. Opening it (base64url, AEAD, strict parse) and hashing its subject
// into the pseudonym cost about 8,000 instructions, a third of the hit
// path; the memo turns a repeat into a hash, a compare and a copy.
//
// Only tokens that opened `valid` are remembered, so forged or garbage
// tokens can neither enter nor evict anything; a hit requires the exact
// bytes and kind, and re-checks the time rules against the caller's clock,
// so a hit answers exactly what open_token() would. The memo belongs to one
// key ring and one list of purposes: a reload, which may change either,
// builds a new one. CHOICE tokens are remembered already resolved against
// those purposes (open_choice), so a returning visitor's choice cookie
// costs what a UID cookie does.
//
// Direct-mapped, fixed size, allocated once: nothing per request. Not
// thread-safe (one per nginx worker process, each writing its own
// copy-on-write pages; see prefault()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "crypto/choice_token.h"
#include "crypto/pseudonym.h"
#include "crypto/token.h"

namespace consent {

class TokenMemo {
public:
    // Longer tokens are opened every time (tokens are ~115 to ~200 chars).
    static constexpr size_t kMaxText = 256;

    // A remembered entry, to attach the pseudonym to later. A stale ref
    // (the slot was reused since) is ignored.
    struct Ref {
        uint32_t slot = 0;
        uint32_t stamp = 0;  // 0: none
    };

    // `slots` is rounded up to a power of two. Throws std::bad_alloc.
    explicit TokenMemo(size_t slots);
    ~TokenMemo();
    TokenMemo(const TokenMemo&) = delete;
    TokenMemo& operator=(const TokenMemo&) = delete;

    // True when `text` of `kind` opened valid before and is still valid at
    // `now`: fills *claims, and `pseudonym` (kPseudonymHex chars, setting
    // *has_pseudonym) when one was attached.
    bool find(ExpectKind kind, std::string_view text, uint64_t now, TokenClaims* claims, char* pseudonym,
              bool* has_pseudonym, Ref* ref) noexcept;

    // open_token() through the memo: a hit answers `valid` at once; a
    // token that opens valid is remembered, and *ref names its entry.
    // `pseudonym` is written (and *has_pseudonym set) only by a hit that
    // carries one.
    TokenStatus open(std::string_view text, ExpectKind kind, const KeyRing& ring, uint64_t now,
                     TokenClaims* claims, Ref* ref, char* pseudonym, bool* has_pseudonym) noexcept;

    // open_choice_token() and resolve_choices() through the memo: only a
    // valid token fills *out. `names` must be the same list on every call.
    TokenStatus open_choice(std::string_view text, const KeyRing& ring, uint64_t now, const std::string_view* names,
                            size_t count, Choices* out) noexcept;

    // Remembers a token that open_token() found valid.
    Ref remember(ExpectKind kind, std::string_view text, const TokenClaims& claims) noexcept;

    // Attaches the pseudonym of `subject` to the entry `ref` names, if that
    // entry still holds a token of `subject`.
    void attach_pseudonym(Ref ref, std::string_view subject, const char pseudonym[kPseudonymHex]) noexcept;

    size_t slots() const { return mask_ + 1; }

    // Writes every page, so that the memory is resident from now on and
    // the process does not grow into it as tokens arrive. For nginx
    // workers, which share the master's untouched pages until they write.
    void prefault() noexcept;

private:
    struct Entry;
    size_t index(std::string_view text) const noexcept;
    Entry* lookup(ExpectKind kind, std::string_view text, uint64_t now) noexcept;

    Entry* entries_;
    size_t mask_;
    uint32_t next_stamp_ = 1;
};

}  // namespace consent
