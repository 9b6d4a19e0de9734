// The request path without nginx, shared by path_bench (Google Benchmark,
// wall time) and path_icount (instructions under callgrind): a realistic
// URL, a 1 KB Cookie header, conf/front-proxy.conf's purposes and strip
// rules, and the handler's whole cache-hit path in its order.
//
// The URL, the Cookie header, the strip rules and the record are the ones
// bench/macro.py sends through nginx in scenarios B4 and B5 (defined in
// bench/benchlib/scenarios.py): keep them in step.
#pragma once

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/pseudonym.h"
#include "crypto/token.h"
#include "crypto/token_memo.h"
#include "policy/cookie_rewrite.h"
#include "policy/purposes.h"
#include "policy/query_rewrite.h"
#include "policy/segments.h"
#include "policy/strip_rules.h"
#include "policy/uid_cookie.h"
#include "store/cache_rules.h"

namespace consent::bench {

// Keeps the compiler from dropping a computation (as benchmark::DoNotOptimize).
template <typename T>
inline void keep(T const& value) {
    asm volatile("" : : "r,m"(value) : "memory");
}

constexpr uint64_t kNow = 1800000000;
inline const uint8_t kKeyBytes32[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

// conf/front-proxy.conf's purposes, in declaration order.
enum : unsigned { kService, kBilling, kAnalysis, kMarketing, kCampaigns, kResearch, kGroupSharing, kThirdParties };
constexpr PurposeMask kDeclared = 0xff;
constexpr PurposeMask kDefaults = purpose_bit(kService) | purpose_bit(kBilling);
constexpr PurposeMask kGpc = 0xff & ~(kDefaults | purpose_bit(kResearch));

// 10 arguments; utm_source, utm_medium (campaigns) and gclid (marketing) go.
inline const char kQuery[] =
    "category=running&utm_source=newsletter&size=42&color=blue&utm_medium=email"
    "&sort=price_asc&page=2&gclid=EAIaIQobChMI8rP3k6Ct-gIVDOJ3Ch0XNwFkEAAYASAAEgJx3_D_BwE&ref=home&q=trail+shoes";

// 22 cookies, 1,019 bytes with a 107-character UID token spliced in at %VID%:
// Google Analytics, ads, Bing and Hotjar cookies beside the site's own.
inline const char kCookieTemplate[] =
    "_ga=GA1.1.1593746201.1732871234; _ga_7KX2R9ZPQ1=GS1.1.1732871234.12.1.1732874001.0.0.0; "
    "_gid=GA1.2.846213377.1732871234; _fbp=fb.1.1732871234567.1187254930; _gcl_au=1.1.1437788114.1732871234; "
    "lang=en-GB; currency=EUR; session=8f14e45fceea167a5a36dedd4bea2543b1e3c2f9a7d6e5c4b3a29180f7e6d5c4; "
    "cart=c7d2a1e0-5b9f-4e8a-9c3d-2f1e0d9c8b7a; consent_banner=dismissed; ab_checkout=variant_b; "
    "recently_viewed=SKU-48213%2CSKU-10294%2CSKU-77310%2CSKU-55021%2CSKU-90876%2CSKU-31337; "
    "__Host-vid=%VID%; _uetsid=3b5a8c10ae1111efb7c2f1a3d9e8c7b6; _uetvid=3b5a9f70ae1111ef9d4e6b2c1a0f9e8d; "
    "_hjSessionUser_2817364=eyJpZCI6IjVmN2E4YjljLTFkMmUtNGYzYS05YjhjIiwiY3JlYXRlZCI6MTczMjg3MTIzNDU2N30; "
    "theme=dark; tz=Europe%2FBerlin; csrftoken=Qm9uam91ciBsZSBtb25kZSwgY2VjaSBlc3QgdW4gamV0b24; "
    "last_search=trail%20running%20shoes%20size%2042; newsletter_seen=1; "
    "prefs=eyJncmlkIjp0cnVlLCJwYWdlU2l6ZSI6NDgsInNvcnQiOiJwcmljZV9hc2MiLCJjb21wYXJlIjpbXX0";

inline const char kTokenArg[] = "ctk";
inline const char kUidCookie[] = "__Host-vid";

// The record: analysis granted, marketing, campaigns and the rest denied.
// So 3 arguments go, and 5 cookies: _fbp, _gcl_au, _uetsid, _uetvid and the
// UID cookie (always).
constexpr PurposeMask kGranted = purpose_bit(kService) | purpose_bit(kBilling) | purpose_bit(kAnalysis);
constexpr size_t kArgsStripped = 3;
constexpr size_t kCookiesStripped = 5;

struct Env {
    KeyRing ring;
    PseudonymKey pseudonym{kKeyBytes32};
    StripRules args, cookies;
    std::string query = kQuery;
    std::string purl, uid;
    std::string cookie;      // the 1 KB header with the UID cookie
    std::string purl_query;  // ctk=PURL&... (B5)
    CacheSlot shared_slot;   // what the shared zone holds for the subject
    CacheClock clock;

    Env() {
        crypto_init();
        std::string err;
        ring.add(Key::create(1, Suite::xchacha20poly1305, kKeyBytes32, &err), true, &err);
        for (const char* p : {"utm_*", "mc_cid", "mc_eid"}) args.add(kCampaigns, p, &err);
        for (const char* p : {"gclid", "dclid", "fbclid", "msclkid", "ttclid"}) args.add(kMarketing, p, &err);
        for (const char* p : {"_ga", "_gl"}) args.add(kAnalysis, p, &err);
        for (const char* p : {"_ga", "_ga_*", "_gid", "_gat*"}) cookies.add(kAnalysis, p, &err);
        for (const char* p : {"_fbp", "_fbc", "_gcl_*", "IDE"}) cookies.add(kMarketing, p, &err);
        for (const char* p : {"_pin_unauth", "_uetsid", "_uetvid"}) cookies.add(kThirdParties, p, &err);

        TokenClaims c;
        c.issued_at = kNow - 60;
        c.expires_at = kNow + 86400 * 30;
        char out[kMaxTokenTextOut];
        c.set("customer-00012345", "newsletter-2026-11");
        purl.assign(out, seal_token(*ring.find(1), TokenKind::purl, c, nullptr, out, sizeof out));
        c.set("customer-00012345", "");
        uid.assign(out, seal_token(*ring.find(1), TokenKind::uid, c, nullptr, out, sizeof out));

        cookie = kCookieTemplate;
        cookie.replace(cookie.find("%VID%"), 5, uid);
        purl_query = std::string("ctk=") + purl + "&" + query;

        Record rec;
        rec.version = 7;
        rec.granted = kGranted;
        rec.denied = kDeclared & ~kGranted;
        slot_store(&shared_slot, &rec, 1000);
        clock.now_ms = 5000;
        clock.ttl_ms = 60000;
        clock.subscribed = true;
        clock.valid_since_ms = 500;
    }
};

inline Env& env() {
    static Env e;
    return e;
}

// Output buffers and segment tables come from nginx's request pool in the
// module (a pointer bump); here they are allocated once, outside the loop,
// and the bump arena is reset for each request.
struct Buffers {
    std::vector<char> line, args, list, cookie, pool;
    size_t used = 0;
    Buffers(const Env& e, const std::string& query)
        : line(query.size()),
          args(query.size()),
          list(query.size() + e.cookie.size() + 2),
          cookie(cookie_rewrite_max_len(e.cookie.size()) + 1),
          pool(64 * 1024) {}

    static void* bump(void* self, size_t n) noexcept {
        auto* b = static_cast<Buffers*>(self);
        const size_t at = (b->used + 15) & ~size_t(15);
        if (at + n > b->pool.size()) return nullptr;
        b->used = at + n;
        return b->pool.data() + at;
    }
    SegmentArena arena() { return {&Buffers::bump, this}; }
};

// The split and the rewrite of the query and of the Cookie header as the
// module makes them, with the $consent_stripped list a request that reads
// it adds (bench's arg-rewrite and cookie-rewrite).
inline QueryRewrite arg_rewrite(const Env& e, std::string_view query, Buffers& b, PurposeMask granted,
                                NameList* names) {
    b.used = 0;
    Segments t;
    if (!scan_query(query, &e.args, kTokenArg, &t, b.arena())) return {};
    const Removal removal = Removal::after_decision(granted);
    const QueryRewrite r = emit_query(query, t, removal, b.args.data());
    if (names) list_removed_args(query, t, removal, names);
    return r;
}

inline CookieRewrite cookie_rewrite(const Env& e, Buffers& b, PurposeMask granted, NameList* names) {
    b.used = 0;
    Segments t;
    if (!scan_cookie_header(e.cookie, &e.cookies, kUidCookie, &t, b.arena())) return {};
    const Removal removal = Removal::after_decision(granted);
    const CookieRewrite r = emit_cookie_header(e.cookie, t, removal, b.cookie.data());
    if (names) list_removed_cookies(e.cookie, t, removal, names);
    return r;
}

// ngx_http_consent_open: a token through the worker's memo, if any.
inline TokenStatus open_through(TokenMemo* memo, std::string_view text, ExpectKind kind, const KeyRing& ring,
                                TokenClaims* claims, TokenMemo::Ref* ref, char* pseudonym, bool* has_pseudonym) {
    if (memo) return memo->open(text, kind, ring, kNow, claims, ref, pseudonym, has_pseudonym);
    TokenHeader hdr;
    return open_token(text, kind, ring, kNow, &hdr, claims);
}

// One request as ngx_http_consent_handle runs it on a cache hit, in its
// order. A `query` with the token argument is the B5 case: the token is
// hidden from the request line at once, then opened. `pseudonym` adds the
// $consent_subject a proxy_set_header asks for. With a `memo`, tokens go
// through it as the module's do (a returning visitor: after the first
// call, every open and pseudonym is a memo hit). Returns the names removed.
inline size_t hit_path(const Env& e, const std::string& query, Buffers& b, bool pseudonym,
                       TokenMemo* memo = nullptr) {
    TokenClaims claims, uid_claims;
    TokenMemo::Ref ref, uid_ref;
    char pseudo[kPseudonymHex], uid_pseudo[kPseudonymHex];
    bool has_pseudo = false, uid_has_pseudo = false;
    bool from_purl = false, carried_uid = false, same = false;
    std::string_view raw, value;

    // extract: split the query and the Cookie header once; the token
    // argument is hidden from the request line at once
    b.used = 0;
    Segments args, pairs;
    if (!scan_query(query, &e.args, kTokenArg, &args, b.arena())) return 0;
    if (!scan_cookie_header(e.cookie, &e.cookies, kUidCookie, &pairs, b.arena())) return 0;
    if (token_value(query, args, &raw)) {
        keep(emit_query(query, args, Removal{}, b.line.data()));
        char decoded[3 * kMaxTokenText];
        long n = static_cast<long>(raw.size());
        if (raw.find('%') != std::string_view::npos) {
            n = percent_decode(raw, decoded, sizeof decoded);
            raw = std::string_view(decoded, n < 0 ? 0 : static_cast<size_t>(n));
        }
        from_purl = n >= 0 && open_through(memo, raw, ExpectKind::purl, e.ring, &claims, &ref, pseudo,
                                           &has_pseudo) == TokenStatus::valid;
    }
    // extract: the UID cookie
    TokenStatus uid_status = TokenStatus::none;
    if (uid_value(e.cookie, pairs, &value)) {
        carried_uid = true;
        uid_status = open_through(memo, value, ExpectKind::uid, e.ring, &uid_claims, &uid_ref, uid_pseudo,
                                  &uid_has_pseudo);
    }
    if (uid_status == TokenStatus::valid) {
        if (from_purl) {
            same = claims.subject_view() == uid_claims.subject_view();
        } else {
            claims = uid_claims;
            ref = uid_ref;
            has_pseudo = uid_has_pseudo;
            std::memcpy(pseudo, uid_pseudo, sizeof pseudo);
        }
    }
    if (claims.subject_len == 0) return 0;

    // look up: the cache hit (the zone's lock: see BM_CacheSlotCheckLocked)
    CacheSlot slot = e.shared_slot;
    keep(slot);
    if (slot_state(slot, e.clock) != SlotState::fresh) return 0;

    // decide
    DecisionInput in;
    in.declared = kDeclared;
    in.defaults = kDefaults;
    in.gpc = kGpc;
    in.has_subject = true;
    in.outcome = slot.exists ? LookupOutcome::record : LookupOutcome::no_record;
    in.record_source = Source::cache;
    in.record = &slot.record;
    in.now = kNow;
    const Decision d = decide(in);
    UidFacts facts;
    facts.subject_from_purl = from_purl;
    facts.purpose_granted = (d.granted & purpose_bit(kAnalysis)) != 0;
    facts.carried_cookie = carried_uid;
    facts.carried_valid_same = same;
    keep(uid_action(facts));

    // rewrite, from the splits ($consent_stripped is listed only when read)
    const Removal removal = Removal::after_decision(d.granted);
    const QueryRewrite qr = emit_query(query, args, removal, b.args.data());
    const CookieRewrite cr = emit_cookie_header(e.cookie, pairs, removal, b.cookie.data());

    // tag: $consent_subject
    if (pseudonym) {
        if (!has_pseudo) {
            e.pseudonym.pseudonym(claims.subject_view(), pseudo);
            if (memo) memo->attach_pseudonym(ref, claims.subject_view(), pseudo);
        }
        keep(pseudo);
    }
    return qr.removed + cr.removed;
}

}  // namespace consent::bench
