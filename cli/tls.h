// TLS for consentctl's network clients: OpenSSL on top of a Socket
// (net.h), through memory BIOs, so that every byte still goes through the
// Socket's deadlines and MSG_NOSIGNAL sends. TLS 1.2 and 1.3; the server's
// chain is verified against a CA file or the system's store, and its name
// (SAN DNS names, or IP addresses for an address) against the host.
#pragma once

#include <memory>
#include <string>

#include "cli/net.h"

struct ssl_ctx_st;
struct ssl_st;
struct bio_st;

namespace consent::cli {

struct TlsOptions {
    std::string ca_file;    // empty: the system's CA store
    std::string cert_file;  // client certificate, with key_file
    std::string key_file;
    std::string name;       // sent as SNI and verified; empty: each connection's host
    bool verify = true;     // false: no check of the chain or the name
};

// A TLS failure, with OpenSSL's reason ("certificate verify failed: unable
// to get local issuer certificate", "tlsv13 alert certificate required").
struct TlsError : NetError {
    TlsError(const std::string& why, bool alert, bool verify = false)
        : NetError(why), peer_alert(alert), verify_failed(verify) {}
    bool peer_alert;     // the server sent an alert: it refused the session
    bool verify_failed;  // the server's certificate did not verify
};

// The client side configuration, loaded once (one SSL_CTX) and shared by
// every connection made with it. Failure naming the option and the file
// when a file cannot be read or holds no usable certificate or key.
class TlsContext {
public:
    explicit TlsContext(const TlsOptions& o);
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    const TlsOptions& options() const { return opts_; }
    ssl_ctx_st* get() const { return ctx_.get(); }

private:
    struct CtxFree {
        void operator()(ssl_ctx_st* c) const;
    };
    TlsOptions opts_;
    std::unique_ptr<ssl_ctx_st, CtxFree> ctx_;  // freed when a file check throws, too
};

class TlsStream : public Stream {
public:
    // A client session over `sock`. `host`: what was connected to, sent as
    // SNI and verified unless the context names another.
    TlsStream(std::shared_ptr<const TlsContext> ctx, Socket&& sock, const std::string& host);
    // Runs the handshake before `d`. Throws TlsError (handshake or
    // verification failed), NetTimeout, NetClosed or NetError.
    void handshake(Deadline d);
    TlsStream(const TlsStream&) = delete;
    TlsStream& operator=(const TlsStream&) = delete;

    void write_all(const char* data, size_t len, Deadline d) override;
    size_t read_some(char* buf, size_t cap, Deadline d) override;

    // The server asked for a client certificate and the context has none.
    bool wanted_client_cert() const { return wanted_client_cert_; }

private:
    // One OpenSSL call: its result (> 0), -1 when it needs more from the
    // server, 0 to call again; TlsError or NetClosed when it failed.
    template <typename Op>
    int drive_once(Op op, Deadline d);
    template <typename Op>
    int drive(Op op, Deadline d);  // calls op until it succeeds
    void flush(Deadline d);  // what OpenSSL wrote to wbio_ goes out on the socket
    void feed(Deadline d);   // what the socket has goes into rbio_

    struct SslFree {
        void operator()(ssl_st* s) const;
    };

    std::shared_ptr<const TlsContext> ctx_;
    Socket sock_;
    std::unique_ptr<ssl_st, SslFree> ssl_;  // freed when the handshake throws, too
    bio_st* rbio_ = nullptr;  // owned by ssl_
    bio_st* wbio_ = nullptr;
    bool wanted_client_cert_ = false;  // set through SSL_get_app_data
};

}  // namespace consent::cli
