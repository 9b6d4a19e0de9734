// fuzz_choice: the consent_choice endpoint's pure parts, CHOICE tokens, and
// the decision with choices and revisions. The last input byte picks the
// mode:
//
//   0  parse_choice_body, form: against a reference parser written here
//      (split on '&', a pair needs '=', '+' is a space, %XX decoded, values
//      exactly "1" or "0", each purpose once); a refused body changes
//      nothing; an accepted one names only declared purposes and grants only
//      what it names.
//   1  parse_choice_body, JSON: an accepted body, written back as canonical
//      JSON, parses to the same change; a refused one changes nothing; a
//      culprit of unknown_purpose is no declared name.
//   2  cross_site_post and body_type: Sec-Fetch-Site: cross-site is always
//      cross-site; an Origin of exactly "http://" + Host is never
//      cross-site otherwise; no Origin and no Sec-Fetch-Site never is.
//   3  open_choice_token over arbitrary text with a fixed key: only a token
//      that reseals to exactly its own text (same nonce) opens valid; its
//      answers resolve only to declared purposes.
//   4  seal_choice_token of fuzzer-built answers opens back to them, and
//      the token fits the contract's 512 characters.
//   5  decide() with a record and a choice cookie: against a reference of
//      the contract's precedence (record field, cookie answer, default; GPC
//      and erasure on top; older revisions count as none); and
//      merge_choices never brings back answers of an older revision.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/base64url.h"
#include "crypto/choice_token.h"
#include "crypto/keyring.h"
#include "policy/choice_endpoint.h"
#include "policy/purposes.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;
using fuzz::show;

namespace {

const std::string_view kNames[] = {"service", "analysis", "marketing", "campaigns", "research", "group_sharing",
                                   "third_party", "billing", "a", "b", "c", "d"};
constexpr size_t kCount = sizeof kNames / sizeof kNames[0];

int index_of(std::string_view n, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (kNames[i] == n) return static_cast<int>(i);
    return -1;
}

std::string ref_decode(std::string_view s) {
    std::string o;
    for (size_t i = 0; i < s.size(); i++) {
        const auto hex = [](char c) {
            return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                  : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        };
        if (s[i] == '+') {
            o += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            o += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else {
            o += s[i];
        }
    }
    return o;
}

void fuzz_form(FuzzedDataProvider& fdp) {
    const size_t count = fdp.ConsumeIntegralInRange<size_t>(0, kCount);
    const std::string text = fdp.ConsumeRemainingBytesAsString();
    std::unique_ptr<char[]> body(new char[text.size()]);
    std::memcpy(body.get(), text.data(), text.size());
    const std::string_view b(body.get(), text.size());
    BodyParse p;
    parse_choice_body(BodyType::form, b, kNames, count, &p);

    // the reference
    ChoiceChange want;
    BodyError err = BodyError::ok;
    size_t start = 0;
    while (start <= text.size() && err == BodyError::ok) {
        size_t amp = text.find('&', start);
        if (amp == std::string::npos) amp = text.size();
        const std::string pair = text.substr(start, amp - start);
        start = amp + 1;
        if (pair.empty()) continue;
        const size_t eq = pair.find('=');
        if (eq == std::string::npos) {
            err = BodyError::malformed;
            break;
        }
        const std::string name = ref_decode(pair.substr(0, eq)), value = ref_decode(pair.substr(eq + 1));
        const int i = index_of(name, count);
        if (i < 0) {
            err = BodyError::unknown_purpose;
            break;
        }
        if (value != "1" && value != "0") {
            err = BodyError::bad_value;
            break;
        }
        if (want.named & purpose_bit(static_cast<unsigned>(i))) {
            err = BodyError::malformed;
            break;
        }
        want.named |= purpose_bit(static_cast<unsigned>(i));
        if (value == "1") want.granted |= purpose_bit(static_cast<unsigned>(i));
    }
    FUZZ_CHECK(p.error == err, "form %s: error %d, reference %d", show(text).c_str(), static_cast<int>(p.error),
               static_cast<int>(err));
    if (err != BodyError::ok) {
        FUZZ_CHECK(p.change.named == 0 && p.change.granted == 0, "a refused body changed something");
        return;
    }
    FUZZ_CHECK(p.change.named == want.named && p.change.granted == want.granted, "form %s: change differs",
               show(text).c_str());
}

void fuzz_json(FuzzedDataProvider& fdp) {
    const size_t count = fdp.ConsumeIntegralInRange<size_t>(0, kCount);
    const std::string text = fdp.ConsumeRemainingBytesAsString();
    std::unique_ptr<char[]> body(new char[text.size()]);
    std::memcpy(body.get(), text.data(), text.size());
    BodyParse p;
    parse_choice_body(BodyType::json, std::string_view(body.get(), text.size()), kNames, count, &p);
    if (p.error != BodyError::ok) {
        FUZZ_CHECK(p.change.named == 0 && p.change.granted == 0, "a refused body changed something");
        if (p.error == BodyError::unknown_purpose)
            FUZZ_CHECK(index_of(p.culprit, count) < 0, "unknown purpose %s is declared", show(p.culprit).c_str());
        return;
    }
    FUZZ_CHECK((p.change.granted & ~p.change.named) == 0, "granted beyond named");
    FUZZ_CHECK(count == kCount || (p.change.named >> count) == 0, "an undeclared purpose named");
    std::string canon = "{";
    for (size_t i = 0; i < count; i++) {
        if (!(p.change.named & purpose_bit(static_cast<unsigned>(i)))) continue;
        if (canon.size() > 1) canon += ",";
        canon += "\"" + std::string(kNames[i]) + "\":";
        canon += (p.change.granted & purpose_bit(static_cast<unsigned>(i))) ? "true" : "false";
    }
    canon += "}";
    BodyParse again;
    parse_choice_body(BodyType::json, canon, kNames, count, &again);
    FUZZ_CHECK(again.error == BodyError::ok && again.change.named == p.change.named &&
                   again.change.granted == p.change.granted,
               "%s and its canonical form %s differ", show(text).c_str(), canon.c_str());
}

void fuzz_csrf(FuzzedDataProvider& fdp) {
    const std::string host = fdp.ConsumeRandomLengthString(64);
    const std::string origin = fdp.ConsumeRandomLengthString(80);
    const std::string site = fdp.ConsumeRandomLengthString(20);
    const bool has_origin = fdp.ConsumeBool(), has_site = fdp.ConsumeBool();
    const std::string_view o = origin, s = site;
    const bool cross = cross_site_post(has_origin ? &o : nullptr, has_site ? &s : nullptr, host);
    // Sec-Fetch-Site is read case-insensitively, without surrounding blanks:
    // exactly "cross-site" in any case surely is cross-site; nothing that
    // is not "cross-site" once every blank is gone can be
    std::string lowered, squeezed;
    for (const char c : site) {
        const char l = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
        lowered += l;
        if (c != ' ' && c != '\t') squeezed += l;
    }
    const bool surely_cross = has_site && lowered == "cross-site";
    const bool maybe_cross = has_site && squeezed == "cross-site";
    if (surely_cross) FUZZ_CHECK(cross, "Sec-Fetch-Site: cross-site accepted");
    if (!has_origin && !maybe_cross) FUZZ_CHECK(!cross, "no Origin refused");
    const bool clean_host = !host.empty() && host.find_first_of("/?#@ \t:[]") == std::string::npos;
    if (clean_host && !maybe_cross) {
        const std::string same = "http://" + host;
        const std::string_view sv = same;
        FUZZ_CHECK(!cross_site_post(&sv, has_site ? &s : nullptr, host), "Origin %s refused for Host %s",
                   show(same).c_str(), show(host).c_str());
    }
    (void) body_type(origin);
}

struct Ring {
    KeyRing ring;
    const Key* key = nullptr;
    Ring() {
        crypto_init();
        uint8_t bytes[kKeyBytes];
        for (size_t i = 0; i < kKeyBytes; i++) bytes[i] = static_cast<uint8_t>(0xa0 + i);
        std::string err;
        auto k = Key::create(1, Suite::xchacha20poly1305, bytes, &err);
        key = k.get();
        ring.add(std::move(k), true, &err);
    }
};

Ring& ring() {
    static Ring r;
    return r;
}

void fuzz_open(FuzzedDataProvider& fdp) {
    const std::string text = fdp.ConsumeRemainingBytesAsString();
    std::unique_ptr<char[]> buf(new char[text.size()]);
    std::memcpy(buf.get(), text.data(), text.size());
    const std::string_view t(buf.get(), text.size());
    TokenHeader h;
    ChoiceClaims c;
    const uint64_t now = 1'800'000'000;
    const TokenStatus st = open_choice_token(t, ring().ring, now, &h, &c);
    if (st != TokenStatus::valid && st != TokenStatus::expired) return;
    FUZZ_CHECK(h.kind == TokenKind::choice, "a token of kind %d opened as CHOICE", static_cast<int>(h.kind));
    // canonical: the same claims under the same nonce seal to exactly this text
    uint8_t blob[kMaxSealedBytes];
    const long n = base64url_decode(t, blob, sizeof blob);
    FUZZ_CHECK(n > static_cast<long>(kHeaderBytes + 24), "an opened token of %ld bytes", n);
    char again[kMaxChoiceTextOut];
    const size_t len = seal_choice_token(*ring().key, c, blob + kHeaderBytes, again, sizeof again);
    FUZZ_CHECK(std::string_view(again, len) == t, "%s reseals as %s", show(t).c_str(),
               show(std::string_view(again, len)).c_str());
    const Choices a = resolve_choices(c, kNames, kCount);
    FUZZ_CHECK((a.granted & ~a.answered) == 0, "granted beyond answered");
    FUZZ_CHECK((a.answered >> kCount) == 0, "an undeclared purpose answered");
}

void fuzz_seal(FuzzedDataProvider& fdp) {
    ChoiceClaims c;
    c.issued_at = fdp.ConsumeIntegral<uint64_t>();
    c.expires_at = fdp.ConsumeIntegral<uint64_t>();
    c.revision = fdp.ConsumeIntegral<uint32_t>();
    const size_t n = fdp.ConsumeIntegralInRange<size_t>(0, 34);
    for (size_t i = 0; i < n; i++) {
        const std::string name = fdp.ConsumeRandomLengthString(70);
        c.add(name, fdp.ConsumeBool());  // refused names are simply not added
    }
    char out[kMaxChoiceTextOut];
    const size_t len = seal_choice_token(*ring().key, c, nullptr, out, sizeof out);
    size_t names = 0;
    for (size_t i = 0; i < c.count; i++) names += c.name_len[i];
    const bool fits = choice_plaintext_len(c.count, names) <= kMaxSealedPlaintext;
    FUZZ_CHECK((len != 0) == fits, "sealed %zu chars, fits %d", len, fits);
    if (!len) return;
    FUZZ_CHECK(len <= kMaxTokenText, "a token of %zu chars", len);
    TokenHeader h;
    ChoiceClaims got;
    const uint64_t now = c.issued_at;
    const TokenStatus st = open_choice_token(std::string_view(out, len), ring().ring, now, &h, &got);
    FUZZ_CHECK(st == (c.expires_at <= now ? TokenStatus::expired : TokenStatus::valid), "sealed token %d",
               static_cast<int>(st));
    FUZZ_CHECK(got.revision == c.revision && got.count == c.count && got.issued_at == c.issued_at &&
                   got.expires_at == c.expires_at,
               "claims differ");
    for (size_t i = 0; i < c.count; i++)
        FUZZ_CHECK(got.name(i) == c.name(i) && got.granted[i] == c.granted[i], "answer %zu differs", i);
}

void fuzz_decide(FuzzedDataProvider& fdp) {
    DecisionInput in;
    in.declared = fdp.ConsumeIntegral<uint32_t>();
    in.defaults = fdp.ConsumeIntegral<uint32_t>();
    in.gpc = fdp.ConsumeIntegral<uint32_t>();
    in.sec_gpc = fdp.ConsumeBool();
    in.has_subject = fdp.ConsumeBool();
    in.outcome = static_cast<LookupOutcome>(fdp.ConsumeIntegralInRange<int>(0, 3));
    in.record_source = fdp.ConsumeBool() ? Source::cache : Source::redis;
    in.failure_uses_defaults = fdp.ConsumeBool();
    in.now = fdp.ConsumeIntegralInRange<uint64_t>(0, 100);
    in.policy_revision = fdp.ConsumeIntegralInRange<uint64_t>(0, 4);
    Record rec;
    rec.version = fdp.ConsumeIntegral<uint8_t>();
    rec.granted = fdp.ConsumeIntegral<uint32_t>();
    rec.denied = fdp.ConsumeIntegral<uint32_t>() & ~rec.granted;
    rec.has_exp = fdp.ConsumeBool();
    rec.exp = fdp.ConsumeIntegralInRange<uint64_t>(0, 100);
    rec.erased = fdp.ConsumeBool();
    rec.rev = fdp.ConsumeIntegralInRange<uint64_t>(0, 4);
    in.record = &rec;
    Choices cookie;
    cookie.answered = fdp.ConsumeIntegral<uint32_t>();
    cookie.granted = fdp.ConsumeIntegral<uint32_t>() & cookie.answered;
    cookie.revision = fdp.ConsumeIntegralInRange<uint64_t>(0, 4);
    if (fdp.ConsumeBool()) in.choices = &cookie;

    const Decision d = decide(in);

    // the reference
    const bool cookie_current = in.choices && cookie.revision >= in.policy_revision;
    const bool has_record = in.has_subject && in.outcome == LookupOutcome::record;
    const bool live = has_record && !(rec.has_exp && rec.exp <= in.now);
    PurposeMask want;
    if (in.has_subject && in.outcome == LookupOutcome::failure) {
        want = in.failure_uses_defaults ? in.defaults : 0;
    } else if (has_record && rec.erased) {
        want = 0;
    } else {
        want = in.defaults;
        if (cookie_current) want = (want & ~cookie.answered) | cookie.granted;
        if (live && rec.rev >= in.policy_revision) want = (want & ~(rec.granted | rec.denied)) | rec.granted;
    }
    if (in.sec_gpc) want &= ~in.gpc;
    want &= in.declared;
    FUZZ_CHECK(d.granted == want, "granted %08x, reference %08x", d.granted, want);
    FUZZ_CHECK(d.erased == (has_record && rec.erased), "erased");
    const bool record_in_force = has_record && (rec.erased || (live && rec.rev >= in.policy_revision));
    if (!(in.has_subject && in.outcome == LookupOutcome::failure))
        FUZZ_CHECK(d.reprompt == !(record_in_force || cookie_current), "reprompt %d", d.reprompt);
    if (d.has_revision) FUZZ_CHECK(d.revision >= in.policy_revision || d.erased, "a revision below the policy's");

    const ChoiceChange change{fdp.ConsumeIntegral<uint32_t>(), 0};
    const Choices m = merge_choices(in.choices, in.policy_revision, change);
    FUZZ_CHECK(m.revision == in.policy_revision, "merged at another revision");
    if (!cookie_current) FUZZ_CHECK(m.answered == change.named && m.granted == 0, "old answers came back");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    FuzzedDataProvider fdp(data, size - 1);
    switch (data[size - 1] % 6) {
    case 0: fuzz_form(fdp); break;
    case 1: fuzz_json(fdp); break;
    case 2: fuzz_csrf(fdp); break;
    case 3: fuzz_open(fdp); break;
    case 4: fuzz_seal(fdp); break;
    default: fuzz_decide(fdp); break;
    }
    return 0;
}
