// consentctl set | get | erase | watch: consent records in Redis.
//
// One blocking connection per command (cli/redis_connection.h), with the
// options of cli/redis_options.h: to the server --redis names, or to the
// primary the Sentinels name (cli/redis_primary.h). Every write goes through the published
// Lua script (store/write_script.h), so consentctl changes records exactly
// as any other writer does.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/redis_connection.h"
#include "cli/redis_options.h"
#include "crypto/token.h"
#include "store/record.h"
#include "store/write_script.h"

namespace consent::cli {

namespace {

constexpr const char* kDefaultPrefix = "consent:";
constexpr const char* kDefaultChannel = "consent:updates";

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Decimal digits that fit in 64 bits.
bool fits_u64(std::string_view s) {
    if (!all_digits(s)) return false;
    uint64_t v = 0;
    for (const char c : s) {
        const auto d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    return true;
}

// After a write through Sentinel, how long a replica has to acknowledge it
// (WAIT 1 kWaitMs), and the whole command's reply bound is 5 s.
constexpr int kWaitMs = 2000;

// ---- arguments ------------------------------------------------------------------

std::string subject_arg(const std::string& s) {
    bool ok = !s.empty() && s.size() <= kMaxSubject;
    for (const char c : s) ok = ok && c >= 0x20 && c <= 0x7e;
    if (!ok) throw UsageError("SUBJECT must be 1..64 printable ASCII characters");
    return s;
}

std::string record_key_of(const Args& a, const std::string& subject) {
    const std::string prefix = a.get("--prefix", kDefaultPrefix);
    std::string key(prefix.size() + subject.size() + 2, '\0');
    key.resize(record_key(prefix, subject, key.data()));
    return key;
}

std::string channel_of(const Args& a) {
    const std::string channel = a.get("--channel", kDefaultChannel);
    if (channel.empty()) throw UsageError("--channel must not be empty");
    return channel;
}

bool purpose_name(std::string_view n) {
    if (n.empty() || n.size() > 64 || n == "v" || n == "exp" || n == "erased" || n == "rev") return false;
    for (const char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

// Through Sentinel, a write is a success only once a replica has it too: a
// primary that acknowledged it and died before replicating it would take it
// along, and the Sentinels would promote a replica without it. Nothing to
// wait for when ROLE listed no replica online (then no replica can be
// promoted in its place either).
void wait_for_a_replica(RedisSession& s, long long v) {
    const std::string written = "the record was written as v=" + std::to_string(v) + " on the primary " + s.where;
    Reply r;
    try {
        r = s.conn->request({"WAIT", "1", std::to_string(kWaitMs)});
    } catch (const ConnectionLost& e) {
        throw Failure(written + ", but " + e.what() + " while waiting for a replica to acknowledge it; check with "
                      "'consentctl get'");
    }
    if (r->type == REDIS_REPLY_ERROR)
        throw Failure(written + ", but WAIT failed: " + std::string(r->str, r->len) +
                      " (a replica may or may not have it)");
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 1)
        throw Failure(written + ", but no replica acknowledged it within " + std::to_string(kWaitMs / 1000) +
                      "s: if that primary fails before one does, a failover loses the change; check with "
                      "'consentctl get' and write it again if need be");
}

// Runs the write script; returns the new version.
long long write_record(const Args& a, const std::string& subject, const char* mode,
                       const std::vector<std::string>& fields) {
    const std::string key = record_key_of(a, subject);
    const std::string channel = channel_of(a);
    RedisSession s = open_session(a);
    std::vector<std::string> cmd = {"EVAL", kWriteScript, "1", key, channel, subject, mode};
    cmd.insert(cmd.end(), fields.begin(), fields.end());
    Reply r;
    try {
        r = s.conn->request(cmd);
    } catch (const ConnectionLost& e) {
        // The script may have run before the reply was lost: say so.
        throw Failure(std::string(e.what()) + "; the change may or may not have been applied, check with 'consentctl get'");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        const std::string err(r->str, r->len);
        // A replica refuses the script's first write, so nothing changed.
        // Through Sentinel it was the primary a moment ago: demoted since.
        if (err.compare(0, 8, "READONLY") == 0)
            throw Failure("Redis at " + s.where + " is a replica, not the primary (" + err.substr(0, err.find('.')) +
                          "): the record was not changed" +
                          (s.via_sentinel ? "; a failover is under way, try again"
                                          : "; give the primary's address, or --redis sentinel:MASTER_NAME"));
        throw Failure("Redis EVAL failed: " + err);
    }
    if (r->type != REDIS_REPLY_INTEGER) throw Failure("the write script returned no version");
    if (s.via_sentinel && s.replicas > 0) wait_for_a_replica(s, r->integer);
    return r->integer;
}

// JSON string: escapes quotes, backslashes and control characters; a byte
// outside ASCII is written as \u00XX (its Latin-1 reading) so that the
// output is always valid JSON.
std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

// A value of digits only is a JSON number, unless a leading zero would make
// it invalid JSON ("007" stays a string).
std::string json_value(std::string_view s) {
    if (all_digits(s) && (s.size() == 1 || s[0] != '0')) return std::string(s);
    return json_string(s);
}

// ---- commands -------------------------------------------------------------------

int cmd_set(const Args& a) {
    if (a.positional.empty()) throw UsageError("expected SUBJECT and PURPOSE=1|0 ...");
    const std::string subject = subject_arg(a.positional[0]);
    std::vector<std::string> fields;
    std::map<std::string, std::string> seen;
    for (size_t i = 1; i < a.positional.size(); i++) {
        const std::string& arg = a.positional[i];
        const auto eq = arg.find('=');
        if (eq == std::string::npos) throw UsageError("expected PURPOSE=1|0, got '" + arg + "'");
        const std::string name = arg.substr(0, eq), value = arg.substr(eq + 1);
        if (!purpose_name(name))
            throw UsageError("invalid purpose name '" + name + "', expected [a-z0-9_]+ other than v, exp, erased, rev");
        if (value != "1" && value != "0")
            throw UsageError("purpose " + name + " must be 1 (granted) or 0 (denied), got '" + value + "'");
        if (!seen.emplace(name, value).second) throw UsageError("purpose " + name + " given more than once");
        fields.push_back(name);
        fields.push_back(value);
    }
    if (a.has("--exp")) {
        const std::string exp = a.get("--exp");
        if (!fits_u64(exp)) throw UsageError("--exp '" + exp + "' must be unix seconds");
        fields.push_back("exp");
        fields.push_back(exp);
    }
    if (a.has("--revision")) {
        fields.push_back("rev");
        fields.push_back(std::to_string(parse_revision(a.get("--revision"))));
    }
    if (fields.empty()) throw UsageError("nothing to set: give PURPOSE=1|0, --exp or --revision");
    const long long v = write_record(a, subject, "merge", fields);
    std::printf("v=%lld\n", v);
    flush_stdout("the record was written as v=" + std::to_string(v));
    return 0;
}

int cmd_erase(const Args& a) {
    if (a.positional.size() != 1) throw UsageError("expected exactly one SUBJECT");
    const std::string subject = subject_arg(a.positional[0]);
    const long long v = write_record(a, subject, "replace", {"erased", "1"});
    std::printf("v=%lld\n", v);
    flush_stdout("the record was erased as v=" + std::to_string(v));
    return 0;
}

int cmd_get(const Args& a) {
    if (a.positional.size() != 1) throw UsageError("expected exactly one SUBJECT");
    const std::string subject = subject_arg(a.positional[0]);
    const std::string key = record_key_of(a, subject);
    RedisSession s = open_session(a);
    const Reply r = s.conn->command({"HGETALL", key});
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) throw Failure("unexpected reply to HGETALL");
    std::map<std::string, std::string> fields;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply* f = r->element[i];
        const redisReply* v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            throw Failure("unexpected reply to HGETALL");
        fields[std::string(f->str, f->len)] = std::string(v->str, v->len);
    }
    std::string json = "{";
    for (const auto& [field, value] : fields) {
        if (json.size() > 1) json += ',';
        json += json_string(field) + ":" + json_value(value);
    }
    std::printf("%s}\n", json.c_str());
    return 0;
}

int cmd_watch(const Args& a) {
    if (!a.positional.empty()) throw UsageError("unexpected argument '" + a.positional[0] + "'");
    const std::string channel = channel_of(a);
    RedisSession s = open_session(a);
    RedisConnection& redis = *s.conn;
    redis.command({"SUBSCRIBE", channel});  // the confirmation, within the command timeout
    for (;;) {
        // Then wait as long as it takes: no deadline, but a lost connection
        // still ends the command (through Sentinel too: a failover ends it,
        // and a new watch finds the new primary).
        const Reply r = redis.read(Deadline::never(), "SUBSCRIBE");
        if (r->type == REDIS_REPLY_ERROR) throw Failure("Redis SUBSCRIBE failed: " + std::string(r->str, r->len));
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) continue;
        const redisReply* kind = r->element[0];
        const redisReply* payload = r->element[2];
        if (kind->type != REDIS_REPLY_STRING || std::string(kind->str, kind->len) != "message") continue;
        if (payload->type != REDIS_REPLY_STRING) continue;
        std::fwrite(payload->str, 1, payload->len, stdout);
        std::fputc('\n', stdout);
        flush_stdout();
    }
}

#define CONSENT_KEY_OPTIONS_HELP \
    "  --prefix STRING   record key prefix; the key is PREFIX{SUBJECT} (default consent:)\n"
#define CONSENT_CHANNEL_OPTIONS_HELP \
    "  --channel NAME    update channel (default consent:updates)\n"

}  // namespace

const std::vector<Command>& redis_commands() {
    static const std::vector<Command> cmds = {
        {"set", "set purposes of a subject's consent record in Redis",
         "usage: consentctl set [--redis ADDRESS | --redis sentinel:NAME --sentinels LIST] [--tls ...] [--user NAME] SUBJECT PURPOSE=1|0 ... [--exp UNIX] [--revision N]\n"
         "\n"
         "Sets the given purposes of SUBJECT's record (1 granted, 0 denied) and keeps\n"
         "the others, increments its version v and announces '<SUBJECT> <v>' on the\n"
         "channel, in one atomic step (the script in docs/redis-schema.md).\n"
         "Prints the new version as v=N. Through Sentinel, a replica must also acknowledge\n"
         "the write within 2s (WAIT), else it exits 1 saying the primary has it.\n"
         "  --exp UNIX        the record is dead from these unix seconds on\n"
         "  --revision N      the policy revision the purposes are given under (the field rev);\n"
         "                    over a record of an older revision, its purpose fields are dropped first\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_KEY_OPTIONS_HELP CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_set,
         redis_value_options({"--prefix", "--channel", "--exp", "--revision"}),
         redis_flags()},
        {"get", "print a subject's consent record as JSON",
         "usage: consentctl get [--redis ADDRESS | --redis sentinel:NAME --sentinels LIST] [--tls ...] [--user NAME] SUBJECT\n"
         "\n"
         "Prints SUBJECT's record as one JSON object, fields in sorted order, values of\n"
         "digits as numbers: {\"analysis\":1,\"exp\":1790000000,\"marketing\":0,\"v\":3}.\n"
         "No record prints {}.\n" CONSENT_REDIS_OPTIONS_HELP CONSENT_KEY_OPTIONS_HELP,
         cmd_get,
         redis_value_options({"--prefix"}),
         redis_flags()},
        {"erase", "mark a subject's consent record erased",
         "usage: consentctl erase [--redis ADDRESS | --redis sentinel:NAME --sentinels LIST] [--tls ...] [--user NAME] SUBJECT\n"
         "\n"
         "Removes every field of SUBJECT's record but v, sets erased=1, increments v and\n"
         "announces '<SUBJECT> <v>', in one atomic step. Every purpose is then denied\n"
         "and the edges clear the subject's visitor-ID cookie. Prints v=N. Through\n"
         "Sentinel, a replica must also acknowledge it within 2s, as for set.\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_KEY_OPTIONS_HELP CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_erase,
         redis_value_options({"--prefix", "--channel"}),
         redis_flags()},
        {"watch", "print update messages as they come",
         "usage: consentctl watch [--redis ADDRESS | --redis sentinel:NAME --sentinels LIST] [--tls ...] [--user NAME]\n"
         "\n"
         "Subscribes to the update channel and prints each message ('<SUBJECT> <v>',\n"
         "or '*': drop every cache) on its own line until stopped.\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_watch,
         redis_value_options({"--channel"}),
         redis_flags()},
    };
    return cmds;
}

}  // namespace consent::cli
