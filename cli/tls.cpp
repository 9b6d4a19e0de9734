// TLS client sessions over memory BIOs (tls.h).
//
// OpenSSL never touches the socket: it reads from rbio_, which feed() fills
// from the Socket, and writes to wbio_, which flush() empties into it. So
// the Socket's deadlines bound the handshake and every record, and a
// server that went away is an error rather than a SIGPIPE.
#include "cli/tls.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "cli/command.h"

namespace consent::cli {

namespace {

// OpenSSL's reason for the failure at the head of its error queue, and why
// verification failed when it did. Clears the queue.
std::string reason(SSL* ssl, bool* peer_alert, bool* verify_failed = nullptr) {
    std::string why;
    *peer_alert = false;
    if (verify_failed) *verify_failed = false;
    if (const unsigned long e = ERR_peek_error()) {
        const char* r = ERR_reason_error_string(e);
        if (r) {
            why = r;
        } else {
            char buf[256];
            ERR_error_string_n(e, buf, sizeof buf);
            why = buf;
        }
        // Reasons from SSL_AD_REASON_OFFSET on are alerts the server sent.
        *peer_alert = ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET;
    }
    ERR_clear_error();
    const long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK && (why.empty() || why == "certificate verify failed")) {
        why = "certificate verify failed: " + std::string(X509_verify_cert_error_string(v));
        if (verify_failed) *verify_failed = true;
    }
    return why.empty() ? "unknown TLS error" : why;
}

// A file the option names must be a readable regular file: say which
// option, which file and why not before OpenSSL says something vaguer.
// O_NONBLOCK: a FIFO is refused instead of hanging the command.
void check_file(const char* option, const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw Failure(std::string(option) + " " + path + ": " + std::strerror(errno));
    struct stat st;
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    ::close(fd);
    if (!regular) throw Failure(std::string(option) + " " + path + ": not a regular file");
}

[[noreturn]] void load_failed(const std::string& what) {
    bool alert;
    throw Failure(what + ": " + reason(nullptr, &alert));
}

// An encrypted private key would make OpenSSL prompt on the terminal; a
// command that runs from scripts must fail instead.
int no_passphrase(char*, int, int, void*) { return 0; }

// Called when the server asks for a certificate and the context has none:
// remember it, to say so if the server then refuses the session.
int on_client_cert(SSL* ssl, X509**, EVP_PKEY**) {
    if (auto* wanted = static_cast<bool*>(SSL_get_app_data(ssl))) *wanted = true;
    return 0;  // no certificate
}

bool is_ip(const std::string& s) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

TlsContext::TlsContext(const TlsOptions& o) : opts_(o), ctx_(SSL_CTX_new(TLS_client_method())) {
    if (!ctx_) throw Failure("cannot set up TLS: out of memory");
    SSL_CTX* ctx = ctx_.get();
    ERR_clear_error();
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, o.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_client_cert_cb(ctx, on_client_cert);
    if (!o.ca_file.empty()) {
        check_file("--cacert", o.ca_file);
        if (SSL_CTX_load_verify_locations(ctx, o.ca_file.c_str(), nullptr) != 1)
            load_failed("--cacert " + o.ca_file + ": no CA certificate in it");
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        load_failed("cannot load the system's CA store");
    }
    if (!o.cert_file.empty()) {
        check_file("--cert", o.cert_file);
        check_file("--key", o.key_file);
        if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
            load_failed("--cert " + o.cert_file + ": no certificate in it");
        const std::string mismatch = "--key " + o.key_file + ": not the key of --cert " + o.cert_file;
        if (SSL_CTX_use_PrivateKey_file(ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            const unsigned long e = ERR_peek_error();
            if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                throw Failure(mismatch);
            }
            load_failed("--key " + o.key_file + ": cannot load an unencrypted PEM private key from it");
        }
        if (SSL_CTX_check_private_key(ctx) != 1) load_failed(mismatch);
    }
}

void TlsContext::CtxFree::operator()(ssl_ctx_st* c) const { SSL_CTX_free(c); }

TlsStream::TlsStream(std::shared_ptr<const TlsContext> ctx, Socket&& sock, const std::string& host)
    : ctx_(std::move(ctx)), sock_(std::move(sock)) {
    ERR_clear_error();
    ssl_.reset(SSL_new(ctx_->get()));
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    if (!ssl_ || !rbio_ || !wbio_) {
        BIO_free(rbio_);
        BIO_free(wbio_);
        throw TlsError("out of memory", false);
    }
    BIO_set_mem_eof_return(rbio_, -1);  // empty means "wait for more", not EOF
    SSL_set_bio(ssl_.get(), rbio_, wbio_);
    SSL_set_app_data(ssl_.get(), &wanted_client_cert_);

    const TlsOptions& o = ctx_->options();
    std::string name = o.name.empty() ? host : o.name;
    const auto zone = name.find('%');  // fe80::1%eth0: the certificate names the address only
    if (zone != std::string::npos && is_ip(name.substr(0, zone))) name.resize(zone);
    if (is_ip(name)) {
        // RFC 6066: no IP address in SNI; the certificate must list it as an IP SAN.
        if (o.verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), name.c_str()) != 1)
            throw TlsError("cannot verify the address " + name, false);
    } else {
        if (SSL_set_tlsext_host_name(ssl_.get(), name.c_str()) != 1)
            throw TlsError("cannot send " + name + " as SNI", false);
        SSL_set_hostflags(ssl_.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (o.verify && SSL_set1_host(ssl_.get(), name.c_str()) != 1)
            throw TlsError("cannot verify the name " + name, false);
    }
    SSL_set_connect_state(ssl_.get());
}

void TlsStream::handshake(Deadline d) {
    drive([this] { return SSL_do_handshake(ssl_.get()); }, d);
    // TLS 1.3: the server checks the client's certificate after the
    // client's side of the handshake is done, and refuses with an alert.
    // A command sent meanwhile would reach a closed socket, whose reset
    // makes the kernel drop the alert unread. So when the server asked for
    // a certificate we do not have, wait for its verdict first: the alert,
    // or the session tickets a server that accepts sends (Redis does). No
    // answer at all before the deadline lets the command go on.
    if (!wanted_client_cert_ || SSL_version(ssl_.get()) != TLS1_3_VERSION) return;
    try {
        feed(d);
    } catch (const NetTimeout&) {
        return;
    }
    char c;
    drive_once([&] { return SSL_peek(ssl_.get(), &c, 1); }, d);
}

// No close_notify on the way out: the command is over, and sending it on a
// dead connection would only delay the exit.
void TlsStream::SslFree::operator()(ssl_st* s) const { SSL_free(s); }

template <typename Op>
int TlsStream::drive_once(Op op, Deadline d) {
    ERR_clear_error();
    const int r = op();
    const int err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL) {
        bool alert, verify;
        const std::string why = reason(ssl_.get(), &alert, &verify);
        try {
            flush(d);  // the alert that tells the server why
        } catch (const NetError&) {
        }
        throw TlsError(why, alert, verify);
    }
    flush(d);
    if (err == SSL_ERROR_NONE) return r;
    if (err == SSL_ERROR_ZERO_RETURN) throw NetClosed("the server closed the TLS session");
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)  // WANT_WRITE: flushed above
        throw TlsError("unexpected TLS state " + std::to_string(err), false);
    return err == SSL_ERROR_WANT_READ ? -1 : 0;
}

template <typename Op>
int TlsStream::drive(Op op, Deadline d) {
    for (;;) {
        const int r = drive_once(op, d);
        if (r > 0) return r;
        if (r < 0) feed(d);
    }
}

void TlsStream::flush(Deadline d) {
    char buf[16384];
    while (BIO_ctrl_pending(wbio_) > 0) {
        const int n = BIO_read(wbio_, buf, sizeof buf);
        if (n <= 0) break;
        sock_.write_all(buf, static_cast<size_t>(n), d);
    }
}

void TlsStream::feed(Deadline d) {
    char buf[16384];
    const size_t n = sock_.read_some(buf, sizeof buf, d);
    if (BIO_write(rbio_, buf, static_cast<int>(n)) != static_cast<int>(n)) throw TlsError("out of memory", false);
}

void TlsStream::write_all(const char* data, size_t len, Deadline d) {
    while (len > 0) {
        const int chunk = len > INT_MAX ? INT_MAX : static_cast<int>(len);
        const int n = drive([&] { return SSL_write(ssl_.get(), data, chunk); }, d);
        data += n;
        len -= static_cast<size_t>(n);
    }
}

size_t TlsStream::read_some(char* buf, size_t cap, Deadline d) {
    const int chunk = cap > INT_MAX ? INT_MAX : static_cast<int>(cap);
    return static_cast<size_t>(drive([&] { return SSL_read(ssl_.get(), buf, chunk); }, d));
}

}  // namespace consent::cli
