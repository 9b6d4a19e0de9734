// Non-blocking sockets with poll()-based deadlines (net.h).
#include "cli/net.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace consent::cli {

int Deadline::poll_ms() const {
    if (!at_) return -1;
    const auto left = *at_ - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Rounded up: a poll that returns a fraction of a millisecond early
    // would otherwise spin until the deadline.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return ms > 1000000 ? 1000000 : static_cast<int>(ms);
}

namespace {

std::string errno_text(int e) { return std::strerror(e); }

// A connect() in progress on a non-blocking socket: wait until it is done.
// Returns 0 or the errno it failed with.
int finish_connect(int fd, Deadline d) {
    for (;;) {
        pollfd p = {fd, POLLOUT, 0};
        const int n = ::poll(&p, 1, d.poll_ms());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        if (n == 0 && !d.passed()) continue;  // poll() waits at most 1000 s at a time
        if (n == 0) return ETIMEDOUT;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
        return err;
    }
}

int open_socket(int family) {
    return ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

}  // namespace

Socket::~Socket() {
    if (fd_ >= 0) ::close(fd_);
}

Socket Socket::connect_tcp(const std::string& host, int port, Deadline d) {
    addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* list = nullptr;
    // getaddrinfo blocks and takes no deadline; a CLI can live with that.
    const int gai = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
    if (gai != 0)
        throw NetError("cannot resolve " + host + ": " + (gai == EAI_SYSTEM ? errno_text(errno) : gai_strerror(gai)));
    std::string last = "no address";
    for (addrinfo* ai = list; ai; ai = ai->ai_next) {
        Socket s(open_socket(ai->ai_family));
        if (s.fd_ < 0) {
            last = errno_text(errno);
            continue;
        }
        int err = ::connect(s.fd_, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
        if (err == EINPROGRESS) err = finish_connect(s.fd_, d);
        if (err == 0) {
            ::freeaddrinfo(list);
            // Commands are small and each waits for its reply: no Nagle delay.
            const int one = 1;
            ::setsockopt(s.fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return s;
        }
        if (err == ETIMEDOUT && d.passed()) {
            ::freeaddrinfo(list);
            throw NetTimeout("timed out");
        }
        last = errno_text(err);
    }
    ::freeaddrinfo(list);
    throw NetError(last);
}

Socket Socket::connect_unix(const std::string& path, Deadline d) {
    sockaddr_un sa = {};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) throw NetError("socket path too long");
    std::memcpy(sa.sun_path, path.data(), path.size());
    Socket s(open_socket(AF_UNIX));
    if (s.fd_ < 0) throw NetError(errno_text(errno));
    int err = ::connect(s.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 ? 0 : errno;
    if (err == EINPROGRESS || err == EAGAIN) err = finish_connect(s.fd_, d);
    if (err == ETIMEDOUT && d.passed()) throw NetTimeout("timed out");
    if (err != 0) throw NetError(errno_text(err));
    return s;
}

void Socket::wait(short events, Deadline d) const {
    for (;;) {
        pollfd p = {fd_, events, 0};
        const int n = ::poll(&p, 1, d.poll_ms());
        if (n > 0) return;  // ready, or an error the next call reports
        if (n < 0 && errno != EINTR) throw NetError(errno_text(errno));
        if (n == 0 && d.passed()) throw NetTimeout("timed out");
    }
}

void Socket::write_all(const char* data, size_t len, Deadline d) {
    while (len > 0) {
        const ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= static_cast<size_t>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait(POLLOUT, d);
        } else if (n < 0 && errno != EINTR) {
            throw NetError(errno_text(errno));
        }
    }
}

size_t Socket::read_some(char* buf, size_t cap, Deadline d) {
    for (;;) {
        const ssize_t n = ::recv(fd_, buf, cap, 0);
        if (n > 0) return static_cast<size_t>(n);
        if (n == 0) throw NetClosed("connection closed by the server");
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            wait(POLLIN, d);
        else if (errno != EINTR)
            throw NetError(errno_text(errno));
    }
}

}  // namespace consent::cli
