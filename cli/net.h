// A non-blocking stream socket with poll()-based deadlines, for consentctl's
// network clients (cli/redis_connection.h). Every call that waits takes a
// Deadline; nothing blocks past it, and a Deadline of never() waits as long
// as it takes (a subscription waiting for messages).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace consent::cli {

class Deadline {
public:
    using Clock = std::chrono::steady_clock;

    static Deadline never() { return Deadline(); }
    static Deadline in(std::chrono::milliseconds d) { return Deadline(Clock::now() + d); }

    bool passed() const { return at_ && Clock::now() >= *at_; }
    // For poll(): -1 for never, else the milliseconds left, rounded up.
    int poll_ms() const;

private:
    Deadline() = default;
    explicit Deadline(Clock::time_point at) : at_(at) {}
    std::optional<Clock::time_point> at_;
};

// What went wrong on the wire, without saying where: callers add "Redis at
// ADDRESS" and what they were doing.
struct NetError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct NetTimeout : NetError {  // the deadline passed
    using NetError::NetError;
};
struct NetClosed : NetError {  // the peer closed the connection
    using NetError::NetError;
};

// The byte stream a protocol runs over: a plain socket or a TLS session.
class Stream {
public:
    virtual ~Stream() = default;
    virtual void write_all(const char* data, size_t len, Deadline d) = 0;
    // At least one byte, at most `cap`; NetClosed at the end of the stream.
    virtual size_t read_some(char* buf, size_t cap, Deadline d) = 0;
};

class Socket : public Stream {
public:
    // TCP to host:port (names resolved with getaddrinfo, every address tried
    // in turn until one connects) or, with unix_path, a unix socket.
    // NetError with the reason of the last failure; NetTimeout when `d`
    // passes first.
    static Socket connect_tcp(const std::string& host, int port, Deadline d);
    static Socket connect_unix(const std::string& path, Deadline d);

    Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Socket& operator=(Socket&&) = delete;
    Socket(const Socket&) = delete;
    ~Socket() override;

    // send() with MSG_NOSIGNAL: a closed connection is an error, not a
    // SIGPIPE that kills the command (SIGPIPE stays on for stdout).
    void write_all(const char* data, size_t len, Deadline d) override;
    size_t read_some(char* buf, size_t cap, Deadline d) override;

private:
    explicit Socket(int fd) : fd_(fd) {}
    void wait(short events, Deadline d) const;  // NetTimeout when d passes
    int fd_;
};

}  // namespace consent::cli
