// One connection to a Redis server (or a Sentinel) for consentctl: TCP,
// [IPv6] or unix socket, optionally TLS, AUTH and SELECT, then commands with
// a deadline for each whole reply.
//
// Commands are formatted by hiredis (redisFormatCommandArgv) and replies
// parsed by its reader (redisReader*), so the same code builds against
// hiredis 0.14 (Debian 12) and 1.x (Debian 13); the socket, TLS and the
// deadlines are ours (net.h, tls.h), since hiredis 0.14 has no TLS.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/net.h"
#include "cli/tls.h"

namespace consent::cli {

struct RedisAddress {
    bool unix_socket = false;
    std::string host;  // or the socket path
    int port = 6379;
    std::string text;  // as given, for messages
};

// "host:port", "[v6]:port", "host" (port `default_port`) or "unix:/path";
// UsageError naming `option` when it is none of these.
RedisAddress parse_redis_address(const std::string& s, const std::string& option = "--redis",
                                 int default_port = 6379);

struct RedisOptions {
    std::chrono::milliseconds connect_timeout{2000};  // TCP connect and TLS handshake together
    std::chrono::milliseconds command_timeout{5000};  // a command, from sending to its whole reply
    std::optional<std::string> user;                  // AUTH user password (needs a password)
    std::optional<std::string> password;              // AUTH [user] password
    std::optional<std::string> db;                    // SELECT db
    std::shared_ptr<const TlsContext> tls;            // TLS when set
    std::string label = "Redis";                      // what messages call the server ("Sentinel")
};

struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

// The connection failed or timed out after a command was sent: unlike an
// error reply, the command may or may not have run.
struct ConnectionLost : Failure {
    using Failure::Failure;
};

// The server is there and said no: a TLS handshake it refused or whose
// certificate did not verify, or an error reply. Asking it again gives the
// same answer (unlike a connection that failed or timed out).
struct Refusal : Failure {
    using Failure::Failure;
};

// An error reply (WRONGPASS, NOPERM, READONLY...).
struct ReplyError : Refusal {
    using Refusal::Refusal;
};

// What the reply being parsed takes in memory (redis_connection.cpp).
struct ReplyBudget {
    size_t used = 0;
    bool exceeded = false;
};

class RedisConnection {
public:
    // A reply may take at most this much memory, and its bytes on the wire
    // at most as much again: a hostile or broken server cannot make the
    // command eat memory.
    static constexpr size_t kMaxReply = 16u << 20;

    // Connects and authenticates and selects as `o` says. Failure saying
    // what failed where; nothing has been sent but AUTH and SELECT.
    RedisConnection(const RedisAddress& a, const RedisOptions& o);
    ~RedisConnection();
    RedisConnection(const RedisConnection&) = delete;
    RedisConnection& operator=(const RedisConnection&) = delete;

    // Sends one command (binary safe) and waits for its whole reply at most
    // the command timeout. An error reply: ReplyError "Redis CMD failed:
    // ..." ("Sentinel at ADDRESS: CMD failed: ..." for another label).
    // No reply in time, or a lost connection: ConnectionLost.
    Reply command(const std::vector<std::string>& args);

    // The same, but an error reply is returned as it is, for callers that
    // tell errors apart (READONLY from a demoted primary).
    Reply request(const std::vector<std::string>& args);

    // For the commands from now on (a connection made under a short
    // budget, then used normally).
    void set_command_timeout(std::chrono::milliseconds t) { opts_.command_timeout = t; }

    // The two halves, for callers that choose the deadline (a subscription
    // waits for messages with Deadline::never()). read() returns error
    // replies as they are; `what` names the command in messages.
    void send(const std::vector<std::string>& args, Deadline d);
    Reply read(Deadline d, const std::string& what);

    const std::string& where() const { return where_; }

private:
    [[noreturn]] void lost(const NetError& e, const std::string& what);
    [[noreturn]] void reader_failed();
    std::string hint() const;

    std::string where_;
    RedisOptions opts_;
    std::unique_ptr<Stream> stream_;
    TlsStream* tls_ = nullptr;  // stream_, when it is TLS
    struct ReaderFree {
        void operator()(redisReader* r) const { redisReaderFree(r); }
    };
    // Owned, so that a constructor failing at AUTH or SELECT frees it too.
    std::unique_ptr<redisReader, ReaderFree> reader_;
    ReplyBudget budget_;
    size_t unparsed_ = 0;     // bytes fed to reader_ since its last whole reply
    bool got_reply_ = false;  // the server has answered on this connection
    bool broken_ = false;     // a failure left the stream or the reader unusable
};

}  // namespace consent::cli
