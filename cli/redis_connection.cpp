// One Redis connection for consentctl (redis_connection.h).
#include "cli/redis_connection.h"

#include <sys/un.h>

#include <cstdint>
#include <cstdio>

namespace consent::cli {

namespace {

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// A handshake that gets no answer, a closed connection, or bytes that are not
// TLS: what a server that does not speak TLS on that port does.
constexpr const char* kNotTls = " (is it a TLS port?)";

std::string seconds(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ms.count()) / 1000);
    return buf;
}

// ---- the reply budget ---------------------------------------------------------------
//
// hiredis' reader builds replies through a table of functions. Ours charge
// each object to the connection's budget (reader->privdata, copied into each
// task) before handing over to hiredis' own, and refuse once a reply would
// exceed kMaxReply: the reader then fails with "out of memory", which
// reader_failed() reports as a reply too large. Without it, "*2000000000\r\n"
// alone would make hiredis allocate 16 GB of element pointers.

const redisReplyObjectFunctions* g_hiredis = nullptr;  // hiredis' own table
redisReplyObjectFunctions g_budgeted;

bool charge(const redisReadTask* t, size_t bytes) {
    auto* b = static_cast<ReplyBudget*>(t->privdata);
    if (!b) return true;
    if (b->exceeded || bytes > RedisConnection::kMaxReply - b->used) {
        b->exceeded = true;
        return false;
    }
    b->used += bytes;
    return true;
}

// hiredis 0.14 counts elements in an int, 1.x in a size_t: deduce it.
template <typename Fn>
struct ArrayHook;
template <typename R, typename T, typename N>
struct ArrayHook<R (*)(T, N)> {
    static R create(T t, N n) {
        const size_t count = n > 0 ? static_cast<size_t>(n) : 0;
        const size_t bytes = count > RedisConnection::kMaxReply / sizeof(redisReply*)
                                 ? SIZE_MAX  // refused below, without overflowing
                                 : sizeof(redisReply) + count * sizeof(redisReply*);
        return charge(t, bytes) ? g_hiredis->createArray(t, n) : nullptr;
    }
};

void* budgeted_string(const redisReadTask* t, char* s, size_t len) {
    return charge(t, sizeof(redisReply) + len + 1) ? g_hiredis->createString(t, s, len) : nullptr;
}
void* budgeted_integer(const redisReadTask* t, long long v) {
    return charge(t, sizeof(redisReply)) ? g_hiredis->createInteger(t, v) : nullptr;
}
void* budgeted_nil(const redisReadTask* t) {
    return charge(t, sizeof(redisReply)) ? g_hiredis->createNil(t) : nullptr;
}

// A reader whose replies are charged to `budget`.
redisReader* budgeted_reader(ReplyBudget* budget) {
    redisReader* r = redisReaderCreate();
    if (!r) return nullptr;
    if (!g_hiredis) {
        g_hiredis = r->fn;
        g_budgeted = *r->fn;  // what we do not hook (1.x's RESP3 types) stays hiredis'
        g_budgeted.createString = budgeted_string;
        g_budgeted.createArray = ArrayHook<decltype(g_budgeted.createArray)>::create;
        g_budgeted.createInteger = budgeted_integer;
        g_budgeted.createNil = budgeted_nil;
    }
    r->fn = &g_budgeted;
    r->privdata = budget;
    return r;
}

struct CommandFree {
    void operator()(char* c) const { redisFreeCommand(c); }
};

}  // namespace

RedisAddress parse_redis_address(const std::string& s, const std::string& option, int default_port) {
    RedisAddress a;
    a.text = s;
    a.port = default_port;
    const std::string what = option + " '" + s + "': ";
    if (s.compare(0, 5, "unix:") == 0) {
        a.unix_socket = true;
        a.host = s.substr(5);
        if (a.host.empty()) throw UsageError(what + "missing socket path after unix:");
        // connect() would not see the rest of a longer path
        if (a.host.size() >= sizeof(sockaddr_un::sun_path))
            throw UsageError(what + "socket path longer than " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                             " bytes");
        return a;
    }
    std::string port;
    if (!s.empty() && s[0] == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos) throw UsageError(what + "missing ']'");
        a.host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') throw UsageError(what + "expected HOST:PORT or unix:/PATH");
            port = s.substr(close + 2);
            if (port.empty()) throw UsageError(what + "missing port");
        }
    } else if (const auto colon = s.find(':'); colon != std::string::npos && s.find(':', colon + 1) == std::string::npos) {
        a.host = s.substr(0, colon);
        port = s.substr(colon + 1);
        if (port.empty()) throw UsageError(what + "missing port");
    } else {
        a.host = s;  // a bare host name or IPv6 address
    }
    if (a.host.empty()) throw UsageError(what + "missing host");
    if (!port.empty()) {
        if (!all_digits(port) || port.size() > 5 || std::stoi(port) < 1 || std::stoi(port) > 65535)
            throw UsageError(what + "port must be 1..65535");
        a.port = std::stoi(port);
    }
    return a;
}

RedisConnection::RedisConnection(const RedisAddress& a, const RedisOptions& o) : where_(a.text), opts_(o) {
    const Deadline d = Deadline::in(o.connect_timeout);
    std::optional<Socket> sock;
    try {
        sock.emplace(a.unix_socket ? Socket::connect_unix(a.host, d) : Socket::connect_tcp(a.host, a.port, d));
    } catch (const NetTimeout&) {
        throw Failure("cannot connect to " + opts_.label + " at " + where_ + ": no connection within " +
                      seconds(o.connect_timeout));
    } catch (const NetError& e) {
        throw Failure("cannot connect to " + opts_.label + " at " + where_ + ": " + e.what());
    }
    if (o.tls) {
        // Within the connect timeout: a server that never answers the
        // handshake (a plain Redis waiting for a newline) cannot hang us.
        const std::string failed = "TLS handshake with " + opts_.label + " at " + where_ + " failed: ";
        try {
            auto tls = std::make_unique<TlsStream>(o.tls, std::move(*sock), a.host);
            tls_ = tls.get();
            stream_ = std::move(tls);
        } catch (const TlsError& e) {  // a name OpenSSL cannot take, no memory
            throw Failure("TLS with " + opts_.label + " at " + where_ + ": " + e.what());
        }
        try {
            tls_->handshake(d);
        } catch (const TlsError& e) {
            // Neither a refusal nor a certificate that did not verify: what
            // the server sent was not TLS ("wrong version number").
            const bool not_tls = !e.peer_alert && !e.verify_failed && hint().empty();
            if (e.peer_alert || e.verify_failed) throw Refusal(failed + e.what() + hint());
            throw Failure(failed + e.what() + (not_tls ? kNotTls : hint()));
        } catch (const NetTimeout&) {
            throw Failure("TLS handshake with " + opts_.label + " at " + where_ + ": no answer within " +
                          seconds(o.connect_timeout) + (hint().empty() ? kNotTls : hint()));
        } catch (const NetError& e) {
            throw Failure(failed + e.what() + (hint().empty() ? kNotTls : hint()));
        }
    } else {
        stream_ = std::make_unique<Socket>(std::move(*sock));
    }
    reader_.reset(budgeted_reader(&budget_));
    if (!reader_) throw Failure(opts_.label + " at " + where_ + ": out of memory");
    if (o.password) {
        if (o.user)
            command({"AUTH", *o.user, *o.password});
        else
            command({"AUTH", *o.password});
    }
    if (o.db) command({"SELECT", *o.db});
}

RedisConnection::~RedisConnection() = default;

Reply RedisConnection::command(const std::vector<std::string>& args) {
    const Deadline d = Deadline::in(opts_.command_timeout);
    send(args, d);
    Reply r = read(d, args[0]);
    if (r->type == REDIS_REPLY_ERROR) {
        // "Redis EVAL failed: ..." as before for data nodes; a Sentinel's
        // message says which one.
        const std::string err(r->str, r->len);
        if (opts_.label == "Redis") throw ReplyError("Redis " + args[0] + " failed: " + err);
        throw ReplyError(opts_.label + " at " + where_ + ": " + args[0] + " failed: " + err);
    }
    return r;
}

Reply RedisConnection::request(const std::vector<std::string>& args) {
    const Deadline d = Deadline::in(opts_.command_timeout);
    send(args, d);
    return read(d, args[0]);
}

void RedisConnection::send(const std::vector<std::string>& args, Deadline d) {
    if (broken_) throw ConnectionLost(opts_.label + " at " + where_ + ": the connection failed before");
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& s : args) {
        argv.push_back(s.data());
        lens.push_back(s.size());
    }
    char* raw = nullptr;
    const auto len = redisFormatCommandArgv(&raw, static_cast<int>(argv.size()), argv.data(), lens.data());
    const std::unique_ptr<char, CommandFree> cmd(raw);
    if (len < 0 || !raw) throw Failure(opts_.label + " " + args[0] + ": out of memory");
    try {
        stream_->write_all(cmd.get(), static_cast<size_t>(len), d);
    } catch (const NetError& e) {
        lost(e, args[0]);
    }
}

Reply RedisConnection::read(Deadline d, const std::string& what) {
    if (broken_) throw ConnectionLost(opts_.label + " at " + where_ + ": the connection failed before");
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) reader_failed();
        if (raw) {
            got_reply_ = true;
            budget_.used = 0;
            unparsed_ = reader_->len - reader_->pos;  // the start of the next reply, if any
            return Reply(static_cast<redisReply*>(raw));
        }
        char buf[16384];
        size_t n = 0;
        try {
            n = stream_->read_some(buf, sizeof buf, d);
        } catch (const NetError& e) {
            lost(e, what);
        }
        if (n > kMaxReply - unparsed_) {
            budget_.exceeded = true;
            reader_failed();
        }
        unparsed_ += n;
        if (redisReaderFeed(reader_.get(), buf, n) != REDIS_OK) reader_failed();
    }
}

// A failure on the stream. A TLS alert before the server's first reply is
// the server refusing the session (TLS 1.3 servers check client
// certificates after the client's handshake is done): nothing was run.
void RedisConnection::lost(const NetError& e, const std::string& what) {
    broken_ = true;
    if (const auto* t = dynamic_cast<const TlsError*>(&e); t && t->peer_alert && !got_reply_)
        throw Refusal("TLS handshake with " + opts_.label + " at " + where_ + " failed: " + e.what() + hint());
    if (dynamic_cast<const NetTimeout*>(&e))
        throw ConnectionLost(opts_.label + " at " + where_ + ": no reply to " + what + " within " +
                             seconds(opts_.command_timeout));
    throw ConnectionLost(opts_.label + " at " + where_ + ": " + e.what() + hint());
}

void RedisConnection::reader_failed() {
    broken_ = true;
    if (budget_.exceeded)
        throw ConnectionLost(opts_.label + " at " + where_ + ": reply larger than " + std::to_string(kMaxReply >> 20) +
                             " MB, connection dropped");
    throw ConnectionLost(opts_.label + " at " + where_ + ": " + reader_->errstr + hint());
}

// What a failure before the server's first reply may mean.
std::string RedisConnection::hint() const {
    if (got_reply_) return "";
    if (!stream_) return "";
    if (!tls_) return " (a TLS port? then add --tls)";
    if (tls_->wanted_client_cert())
        return " (the server asks for a client certificate: give --cert and --key)";
    return "";
}

}  // namespace consent::cli
