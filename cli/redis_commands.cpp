// consentctl set | get | erase | watch: consent records in Redis.
//
// hiredis' synchronous API: a CLI may block. Every write goes through the
// published Lua script (store/write_script.h), so consentctl changes records
// exactly as any other writer does.
#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "crypto/token.h"
#include "store/record.h"
#include "store/write_script.h"

namespace consent::cli {

namespace {

constexpr const char* kDefaultRedis = "127.0.0.1:6379";
constexpr const char* kDefaultPrefix = "consent:";
constexpr const char* kDefaultChannel = "consent:updates";
constexpr timeval kConnectTimeout = {2, 0};
constexpr timeval kCommandTimeout = {5, 0};

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

// ---- connection -----------------------------------------------------------------

struct Address {
    bool unix_socket = false;
    std::string host;  // or the socket path
    int port = 6379;
};

// "host:port", "[v6]:port", "host" (port 6379) or "unix:/path".
Address parse_address(const std::string& s) {
    Address a;
    if (s.compare(0, 5, "unix:") == 0) {
        a.unix_socket = true;
        a.host = s.substr(5);
        if (a.host.empty()) throw UsageError("--redis '" + s + "': missing socket path after unix:");
        // hiredis would cut a longer path short and connect elsewhere
        if (a.host.size() >= sizeof(sockaddr_un::sun_path))
            throw UsageError("--redis '" + s + "': socket path longer than " +
                             std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
        return a;
    }
    std::string port;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos) throw UsageError("--redis '" + s + "': missing ']'");
        a.host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw UsageError("--redis '" + s + "': expected HOST:PORT or unix:/PATH");
            port = s.substr(close + 2);
            if (port.empty()) throw UsageError("--redis '" + s + "': missing port");
        }
    } else if (const auto colon = s.find(':'); colon != std::string::npos && s.find(':', colon + 1) == std::string::npos) {
        a.host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (port.empty()) throw UsageError("--redis '" + s + "': missing port");
    } else {
        a.host = s;  // a bare host name or IPv6 address
    }
    if (a.host.empty()) throw UsageError("--redis '" + s + "': missing host");
    if (!port.empty()) {
        if (!all_digits(port) || port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535)
            throw UsageError("--redis '" + s + "': port must be 1..65535");
        a.port = std::stoi(port);
    }
    return a;
}

struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// The connection failed or timed out: unlike an error reply, the command
// may or may not have run.
struct ConnectionLost : Failure {
    using Failure::Failure;
};

struct ContextFree {
    void operator()(redisContext* c) const { redisFree(c); }
};

class Redis {
public:
    // Connects, authenticates and selects the database the options name.
    explicit Redis(const Args& a) : where_(a.get("--redis", kDefaultRedis)) {
        const Address addr = parse_address(where_);
        const std::string password = a.get("--password");
        const std::string db = a.get("--db");
        if (a.has("--db") && (!all_digits(db) || db.size() > 9))
            throw UsageError("--db '" + db + "' must be a database number");

        redisContext* c = addr.unix_socket ? redisConnectUnixWithTimeout(addr.host.c_str(), kConnectTimeout)
                                           : redisConnectWithTimeout(addr.host.c_str(), addr.port, kConnectTimeout);
        if (!c) throw Failure("cannot connect to Redis at " + where_ + ": out of memory");
        ctx_.reset(c);
        if (c->err) throw Failure("cannot connect to Redis at " + where_ + ": " + c->errstr);
        set_timeout(kCommandTimeout);
        if (a.has("--password")) command({"AUTH", password});
        if (a.has("--db")) command({"SELECT", db});
    }

    // {0, 0}: block forever (watch).
    void set_timeout(timeval tv) {
        if (redisSetTimeout(ctx_.get(), tv) != REDIS_OK) throw Failure("Redis at " + where_ + ": " + ctx_->errstr);
        timeout_ = tv;
    }

    // Sends one command, binary-safe, and waits for its whole reply at most
    // the command timeout; Failure on a lost connection or an error reply.
    Reply command(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& s : args) {
            argv.push_back(s.data());
            lens.push_back(s.size());
        }
        redisContext* c = ctx_.get();
        errno = 0;
        if (redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
            check(Reply(nullptr), args[0], errno);
        }
        // redisGetReply()'s loop, with the socket timeout cut to what is
        // left of the command's: a server that trickles its reply a byte at
        // a time would otherwise reset a per-read timeout forever.
        using Clock = std::chrono::steady_clock;
        const timeval budget = timeout_;
        const bool bounded = budget.tv_sec != 0 || budget.tv_usec != 0;  // else watch: block
        const Clock::time_point deadline =
            Clock::now() + std::chrono::seconds(budget.tv_sec) + std::chrono::microseconds(budget.tv_usec);
        int written = 0;
        void* raw = nullptr;
        while (!written) {
            if (redisBufferWrite(c, &written) != REDIS_OK) fail(args[0]);
        }
        if (redisGetReplyFromReader(c, &raw) != REDIS_OK) fail(args[0]);
        while (raw == nullptr) {
            if (bounded) {
                const auto us = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
                if (us <= 0) throw ConnectionLost(timed_out(args[0]));
                const timeval left = {static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
                if (redisSetTimeout(c, left) != REDIS_OK) fail(args[0]);
            }
            errno = 0;
            if (redisBufferRead(c) != REDIS_OK) fail(args[0]);
            if (redisGetReplyFromReader(c, &raw) != REDIS_OK) fail(args[0]);
        }
        if (bounded && redisSetTimeout(c, budget) != REDIS_OK) fail(args[0]);
        Reply r(static_cast<redisReply*>(raw));
        check(r, args[0], 0);
        return r;
    }

    // The next reply pushed by the server (a subscription's messages).
    Reply next() {
        void* raw = nullptr;
        errno = 0;
        if (redisGetReply(ctx_.get(), &raw) != REDIS_OK) raw = nullptr;
        Reply r(static_cast<redisReply*>(raw));
        check(r, "SUBSCRIBE", errno);
        return r;
    }

private:
    // `err`: errno right after the call. A read that ran into the socket
    // timeout reports EAGAIN ("Resource temporarily unavailable"); say
    // what it means instead.
    void check(const Reply& r, const std::string& what, int err) {
        if (!r && ctx_->err == REDIS_ERR_IO && (err == EAGAIN || err == EWOULDBLOCK))
            throw ConnectionLost(timed_out(what));
        if (!r)
            throw ConnectionLost("Redis at " + where_ + ": " + (ctx_->errstr[0] ? ctx_->errstr : "connection lost"));
        if (r->type == REDIS_REPLY_ERROR)
            throw Failure("Redis " + what + " failed: " + std::string(r->str, r->len));
    }

    std::string timed_out(const std::string& what) const {
        return "Redis at " + where_ + ": no reply to " + what + " within " + std::to_string(timeout_.tv_sec) + "s";
    }

    // A failed write or read of command(): the context says why.
    [[noreturn]] void fail(const std::string& what) {
        const int err = errno;
        check(Reply(nullptr), what, err);
        throw ConnectionLost("Redis at " + where_ + ": connection lost");  // not reached
    }

    std::string where_;
    timeval timeout_ = {0, 0};
    std::unique_ptr<redisContext, ContextFree> ctx_;
};

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
    if (n.empty() || n.size() > 64 || n == "v" || n == "exp" || n == "erased") return false;
    for (const char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

// Runs the write script; returns the new version.
long long write_record(const Args& a, const std::string& subject, const char* mode,
                       const std::vector<std::string>& fields) {
    const std::string key = record_key_of(a, subject);
    const std::string channel = channel_of(a);
    Redis redis(a);
    std::vector<std::string> cmd = {"EVAL", kWriteScript, "1", key, channel, subject, mode};
    cmd.insert(cmd.end(), fields.begin(), fields.end());
    Reply r;
    try {
        r = redis.command(cmd);
    } catch (const ConnectionLost& e) {
        // The script may have run before the reply was lost: say so.
        throw Failure(std::string(e.what()) + "; the change may or may not have been applied, check with 'consentctl get'");
    }
    if (r->type != REDIS_REPLY_INTEGER) throw Failure("the write script returned no version");
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
            throw UsageError("invalid purpose name '" + name + "', expected [a-z0-9_]+ other than v, exp, erased");
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
    if (fields.empty()) throw UsageError("nothing to set: give PURPOSE=1|0 or --exp");
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
    Redis redis(a);
    const Reply r = redis.command({"HGETALL", key});
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
    Redis redis(a);
    redis.command({"SUBSCRIBE", channel});  // the confirmation
    redis.set_timeout({0, 0});              // then wait as long as it takes
    for (;;) {
        const Reply r = redis.next();
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

#define CONSENT_REDIS_OPTIONS_HELP                                                       \
    "  --redis ADDRESS   HOST:PORT or unix:/PATH (default 127.0.0.1:6379)\n"             \
    "  --password SECRET AUTH with this password\n"                                      \
    "  --db N            SELECT this database (default 0)\n"
#define CONSENT_KEY_OPTIONS_HELP \
    "  --prefix STRING   record key prefix; the key is PREFIX{SUBJECT} (default consent:)\n"
#define CONSENT_CHANNEL_OPTIONS_HELP \
    "  --channel NAME    update channel (default consent:updates)\n"

}  // namespace

const std::vector<Command>& redis_commands() {
    static const std::vector<Command> cmds = {
        {"set", "set purposes of a subject's consent record in Redis",
         "usage: consentctl set [--redis ADDRESS] SUBJECT PURPOSE=1|0 ... [--exp UNIX]\n"
         "\n"
         "Sets the given purposes of SUBJECT's record (1 granted, 0 denied) and keeps\n"
         "the others, increments its version v and announces '<SUBJECT> <v>' on the\n"
         "channel, in one atomic step (the script in docs/redis-schema.md).\n"
         "Prints the new version as v=N.\n"
         "  --exp UNIX        the record is dead from these unix seconds on\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_KEY_OPTIONS_HELP CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_set,
         {"--redis", "--password", "--db", "--prefix", "--channel", "--exp"}},
        {"get", "print a subject's consent record as JSON",
         "usage: consentctl get [--redis ADDRESS] SUBJECT\n"
         "\n"
         "Prints SUBJECT's record as one JSON object, fields in sorted order, values of\n"
         "digits as numbers: {\"analysis\":1,\"exp\":1790000000,\"marketing\":0,\"v\":3}.\n"
         "No record prints {}.\n" CONSENT_REDIS_OPTIONS_HELP CONSENT_KEY_OPTIONS_HELP,
         cmd_get,
         {"--redis", "--password", "--db", "--prefix"}},
        {"erase", "mark a subject's consent record erased",
         "usage: consentctl erase [--redis ADDRESS] SUBJECT\n"
         "\n"
         "Removes every field of SUBJECT's record but v, sets erased=1, increments v and\n"
         "announces '<SUBJECT> <v>', in one atomic step. Every purpose is then denied\n"
         "and the edges clear the subject's visitor-ID cookie. Prints v=N.\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_KEY_OPTIONS_HELP CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_erase,
         {"--redis", "--password", "--db", "--prefix", "--channel"}},
        {"watch", "print update messages as they come",
         "usage: consentctl watch [--redis ADDRESS]\n"
         "\n"
         "Subscribes to the update channel and prints each message ('<SUBJECT> <v>',\n"
         "or '*': drop every cache) on its own line until stopped.\n" CONSENT_REDIS_OPTIONS_HELP
             CONSENT_CHANNEL_OPTIONS_HELP,
         cmd_watch,
         {"--redis", "--password", "--db", "--channel"}},
    };
    return cmds;
}

}  // namespace consent::cli
