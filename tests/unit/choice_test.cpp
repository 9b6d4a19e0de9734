// Consent choices: CHOICE tokens, the endpoint's pure parts, and the
// decision's precedence and revision rules.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "crypto/choice_token.h"
#include "crypto/token.h"
#include "crypto/token_memo.h"
#include "policy/choice_endpoint.h"
#include "policy/purposes.h"
#include "store/record.h"

using namespace consent;

namespace {

const std::string_view kNames[] = {"service", "analysis", "marketing", "research"};
constexpr PurposeMask kService = purpose_bit(0), kAnalysis = purpose_bit(1), kMarketing = purpose_bit(2),
                      kResearch = purpose_bit(3);

struct Ring {
    KeyRing ring;
    const Key* key;
    Ring() {
        crypto_init();
        uint8_t bytes[kKeyBytes];
        for (size_t i = 0; i < kKeyBytes; i++) bytes[i] = static_cast<uint8_t>(i * 7 + 1);
        std::string err;
        auto k = Key::create(5, Suite::xchacha20poly1305, bytes, &err);
        key = k.get();
        ring.add(std::move(k), true, &err);
    }
};

std::string seal(const Key& key, const ChoiceClaims& c) {
    char out[kMaxChoiceTextOut];
    const size_t n = seal_choice_token(key, c, nullptr, out, sizeof out);
    return std::string(out, n);
}

ChoiceClaims claims(uint32_t revision, uint64_t now = 1'800'000'000) {
    ChoiceClaims c;
    c.issued_at = now;
    c.expires_at = now + 3600;
    c.revision = revision;
    return c;
}

BodyParse parse(BodyType t, std::string_view body) {
    BodyParse p;
    parse_choice_body(t, body, kNames, 4, &p);
    return p;
}

}  // namespace

// ---- CHOICE tokens ----------------------------------------------------------

TEST(ChoiceToken, SealOpenAndResolveByName) {
    Ring r;
    ChoiceClaims c = claims(3);
    ASSERT_TRUE(c.add("marketing", false));
    ASSERT_TRUE(c.add("analysis", true));
    ASSERT_TRUE(c.add("retired", true));  // no longer declared: ignored
    const std::string t = seal(*r.key, c);
    ASSERT_FALSE(t.empty());
    TokenHeader h;
    ChoiceClaims got;
    ASSERT_EQ(open_choice_token(t, r.ring, c.issued_at, &h, &got), TokenStatus::valid);
    EXPECT_EQ(h.kind, TokenKind::choice);
    EXPECT_EQ(h.key_id, 5);
    EXPECT_EQ(got.revision, 3u);
    const Choices a = resolve_choices(got, kNames, 4);
    EXPECT_EQ(a.answered, kAnalysis | kMarketing);
    EXPECT_EQ(a.granted, kAnalysis);
    EXPECT_EQ(a.revision, 3u);
    // another edge, its purposes in another order: the same answers
    const std::string_view reordered[] = {"marketing", "analysis"};
    const Choices b = resolve_choices(got, reordered, 2);
    EXPECT_EQ(b.answered, purpose_bit(0) | purpose_bit(1));
    EXPECT_EQ(b.granted, purpose_bit(1));
}

TEST(ChoiceToken, TimeRulesAndKinds) {
    Ring r;
    const ChoiceClaims c = claims(0);
    const std::string t = seal(*r.key, c);
    TokenHeader h;
    ChoiceClaims got;
    EXPECT_EQ(open_choice_token(t, r.ring, c.expires_at, &h, &got), TokenStatus::expired);
    EXPECT_EQ(open_choice_token(t, r.ring, c.issued_at - kMaxClockSkew - 1, &h, &got), TokenStatus::invalid);
    EXPECT_EQ(open_choice_token(t, r.ring, c.issued_at - kMaxClockSkew, &h, &got), TokenStatus::valid);
    // a CHOICE token is no UID or PURL token, and the reverse
    TokenClaims tc;
    EXPECT_EQ(open_token(t, ExpectKind::uid, r.ring, c.issued_at, &h, &tc), TokenStatus::invalid);
    ASSERT_TRUE(tc.set("cust-1", ""));
    tc.issued_at = c.issued_at;
    tc.expires_at = c.expires_at;
    char out[kMaxTokenTextOut];
    const size_t n = seal_token(*r.key, TokenKind::uid, tc, nullptr, out, sizeof out);
    EXPECT_EQ(open_choice_token(std::string_view(out, n), r.ring, c.issued_at, &h, &got), TokenStatus::invalid);
    EXPECT_EQ(seal_token(*r.key, TokenKind::choice, tc, nullptr, out, sizeof out), 0u);
    // another key ring: unknown_key; garbage: invalid
    KeyRing empty;
    EXPECT_EQ(open_choice_token(t, empty, c.issued_at, &h, &got), TokenStatus::unknown_key);
    EXPECT_EQ(open_choice_token("", r.ring, c.issued_at, &h, &got), TokenStatus::invalid);
    EXPECT_EQ(open_choice_token(std::string(513, 'A'), r.ring, c.issued_at, &h, &got), TokenStatus::invalid);
}

TEST(ChoiceToken, AddRefusesWhatTheLayoutForbids) {
    ChoiceClaims c;
    EXPECT_FALSE(c.add("", true));
    EXPECT_FALSE(c.add("Analysis", true));
    EXPECT_FALSE(c.add("a-b", true));
    EXPECT_FALSE(c.add(std::string(65, 'a'), true));
    EXPECT_TRUE(c.add(std::string(64, 'a'), true));
    EXPECT_FALSE(c.add(std::string(64, 'a'), false));  // twice
    for (int i = 1; i < 32; i++) EXPECT_TRUE(c.add("p" + std::to_string(i), true)) << i;
    EXPECT_FALSE(c.add("one_too_many", true));
}

TEST(ChoiceToken, LargestFitsTheContractsLimit) {
    Ring r;
    // 32 purposes whose names fill the plaintext exactly
    ChoiceClaims c = claims(4294967295u);
    size_t budget = kMaxSealedPlaintext - choice_plaintext_len(32, 0);
    for (int i = 0; i < 32; i++) {
        const size_t len = budget / static_cast<size_t>(32 - i);
        std::string name(len, 'a');
        name.replace(0, 2, std::to_string(10 + i));
        ASSERT_TRUE(c.add(name, i % 2 == 0));
        budget -= len;
    }
    const std::string t = seal(*r.key, c);
    ASSERT_FALSE(t.empty());
    EXPECT_LE(t.size(), kMaxTokenText);
    TokenHeader h;
    ChoiceClaims got;
    EXPECT_EQ(open_choice_token(t, r.ring, c.issued_at, &h, &got), TokenStatus::valid);
    EXPECT_EQ(got.revision, 4294967295u);
    EXPECT_EQ(got.count, 32);
    // one byte more does not seal
    ChoiceClaims over = claims(0);
    budget = kMaxSealedPlaintext - choice_plaintext_len(32, 0) + 1;
    for (int i = 0; i < 32; i++) {
        const size_t len = budget / static_cast<size_t>(32 - i);
        std::string name(len, 'b');
        name.replace(0, 2, std::to_string(10 + i));
        ASSERT_TRUE(over.add(name, true));
        budget -= len;
    }
    EXPECT_EQ(seal(*r.key, over), "");
}

TEST(ChoiceToken, MemoAnswersWhatOpeningDoes) {
    Ring r;
    TokenMemo memo(64);
    ChoiceClaims c = claims(2, 1'800'000'000);
    c.add("research", true);
    c.add("service", false);
    const std::string t = seal(*r.key, c);
    Choices first, second;
    ASSERT_EQ(memo.open_choice(t, r.ring, c.issued_at, kNames, 4, &first), TokenStatus::valid);
    ASSERT_EQ(memo.open_choice(t, r.ring, c.issued_at, kNames, 4, &second), TokenStatus::valid);
    EXPECT_EQ(first.answered, kResearch | kService);
    EXPECT_EQ(first.granted, kResearch);
    EXPECT_EQ(second.answered, first.answered);
    EXPECT_EQ(second.granted, first.granted);
    EXPECT_EQ(second.revision, 2u);
    // the memo keeps the time rules
    EXPECT_EQ(memo.open_choice(t, r.ring, c.expires_at, kNames, 4, &second), TokenStatus::expired);
    // and a CHOICE entry never answers for a UID lookup of the same text
    TokenClaims tc;
    TokenMemo::Ref ref;
    char pseudonym[kPseudonymHex];
    bool has;
    EXPECT_NE(memo.open(t, ExpectKind::uid, r.ring, c.issued_at, &tc, &ref, pseudonym, &has), TokenStatus::valid);
}

// ---- bodies -------------------------------------------------------------------

TEST(ChoiceBody, ContentTypes) {
    EXPECT_EQ(body_type("application/x-www-form-urlencoded"), BodyType::form);
    EXPECT_EQ(body_type("Application/JSON ; charset=utf-8"), BodyType::json);
    EXPECT_EQ(body_type("application/json;charset=\"utf-8\""), BodyType::json);
    EXPECT_EQ(body_type("application/json; charset="), BodyType::unsupported);
    EXPECT_EQ(body_type("application/json; boundary=x"), BodyType::unsupported);
    EXPECT_EQ(body_type("application/json; charset=utf-8; x=y"), BodyType::unsupported);
    EXPECT_EQ(body_type("text/plain"), BodyType::unsupported);
    EXPECT_EQ(body_type(""), BodyType::unsupported);
    EXPECT_EQ(body_type("application/jsonp"), BodyType::unsupported);
}

TEST(ChoiceBody, Form) {
    BodyParse p = parse(BodyType::form, "analysis=1&marketing=0");
    EXPECT_EQ(p.error, BodyError::ok);
    EXPECT_EQ(p.change.named, kAnalysis | kMarketing);
    EXPECT_EQ(p.change.granted, kAnalysis);
    p = parse(BodyType::form, "");
    EXPECT_EQ(p.error, BodyError::ok);
    EXPECT_EQ(p.change.named, 0u);
    p = parse(BodyType::form, "&&ana%6Cysis=%31&");
    EXPECT_EQ(p.error, BodyError::ok);
    EXPECT_EQ(p.change.granted, kAnalysis);
    p = parse(BodyType::form, "analysis=1&ad%20s=1");
    EXPECT_EQ(p.error, BodyError::unknown_purpose);
    EXPECT_EQ(p.culprit, "ad s");
    EXPECT_EQ(p.change.named, 0u);  // nothing from a refused body
    p = parse(BodyType::form, "analysis=true");
    EXPECT_EQ(p.error, BodyError::bad_value);
    EXPECT_EQ(p.culprit, "analysis");
    EXPECT_EQ(parse(BodyType::form, "analysis").error, BodyError::malformed);
    EXPECT_EQ(parse(BodyType::form, "analysis=1&analysis=1").error, BodyError::malformed);
    EXPECT_EQ(parse(BodyType::form, "Analysis=1").error, BodyError::unknown_purpose);
    EXPECT_EQ(parse(BodyType::form, "analysis=+1").error, BodyError::bad_value);
}

TEST(ChoiceBody, Json) {
    BodyParse p = parse(BodyType::json, " {\n\"analysis\" : true , \"research\":false}\r\n");
    EXPECT_EQ(p.error, BodyError::ok);
    EXPECT_EQ(p.change.named, kAnalysis | kResearch);
    EXPECT_EQ(p.change.granted, kAnalysis);
    EXPECT_EQ(parse(BodyType::json, "{}").error, BodyError::ok);
    p = parse(BodyType::json, "{\"ana\\u006cysis\":true}");
    EXPECT_EQ(p.error, BodyError::ok);
    EXPECT_EQ(p.change.granted, kAnalysis);
    p = parse(BodyType::json, "{\"x\\\"y\":true}");
    EXPECT_EQ(p.error, BodyError::unknown_purpose);
    EXPECT_EQ(p.culprit, "x\"y");
    for (const char* v : {"1", "\"true\"", "null", "0", "-1e5", "truex"}) {
        p = parse(BodyType::json, std::string("{\"analysis\":") + v + "}");
        EXPECT_EQ(p.error, v == std::string("truex") ? BodyError::malformed : BodyError::bad_value) << v;
    }
    for (const char* b : {"", "[]", "{", "{\"analysis\":true", "{\"analysis\":true,}", "{\"analysis\":{}}",
                          "{\"analysis\":[true]}", "{\"analysis\":true}x", "{analysis:true}",
                          "{\"analysis\":true,\"analysis\":false}", "{\"a\nb\":true}", "\"analysis\""})
        EXPECT_EQ(parse(BodyType::json, b).error, BodyError::malformed) << b;
}

// ---- the CSRF rule --------------------------------------------------------------

TEST(ChoiceCsrf, OriginAgainstHost) {
    const auto cross = [](const char* origin, const char* site, const char* host) {
        std::string_view o = origin ? origin : "", s = site ? site : "";
        return cross_site_post(origin ? &o : nullptr, site ? &s : nullptr, host);
    };
    EXPECT_FALSE(cross(nullptr, nullptr, "shop.example"));
    EXPECT_FALSE(cross("https://shop.example", nullptr, "shop.example"));
    EXPECT_FALSE(cross("http://shop.example", nullptr, "shop.example"));  // scheme not compared
    EXPECT_FALSE(cross("https://SHOP.example", nullptr, "shop.example"));
    EXPECT_FALSE(cross("https://shop.example:443", nullptr, "shop.example"));
    EXPECT_FALSE(cross("https://shop.example", nullptr, "shop.example:443"));
    EXPECT_FALSE(cross("http://[::1]:8080", nullptr, "[::1]:8080"));
    EXPECT_FALSE(cross(nullptr, "same-site", "shop.example"));
    EXPECT_FALSE(cross(nullptr, "none", "shop.example"));
    EXPECT_TRUE(cross("https://evil.example", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://shop.example:8443", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://shop.example", nullptr, "shop.example:8443"));
    EXPECT_TRUE(cross("null", nullptr, "shop.example"));
    EXPECT_TRUE(cross("", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://shop.example/path", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://user@shop.example", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://shop.example.evil", nullptr, "shop.example"));
    EXPECT_TRUE(cross("https://shop.example", "cross-site", "shop.example"));
    EXPECT_TRUE(cross(nullptr, "Cross-Site", "shop.example"));
    EXPECT_TRUE(cross("https://shop.example", nullptr, ""));
}

// ---- the anonymous merge, and the documents ---------------------------------------

TEST(ChoiceMerge, OlderRevisionsNeverComeBack) {
    const Choices carried{kAnalysis | kMarketing, kAnalysis, 2};
    const ChoiceChange change{kMarketing | kResearch, kMarketing};
    Choices m = merge_choices(&carried, 2, change);
    EXPECT_EQ(m.answered, kAnalysis | kMarketing | kResearch);
    EXPECT_EQ(m.granted, kAnalysis | kMarketing);
    EXPECT_EQ(m.revision, 2u);
    m = merge_choices(&carried, 3, change);  // the policy moved on
    EXPECT_EQ(m.answered, kMarketing | kResearch);
    EXPECT_EQ(m.granted, kMarketing);
    EXPECT_EQ(m.revision, 3u);
    m = merge_choices(nullptr, 0, ChoiceChange{});
    EXPECT_EQ(m.answered, 0u);
}

TEST(ChoiceDocument, ShapeAndEscaping) {
    ChoiceDocument d;
    d.names = kNames;
    d.count = 4;
    d.granted = kService | kResearch;
    d.source = source_name(Source::cookie);
    d.has_revision = true;
    d.revision = 4294967295u;
    d.reprompt = false;
    std::string out(choice_document_max(kNames, 4), '\0');
    out.resize(write_choice_document(d, out.data()));
    EXPECT_EQ(out, "{\"purposes\":{\"service\":true,\"analysis\":false,\"marketing\":false,\"research\":true},"
                   "\"source\":\"cookie\",\"revision\":4294967295,\"reprompt\":false,\"identified\":false}");
    d.has_revision = false;
    d.count = 0;
    out.assign(choice_document_max(kNames, 0), '\0');
    out.resize(write_choice_document(d, out.data()));
    EXPECT_EQ(out, "{\"purposes\":{},\"source\":\"cookie\",\"revision\":null,\"reprompt\":false,\"identified\":false}");
    const std::string_view name("a\"b\\c\n\xff", 7);
    std::string err(error_document_max("unknown purpose", name), '\0');
    err.resize(write_error_document("unknown purpose", name, err.data()));
    EXPECT_EQ(err, "{\"error\":\"unknown purpose: a\\\"b\\\\c\\u000a\\u00ff\"}");
}

// ---- the decision ---------------------------------------------------------------

namespace {

DecisionInput base(uint64_t revision) {
    DecisionInput in;
    in.declared = kService | kAnalysis | kMarketing | kResearch;
    in.defaults = kService;
    in.gpc = kMarketing;
    in.now = 1'800'000'000;
    in.policy_revision = revision;
    return in;
}

}  // namespace

TEST(DecideChoices, CookieWithoutSubject) {
    const Choices cookie{kAnalysis | kService, kAnalysis, 2};
    DecisionInput in = base(2);
    in.choices = &cookie;
    Decision d = decide(in);
    EXPECT_EQ(d.granted, kAnalysis);  // service answered no, over its default
    EXPECT_EQ(d.source, Source::cookie);
    EXPECT_FALSE(d.reprompt);
    EXPECT_TRUE(d.has_revision);
    EXPECT_EQ(d.revision, 2u);
    EXPECT_FALSE(d.has_version);
    in.policy_revision = 3;  // an older cookie is no consent
    d = decide(in);
    EXPECT_EQ(d.granted, kService);
    EXPECT_EQ(d.source, Source::none);
    EXPECT_TRUE(d.reprompt);
    EXPECT_FALSE(d.has_revision);
    in.choices = nullptr;
    EXPECT_TRUE(decide(in).reprompt);
}

TEST(DecideChoices, RecordFieldOverCookieOverDefault) {
    const Choices cookie{kAnalysis | kMarketing, kAnalysis | kMarketing, 1};
    Record rec;
    rec.version = 9;
    rec.rev = 1;
    rec.denied = kAnalysis;  // analysis: the record; marketing: the cookie; service: default
    DecisionInput in = base(1);
    in.has_subject = true;
    in.outcome = LookupOutcome::record;
    in.record = &rec;
    in.record_source = Source::cache;
    in.choices = &cookie;
    Decision d = decide(in);
    EXPECT_EQ(d.granted, kService | kMarketing);
    EXPECT_EQ(d.source, Source::cache);
    EXPECT_EQ(d.version, 9u);
    EXPECT_EQ(d.revision, 1u);
    EXPECT_FALSE(d.reprompt);
    in.sec_gpc = true;  // GPC on top
    EXPECT_EQ(decide(in).granted, kService);
    in.sec_gpc = false;
    // the record of an older revision: its fields count for nothing, the
    // cookie (current) answers, and its version is still reported
    in.policy_revision = 1;
    rec.rev = 0;
    d = decide(in);
    EXPECT_EQ(d.granted, kService | kAnalysis | kMarketing);
    EXPECT_EQ(d.source, Source::cookie);
    EXPECT_TRUE(d.has_version);
    EXPECT_EQ(d.version, 9u);
    EXPECT_EQ(d.revision, 1u);
    // neither current
    in.choices = nullptr;
    d = decide(in);
    EXPECT_EQ(d.granted, kService);
    EXPECT_EQ(d.source, Source::defaults);
    EXPECT_TRUE(d.reprompt);
    EXPECT_FALSE(d.has_revision);
}

TEST(DecideChoices, ErasureAndExpiryApplyWhateverTheRevision) {
    const Choices cookie{kAnalysis, kAnalysis, 5};
    Record rec;
    rec.version = 3;
    rec.erased = true;
    rec.granted = kResearch;
    DecisionInput in = base(5);
    in.has_subject = true;
    in.outcome = LookupOutcome::record;
    in.record = &rec;
    in.choices = &cookie;
    Decision d = decide(in);
    EXPECT_TRUE(d.erased);
    EXPECT_EQ(d.granted, 0u);
    EXPECT_FALSE(d.reprompt);  // an erased customer is not asked again
    rec.erased = false;
    rec.rev = 5;
    rec.has_exp = true;
    rec.exp = in.now;  // dead: the cookie answers
    d = decide(in);
    EXPECT_EQ(d.granted, kService | kAnalysis);
    EXPECT_EQ(d.source, Source::cookie);
    EXPECT_FALSE(d.has_version);
}

TEST(DecideChoices, FailureIgnoresTheCookie) {
    const Choices cookie{kAnalysis, kAnalysis, 0};
    DecisionInput in = base(0);
    in.has_subject = true;
    in.outcome = LookupOutcome::failure;
    in.choices = &cookie;
    const Decision d = decide(in);
    EXPECT_EQ(d.granted, 0u);
    EXPECT_EQ(d.source, Source::failure);
    EXPECT_FALSE(d.reprompt);
}

TEST(RecordRev, ParsedAndMalformed) {
    const std::string_view names[] = {"analysis"};
    const PurposeNames purposes{names, 1};
    Record r;
    const std::string_view with[] = {"v", "4", "rev", "12", "analysis", "1"};
    ASSERT_EQ(parse_record(with, 6, purposes, &r), RecordParse::ok);
    EXPECT_EQ(r.rev, 12u);
    const std::string_view without[] = {"v", "4"};
    ASSERT_EQ(parse_record(without, 2, purposes, &r), RecordParse::ok);
    EXPECT_EQ(r.rev, 0u);
    const std::string_view bad[] = {"v", "4", "rev", "-1"};
    EXPECT_EQ(parse_record(bad, 4, purposes, &r), RecordParse::malformed);
}
