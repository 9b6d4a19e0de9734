// consentctl keygen | pseudonym-keygen | mint | inspect
#include <sodium.h>

#include <cstdio>
#include <ctime>
#include <string>

#include "cli/command.h"
#include "cli/duration.h"
#include "crypto/base64url.h"
#include "crypto/choice_token.h"
#include "crypto/keyfile.h"
#include "crypto/keyring.h"
#include "crypto/token.h"

namespace consent::cli {

namespace {

void init_crypto() {
    if (!crypto_init()) throw Failure("libsodium failed to initialise");
}

std::string random_hex_key() {
    KeyBytes k;
    randombytes_buf(k.b, sizeof k.b);
    std::string hex(2 * kKeyBytes, '0');
    hex_encode(k.b, sizeof k.b, hex.data());
    return hex;
}

uint16_t parse_key_id(const std::string& s) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
        throw UsageError("key id '" + s + "' must be a number 1..65535");
    const unsigned long v = std::stoul(s);
    if (v < 1 || v > 65535) throw UsageError("key id '" + s + "' must be a number 1..65535");
    return static_cast<uint16_t>(v);
}

std::unique_ptr<Key> load_key(const std::string& path, uint16_t id) {
    Suite suite;
    KeyBytes bytes;
    std::string err;
    if (!load_key_file(path.c_str(), &suite, &bytes, &err)) throw Failure("key file " + path + ": " + err);
    auto key = Key::create(id, suite, bytes.b, &err);
    if (!key) throw Failure(err);
    return key;
}

void no_positional(const Args& a) {
    if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "'");
}

// Token fields are printable ASCII; only '"' and '\\' need escaping.
std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

int cmd_keygen(const Args& a) {
    no_positional(a);
    const std::string name = a.get("--suite", "xchacha20poly1305");
    if (!suite_from_name(name)) throw UsageError("unknown suite '" + name + "', expected xchacha20poly1305 or aes256gcm");
    init_crypto();
    std::printf("%s %s\n", name.c_str(), random_hex_key().c_str());
    return 0;
}

int cmd_pseudonym_keygen(const Args& a) {
    no_positional(a);
    init_crypto();
    std::printf("%s\n", random_hex_key().c_str());
    return 0;
}

// A CHOICE token: --choices NAME=1|0,... and --revision N instead of a subject.
int mint_choice(const Args& a, const std::string& file, uint16_t id, uint64_t ttl) {
    if (a.has("--subject") || a.has("--campaign"))
        throw UsageError("--kind choice takes --choices and --revision, not --subject or --campaign");
    ChoiceClaims claims;
    claims.revision = parse_revision(a.get("--revision", "0"));
    const std::string list = a.get("--choices");
    size_t start = 0;
    while (start < list.size()) {
        size_t end = list.find(',', start);
        if (end == std::string::npos) end = list.size();
        const std::string item = list.substr(start, end - start);
        const auto eq = item.find('=');
        const std::string name = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (value != "1" && value != "0")
            throw UsageError("--choices takes NAME=1|0,..., got '" + item + "'");
        if (!claims.add(name, value == "1"))
            throw UsageError("--choices: '" + name + "' is not a purpose name ([a-z0-9_], 1..64), or comes twice");
        start = end + 1;
    }
    init_crypto();
    const auto key = load_key(file, id);
    claims.issued_at = static_cast<uint64_t>(std::time(nullptr));
    claims.expires_at = claims.issued_at + ttl;
    char out[kMaxChoiceTextOut];
    const size_t n = seal_choice_token(*key, claims, nullptr, out, sizeof out);
    if (n == 0) throw UsageError("the choices do not fit a token (at most 32 purposes, " +
                                 std::to_string(kMaxSealedPlaintext) + " bytes of plaintext)");
    std::printf("%.*s\n", static_cast<int>(n), out);
    return 0;
}

int cmd_mint(const Args& a) {
    no_positional(a);
    const std::string file = a.need("--key");
    const uint16_t id = parse_key_id(a.need("--kid"));
    const std::string kind_name = a.get("--kind", "purl");
    TokenKind kind;
    if (kind_name == "purl")
        kind = TokenKind::purl;
    else if (kind_name == "uid")
        kind = TokenKind::uid;
    else if (kind_name == "choice")
        kind = TokenKind::choice;
    else
        throw UsageError("--kind must be purl, uid or choice");
    if (kind != TokenKind::choice && (a.has("--choices") || a.has("--revision")))
        throw UsageError("--choices and --revision are for --kind choice");
    if (kind == TokenKind::choice) {
        const auto ttl = parse_duration(a.get("--ttl", "180d"));
        if (!ttl || *ttl == 0)
            throw UsageError("--ttl '" + a.get("--ttl") + "' is not a duration such as 30s, 12h, 30d");
        return mint_choice(a, file, id, *ttl);
    }
    const std::string subject = a.need("--subject");
    const std::string campaign = a.get("--campaign");
    const auto ttl = parse_duration(a.get("--ttl", "30d"));
    if (!ttl || *ttl == 0) throw UsageError("--ttl '" + a.get("--ttl") + "' is not a duration such as 30s, 12h, 30d");

    TokenClaims claims;
    if (!claims.set(subject, campaign))
        throw UsageError("--subject must be 1..64 and --campaign 0..64 printable ASCII characters");
    init_crypto();
    const auto key = load_key(file, id);
    claims.issued_at = static_cast<uint64_t>(std::time(nullptr));
    claims.expires_at = claims.issued_at + *ttl;

    char out[kMaxTokenTextOut];
    const size_t n = seal_token(*key, kind, claims, nullptr, out, sizeof out);
    if (n == 0) throw Failure("sealing the token failed");
    std::printf("%.*s\n", static_cast<int>(n), out);
    return 0;
}

// The kind byte, read without a key: which plaintext to expect.
bool is_choice_token(const std::string& text) {
    uint8_t head[6];
    const std::string first = text.substr(0, 8);
    return base64url_decode(first, head, sizeof head) >= 2 && head[1] == static_cast<uint8_t>(TokenKind::choice);
}

std::string header_json(const TokenHeader& hdr) {
    std::string json;
    if (hdr.version) {
        json += ",\"version\":" + std::to_string(hdr.version);
        json += ",\"kind\":" + json_string(token_kind_name(hdr.kind));
        json += ",\"suite\":" + json_string(suite_name(hdr.suite));
        json += ",\"kid\":" + std::to_string(hdr.key_id);
    }
    return json;
}

int inspect_choice(const std::string& text, const KeyRing& ring, uint64_t now) {
    TokenHeader hdr;
    ChoiceClaims claims;
    const TokenStatus st = open_choice_token(text, ring, now, &hdr, &claims);
    std::string json = "{\"status\":" + json_string(token_status_name(st)) + header_json(hdr);
    if (st == TokenStatus::valid || st == TokenStatus::expired) {
        json += ",\"issued_at\":" + std::to_string(claims.issued_at);
        json += ",\"expires_at\":" + std::to_string(claims.expires_at);
        json += ",\"revision\":" + std::to_string(claims.revision);
        json += ",\"choices\":{";
        for (size_t i = 0; i < claims.count; i++) {
            if (i) json += ",";
            json += json_string(claims.name(i)) + ":" + (claims.granted[i] ? "true" : "false");
        }
        json += "}";
    }
    std::printf("%s}\n", json.c_str());
    return st == TokenStatus::valid ? 0 : 1;
}

int cmd_inspect(const Args& a) {
    if (a.positional.size() != 1) throw UsageError("expected exactly one TOKEN");
    if (!a.has("--key")) throw UsageError("--key ID=FILE is required");
    init_crypto();
    KeyRing ring;
    for (auto [it, end] = a.opts.equal_range("--key"); it != end; ++it) {
        const std::string& spec = it->second;
        const auto eq = spec.find('=');
        if (eq == std::string::npos) throw UsageError("--key takes ID=FILE, got '" + spec + "'");
        const uint16_t id = parse_key_id(spec.substr(0, eq));
        std::string err;
        if (!ring.add(load_key(spec.substr(eq + 1), id), false, &err)) throw UsageError(err);
    }

    TokenHeader hdr;
    const auto now = static_cast<uint64_t>(std::time(nullptr));
    if (is_choice_token(a.positional[0])) return inspect_choice(a.positional[0], ring, now);
    TokenClaims claims;
    const TokenStatus st = open_token(a.positional[0], ExpectKind::any, ring, now, &hdr, &claims);

    std::string json = "{\"status\":" + json_string(token_status_name(st)) + header_json(hdr);
    if (st == TokenStatus::valid || st == TokenStatus::expired) {
        json += ",\"issued_at\":" + std::to_string(claims.issued_at);
        json += ",\"expires_at\":" + std::to_string(claims.expires_at);
        json += ",\"subject\":" + json_string(claims.subject_view());
        json += ",\"campaign\":" + json_string(claims.campaign_view());
    }
    std::printf("%s}\n", json.c_str());
    return st == TokenStatus::valid ? 0 : 1;
}

}  // namespace

const std::vector<Command>& token_commands() {
    static const std::vector<Command> cmds = {
        {"keygen", "print a new token key file line",
         "usage: consentctl keygen [--suite xchacha20poly1305|aes256gcm]\n"
         "\n"
         "Prints a new random key as a key file line '<suite> <64 hex chars>'.\n"
         "Save it with mode 0600: nginx refuses key files readable by group or others.\n"
         "  --suite   AEAD suite bound to the key (default xchacha20poly1305)\n",
         cmd_keygen,
         {"--suite"},
         {}},
        {"pseudonym-keygen", "print a new pseudonym key file line",
         "usage: consentctl pseudonym-keygen\n"
         "\n"
         "Prints a new random pseudonym key (64 hex chars) for consent_pseudonym_key.\n",
         cmd_pseudonym_keygen,
         {},
         {}},
        {"mint", "print a new token for a subject",
         "usage: consentctl mint --key FILE --kid ID [--kind purl|uid] --subject S\n"
         "                       [--campaign C] [--ttl DURATION]\n"
         "       consentctl mint --key FILE --kid ID --kind choice [--choices NAME=1|0,...]\n"
         "                       [--revision N] [--ttl DURATION]\n"
         "\n"
         "Prints a token sealed with the key in FILE under key id ID.\n"
         "  --kind      purl: personalized-URL argument (default); uid: visitor-ID cookie;\n"
         "              choice: an anonymous visitor's choice cookie\n"
         "  --subject   customer id, 1..64 printable ASCII characters\n"
         "  --campaign  campaign name, 0..64 printable ASCII characters (default empty)\n"
         "  --choices   (choice) answers by purpose name, such as analysis=1,marketing=0\n"
         "  --revision  (choice) the policy revision they answer, 0..4294967295 (default 0)\n"
         "  --ttl       lifetime such as 12h, 30d, 1y (default 30d; choice: 180d)\n",
         cmd_mint,
         {"--key", "--kid", "--kind", "--subject", "--campaign", "--ttl", "--choices", "--revision"},
         {}},
        {"inspect", "open a token and print its fields as JSON",
         "usage: consentctl inspect --key ID=FILE [--key ID=FILE ...] TOKEN\n"
         "\n"
         "Opens TOKEN with the given keys and prints its status and fields as JSON.\n"
         "Exits 1 unless the status is \"valid\" (others: invalid, expired, unknown_key).\n",
         cmd_inspect,
         {"--key"},
         {}},
    };
    return cmds;
}

}  // namespace consent::cli
