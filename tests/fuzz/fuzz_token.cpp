// fuzz_token: base64url_decode and open_token over arbitrary text, and
// seal_token -> open_token round trips with fuzzer-chosen claims.
//
// The key ring holds the published test-vector keys (docs/token-format.md),
// one per suite, so the vector tokens in the corpus open as valid.
//
// Properties, for the whole input taken as token text:
//   - base64url_decode either fails or the bytes re-encode to exactly the
//     same text (one text form per token), and it never writes past `cap`;
//   - open_token never returns `none`, and returns valid or expired only for
//     canonical text of the format's length whose header names a key of the
//     ring with its suite and the expected kind, with claims inside the
//     format (subject 1..64 printable, campaign 0..64 printable, issued_at <=
//     now + 300, expires_at > now for valid and <= now for expired);
//   - the three ExpectKinds agree with each other.
// And, reading the same input with FuzzedDataProvider:
//   - seal_token accepts exactly the claims the format allows, never writes
//     more than `cap`, and is deterministic for a given nonce;
//   - a sealed token opens with identical header and claims, with the
//     status the clock rules give; under the other kind it is invalid;
//   - changing any one character, or cutting the text short, never yields a
//     token that opens.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/base64url.h"
#include "crypto/keyfile.h"
#include "crypto/keyring.h"
#include "crypto/token.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The published vector keys: key id 1 (XChaCha20-Poly1305), 258 (AES-256-GCM).
constexpr const char* kXChaChaKey =
    "xchacha20poly1305 8f2c1d5e0a7b94c3e6f1082d4b5a69c7d3e0f1a2b4c5d6e7f8091a2b3c4d5e6f";
constexpr const char* kAesKey = "aes256gcm 4a1f0e9d8c7b6a5948372615f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b";
constexpr uint16_t kXChaChaId = 1, kAesId = 258;

// Clocks for the arbitrary-text part: all three vectors valid; before the
// vectors' issued_at minus the skew; after every vector expired.
constexpr uint64_t kNows[] = {1790050000, 1789999000, 1805552000};

struct Ring {
    KeyRing ring;
    const Key* xchacha = nullptr;
    const Key* aes = nullptr;

    Ring() {
        FUZZ_CHECK(crypto_init(), "libsodium init");
        add(kXChaChaKey, kXChaChaId, &xchacha);
        add(kAesKey, kAesId, &aes);
    }
    void add(const char* line, uint16_t id, const Key** out) {
        Suite suite;
        KeyBytes bytes;
        std::string err;
        FUZZ_CHECK(parse_key_text(line, &suite, &bytes, &err), "%s", err.c_str());
        auto key = Key::create(id, suite, bytes.b, &err);
        FUZZ_CHECK(key != nullptr, "%s", err.c_str());
        *out = key.get();
        FUZZ_CHECK(ring.add(std::move(key), false, &err), "%s", err.c_str());
    }
};

const Ring& ring() {
    static const Ring r;
    return r;
}

bool printable(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

// Decodes into a heap buffer of exactly `cap` bytes, so ASan sees any write past it.
long decode_exact(std::string_view text, size_t cap, std::vector<uint8_t>* out) {
    out->assign(cap, 0);
    // data() of an empty vector may be null; give the decoder a real pointer.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[cap ? cap : 1]);
    const long n = base64url_decode(text, buf.get(), cap);
    if (n > 0) std::memcpy(out->data(), buf.get(), static_cast<size_t>(n));
    return n;
}

void check_base64url(std::string_view text) {
    std::vector<uint8_t> bytes;
    const size_t cap = base64url_decoded_max(text.size());
    const long n = decode_exact(text, cap, &bytes);
    if (n < 0) return;
    FUZZ_CHECK(static_cast<size_t>(n) <= cap, "decoded %ld > cap %zu", n, cap);
    FUZZ_CHECK(base64url_encoded_len(static_cast<size_t>(n)) == text.size(), "length of %s",
               fuzz::show(text).c_str());
    std::string again(base64url_encoded_len(static_cast<size_t>(n)), '\0');
    const size_t m = base64url_encode(bytes.data(), static_cast<size_t>(n), again.data());
    FUZZ_CHECK(m == again.size() && again == text, "%s decodes but re-encodes as %s", fuzz::show(text).c_str(),
               fuzz::show(again).c_str());
    // The exact size suffices; one byte less is refused without a write past it.
    std::vector<uint8_t> exact;
    FUZZ_CHECK(decode_exact(text, static_cast<size_t>(n), &exact) == n, "exact cap");
    if (n > 0) FUZZ_CHECK(decode_exact(text, static_cast<size_t>(n) - 1, &exact) == -1, "cap too small accepted");
}

// Every valid or expired result satisfies the format.
void check_opened(std::string_view text, ExpectKind expect, uint64_t now, TokenStatus st, const TokenHeader& hdr,
                  const TokenClaims& c) {
    FUZZ_CHECK(st != TokenStatus::none, "open_token returned none");
    if (st != TokenStatus::valid && st != TokenStatus::expired) return;
    const std::string t = fuzz::show(text);
    FUZZ_CHECK(text.size() <= kMaxTokenText, "%zu chars opened", text.size());
    std::vector<uint8_t> blob;
    const long n = decode_exact(text, base64url_decoded_max(text.size()), &blob);
    FUZZ_CHECK(n >= static_cast<long>(kHeaderBytes), "%s opened but does not decode", t.c_str());
    std::string again(base64url_encoded_len(static_cast<size_t>(n)), '\0');
    base64url_encode(blob.data(), static_cast<size_t>(n), again.data());
    FUZZ_CHECK(again == text, "%s opened but is not canonical", t.c_str());
    FUZZ_CHECK(blob[0] == kTokenVersion && hdr.version == kTokenVersion, "version");
    FUZZ_CHECK(blob[1] == static_cast<uint8_t>(hdr.kind) && (blob[1] == 1 || blob[1] == 2), "kind byte");
    FUZZ_CHECK(expect == ExpectKind::any || static_cast<uint8_t>(expect) == blob[1], "%s opened as the wrong kind",
               t.c_str());
    const Key* key = ring().ring.find(hdr.key_id);
    FUZZ_CHECK(key && key->suite() == hdr.suite && blob[2] == static_cast<uint8_t>(hdr.suite), "key/suite");
    FUZZ_CHECK(hdr.key_id == (blob[3] << 8 | blob[4]), "key id");
    FUZZ_CHECK(c.subject_len >= 1 && c.subject_len <= kMaxSubject && printable(c.subject_view()),
               "subject %s", fuzz::show(c.subject_view()).c_str());
    FUZZ_CHECK(c.campaign_len <= kMaxCampaign && printable(c.campaign_view()), "campaign %s",
               fuzz::show(c.campaign_view()).c_str());
    FUZZ_CHECK(static_cast<size_t>(n) ==
                   kHeaderBytes + nonce_bytes(hdr.suite) + 18 + c.subject_len + c.campaign_len + kTagBytes,
               "length %ld does not match the claims", n);
    FUZZ_CHECK(c.issued_at <= now + kMaxClockSkew, "issued_at %llu now %llu",
               static_cast<unsigned long long>(c.issued_at), static_cast<unsigned long long>(now));
    if (st == TokenStatus::valid)
        FUZZ_CHECK(c.expires_at > now, "valid but expires_at %llu <= now %llu",
                   static_cast<unsigned long long>(c.expires_at), static_cast<unsigned long long>(now));
    else
        FUZZ_CHECK(c.expires_at <= now, "expired but expires_at %llu > now %llu",
                   static_cast<unsigned long long>(c.expires_at), static_cast<unsigned long long>(now));
}

TokenStatus open(std::string_view text, ExpectKind expect, uint64_t now, TokenHeader* hdr, TokenClaims* c) {
    // Exactly the text's bytes on the heap: ASan catches a read past its end.
    std::unique_ptr<char[]> copy(new char[text.size() ? text.size() : 1]);
    if (!text.empty()) std::memcpy(copy.get(), text.data(), text.size());
    const std::string_view view = text.empty() ? std::string_view() : std::string_view(copy.get(), text.size());
    const TokenStatus st = open_token(view, expect, ring().ring, now, hdr, c);
    check_opened(text, expect, now, st, *hdr, *c);
    return st;
}

bool opens(TokenStatus s) { return s == TokenStatus::valid || s == TokenStatus::expired; }

void fuzz_text(std::string_view text) {
    check_base64url(text);
    for (const uint64_t now : kNows) {
        TokenHeader h_any, h_purl, h_uid;
        TokenClaims c_any, c_purl, c_uid;
        const TokenStatus any = open(text, ExpectKind::any, now, &h_any, &c_any);
        const TokenStatus purl = open(text, ExpectKind::purl, now, &h_purl, &c_purl);
        const TokenStatus uid = open(text, ExpectKind::uid, now, &h_uid, &c_uid);
        if (any == TokenStatus::invalid) {
            FUZZ_CHECK(purl == TokenStatus::invalid && uid == TokenStatus::invalid, "kinds disagree");
        } else {
            // The header decoded: the matching kind gives the same answer, the other is invalid.
            const bool is_purl = h_any.kind == TokenKind::purl;
            FUZZ_CHECK((is_purl ? purl : uid) == any, "expected kind disagrees with any");
            FUZZ_CHECK((is_purl ? uid : purl) == TokenStatus::invalid, "other kind not invalid");
            if (opens(any)) {
                const TokenClaims& c = is_purl ? c_purl : c_uid;
                FUZZ_CHECK(c.issued_at == c_any.issued_at && c.expires_at == c_any.expires_at &&
                               c.subject_view() == c_any.subject_view() && c.campaign_view() == c_any.campaign_view(),
                           "claims differ between expect kinds");
            }
        }
    }
}

void fuzz_round_trip(FuzzedDataProvider& fdp) {
    const Ring& r = ring();
    const Key& key = fdp.ConsumeBool() ? *r.xchacha : *r.aes;
    const TokenKind kind = fdp.ConsumeBool() ? TokenKind::purl : TokenKind::uid;
    const bool random_nonce = fdp.ConsumeIntegralInRange<int>(0, 7) == 0;
    std::vector<uint8_t> nonce = fdp.ConsumeBytes<uint8_t>(nonce_bytes(key.suite()));
    nonce.resize(nonce_bytes(key.suite()), 0x5a);
    const uint64_t issued_at = fdp.ConsumeIntegral<uint64_t>();
    const uint64_t expires_at = fdp.ConsumeIntegral<uint64_t>();
    // A wall clock: far from the end of uint64_t, so now + 300 cannot wrap.
    const uint64_t now = fdp.ConsumeIntegralInRange<uint64_t>(0, uint64_t(1) << 62);
    const size_t mutate_at = fdp.ConsumeIntegral<uint16_t>();
    const uint8_t mutate_to = fdp.ConsumeIntegral<uint8_t>();
    const size_t cut = fdp.ConsumeIntegral<uint16_t>();
    const std::string subject = fdp.ConsumeRandomLengthString(80);
    const std::string campaign = fdp.ConsumeRandomLengthString(80);

    const bool fits = !subject.empty() && subject.size() <= kMaxSubject && campaign.size() <= kMaxCampaign &&
                      printable(subject) && printable(campaign);
    TokenClaims claims;
    // Empty strings as default string_views, {nullptr, 0}, as the UID cookie
    // path passes them: UBSan checks that nothing memcpy()s from null.
    const bool set = claims.set(subject.empty() ? std::string_view() : std::string_view(subject),
                                campaign.empty() ? std::string_view() : std::string_view(campaign));
    FUZZ_CHECK(set == fits, "TokenClaims::set(%s, %s) = %d", fuzz::show(subject).c_str(),
               fuzz::show(campaign).c_str(), set);
    if (!set) {
        // Out-of-format claims written directly: seal_token must refuse them.
        // (Strings are at most 80 bytes: the lengths fit a uint8_t; bytes past
        // 64 are not copied, the length alone must make seal_token refuse.)
        TokenClaims raw;
        raw.subject_len = static_cast<uint8_t>(subject.size());
        raw.campaign_len = static_cast<uint8_t>(campaign.size());
        std::memcpy(raw.subject, subject.data(), subject.size() < kMaxSubject ? subject.size() : kMaxSubject);
        std::memcpy(raw.campaign, campaign.data(), campaign.size() < kMaxCampaign ? campaign.size() : kMaxCampaign);
        char out[kMaxTokenTextOut];
        FUZZ_CHECK(seal_token(key, kind, raw, nonce.data(), out, sizeof out) == 0, "sealed out-of-format claims");
        return;
    }
    claims.issued_at = issued_at;
    claims.expires_at = expires_at;

    const uint8_t* np = random_nonce ? nullptr : nonce.data();
    std::unique_ptr<char[]> out(new char[kMaxTokenTextOut]);
    const size_t len = seal_token(key, kind, claims, np, out.get(), kMaxTokenTextOut);
    const size_t bytes = kHeaderBytes + nonce_bytes(key.suite()) + 18 + subject.size() + campaign.size() + kTagBytes;
    const size_t want = base64url_encoded_len(bytes);
    FUZZ_CHECK(len == want, "sealed %zu chars, expected %zu", len, want);
    const std::string text(out.get(), len);

    // Exactly `len` is room enough; one char less is refused, with no write past it.
    std::unique_ptr<char[]> exact(new char[len]);
    const size_t len2 = seal_token(key, kind, claims, np, exact.get(), len);
    FUZZ_CHECK(len2 == len, "exact cap");
    if (!random_nonce)
        FUZZ_CHECK(std::string_view(exact.get(), len) == text, "same nonce, different token");
    FUZZ_CHECK(seal_token(key, kind, claims, np, exact.get(), len - 1) == 0, "cap too small accepted");

    TokenHeader hdr;
    TokenClaims got;
    const ExpectKind expect = kind == TokenKind::purl ? ExpectKind::purl : ExpectKind::uid;
    const TokenStatus st = open(text, expect, now, &hdr, &got);
    const TokenStatus want_st = issued_at > now + kMaxClockSkew ? TokenStatus::invalid
                                : expires_at <= now           ? TokenStatus::expired
                                                              : TokenStatus::valid;
    FUZZ_CHECK(st == want_st, "sealed token opened as %s, expected %s", token_status_name(st),
               token_status_name(want_st));
    FUZZ_CHECK(hdr.version == kTokenVersion && hdr.kind == kind && hdr.suite == key.suite() && hdr.key_id == key.id(),
               "header differs");
    if (opens(st)) {
        FUZZ_CHECK(got.issued_at == issued_at && got.expires_at == expires_at && got.subject_view() == subject &&
                       got.campaign_view() == campaign,
                   "claims differ after the round trip");
    }
    const ExpectKind other = kind == TokenKind::purl ? ExpectKind::uid : ExpectKind::purl;
    FUZZ_CHECK(open(text, other, now, &hdr, &got) == TokenStatus::invalid, "opened as the other kind");

    // One character changed: never opens (AEAD, strict base64url).
    std::string changed = text;
    const size_t at = mutate_at % len;
    changed[at] = static_cast<char>(mutate_to);
    if (changed[at] == text[at]) changed[at] = kAlphabet[(std::strchr(kAlphabet, text[at]) - kAlphabet + 1) % 64];
    FUZZ_CHECK(!opens(open(changed, ExpectKind::any, now, &hdr, &got)), "%s opened after a change at %zu",
               fuzz::show(changed).c_str(), at);
    // Cut short: never opens.
    const std::string shorter = text.substr(0, cut % len);
    FUZZ_CHECK(!opens(open(shorter, ExpectKind::any, now, &hdr, &got)), "truncated token opened");
}

uint64_t load_be64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

void fuzz_plaintext(FuzzedDataProvider& fdp) {
    const Ring& r = ring();
    const Key& key = fdp.ConsumeBool() ? *r.xchacha : *r.aes;
    const TokenKind kind = fdp.ConsumeBool() ? TokenKind::purl : TokenKind::uid;
    const uint64_t now = fdp.ConsumeBool() ? kNows[0] : fdp.ConsumeIntegralInRange<uint64_t>(0, uint64_t(1) << 62);
    const size_t nonce_len = nonce_bytes(key.suite());
    std::vector<uint8_t> blob = fdp.ConsumeBytes<uint8_t>(nonce_len);
    blob.resize(nonce_len, 0xa5);
    blob.insert(blob.begin(), {kTokenVersion, static_cast<uint8_t>(kind), static_cast<uint8_t>(key.suite()),
                               static_cast<uint8_t>(key.id() >> 8), static_cast<uint8_t>(key.id())});
    const std::vector<uint8_t> pt = fdp.ConsumeBytes<uint8_t>(kMaxPlaintext + 8);
    const size_t ct_at = blob.size();
    blob.resize(ct_at + pt.size() + kTagBytes);
    FUZZ_CHECK(key.seal(blob.data() + kHeaderBytes, blob.data(), kHeaderBytes, pt.data(), pt.size(),
                        blob.data() + ct_at),
               "seal");
    std::string text(base64url_encoded_len(blob.size()), '\0');
    base64url_encode(blob.data(), blob.size(), text.data());

    // The reference reading of the plaintext layout.
    TokenStatus want = TokenStatus::invalid;
    TokenClaims c;
    const size_t n = pt.size();
    if (n >= kMinPlaintext && n <= kMaxPlaintext) {
        const size_t slen = pt[16];
        if (slen >= 1 && slen <= kMaxSubject && 17 + slen < n) {
            const size_t clen = pt[17 + slen];
            const std::string_view subj(reinterpret_cast<const char*>(pt.data()) + 17, slen);
            const std::string_view camp(reinterpret_cast<const char*>(pt.data()) + 18 + slen, n - 18 - slen);
            if (clen <= kMaxCampaign && 18 + slen + clen == n && printable(subj) && printable(camp)) {
                c.issued_at = load_be64(pt.data());
                c.expires_at = load_be64(pt.data() + 8);
                FUZZ_CHECK(c.set(subj, camp), "claims");
                want = c.issued_at > now + kMaxClockSkew ? TokenStatus::invalid
                       : c.expires_at <= now             ? TokenStatus::expired
                                                         : TokenStatus::valid;
            }
        }
    }
    TokenHeader hdr;
    TokenClaims got;
    const TokenStatus st = open(text, kind == TokenKind::purl ? ExpectKind::purl : ExpectKind::uid, now, &hdr, &got);
    FUZZ_CHECK(st == want, "authentic plaintext of %zu bytes opened as %s, reference %s", n, token_status_name(st),
               token_status_name(want));
    if (opens(st))
        FUZZ_CHECK(got.issued_at == c.issued_at && got.expires_at == c.expires_at &&
                       got.subject_view() == c.subject_view() && got.campaign_view() == c.campaign_view(),
                   "claims differ from the reference reading");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_text(std::string_view(reinterpret_cast<const char*>(data), size));
    FuzzedDataProvider fdp(data, size);
    if (fdp.ConsumeIntegralInRange<int>(0, 3) == 0)
        fuzz_plaintext(fdp);
    else
        fuzz_round_trip(fdp);
    return 0;
}
