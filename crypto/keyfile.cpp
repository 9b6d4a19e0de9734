#include "crypto/keyfile.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace consent {

KeyBytes::~KeyBytes() { sodium_memzero(b, sizeof b); }

namespace {

constexpr size_t kMaxKeyFile = 4096;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Drops one final "\n" or "\r\n"; any other trailing byte stays and fails.
std::string_view strip_final_newline(std::string_view t) {
    if (!t.empty() && t.back() == '\n') {
        t.remove_suffix(1);
        if (!t.empty() && t.back() == '\r') t.remove_suffix(1);
    }
    return t;
}

bool parse_hex_key(std::string_view hex, KeyBytes* key, std::string* err) {
    if (hex.size() != 2 * kKeyBytes) {
        *err = "key must be 64 hex characters, found " + std::to_string(hex.size()) + " characters";
        return false;
    }
    for (size_t i = 0; i < kKeyBytes; i++) {
        const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            *err = "key contains a non-hex character";
            return false;
        }
        key->b[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return true;
}

}  // namespace

bool parse_key_text(std::string_view text, Suite* suite, KeyBytes* key, std::string* err) {
    const std::string_view line = strip_final_newline(text);
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos || line.find('\n') != std::string_view::npos) {
        *err = "expected one line '<suite> <64 hex chars>'";
        return false;
    }
    const auto s = suite_from_name(line.substr(0, sp));
    if (!s) {
        *err = "unknown suite, expected xchacha20poly1305 or aes256gcm";
        return false;
    }
    if (!parse_hex_key(line.substr(sp + 1), key, err)) return false;
    *suite = *s;
    return true;
}

bool parse_pseudonym_key_text(std::string_view text, KeyBytes* key, std::string* err) {
    const std::string_view line = strip_final_newline(text);
    if (line.find('\n') != std::string_view::npos) {
        *err = "expected one line of 64 hex chars";
        return false;
    }
    return parse_hex_key(line, key, err);
}

long read_secret_file(const char* path, char* buf, size_t cap, std::string* err) {
    // O_NONBLOCK: opening a FIFO (or a device) would otherwise wait for a
    // writer, and hang nginx -t, a reload or consentctl; it is refused below
    // as not a regular file. A regular file reads the same either way.
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        *err = std::string("cannot open: ") + std::strerror(errno);
        return -1;
    }
    struct stat st;
    long n = -1;
    if (fstat(fd, &st) != 0) {
        *err = std::string("cannot stat: ") + std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        *err = "not a regular file";
    } else if (st.st_mode & (S_IRGRP | S_IROTH)) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        *err = std::string("readable by group or others (mode ") + mode + "); chmod 600 it";
    } else if (static_cast<size_t>(st.st_size) > cap) {
        *err = "too large for a key file";
    } else {
        size_t got = 0;
        for (;;) {
            const ssize_t r = ::read(fd, buf + got, cap - got);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                *err = std::string("cannot read: ") + std::strerror(errno);
                got = SIZE_MAX;
                break;
            }
            if (r == 0) break;
            got += static_cast<size_t>(r);
            if (got == cap) {
                *err = "too large for a key file";
                got = SIZE_MAX;
                break;
            }
        }
        if (got != SIZE_MAX) n = static_cast<long>(got);
    }
    ::close(fd);
    return n;
}

bool load_key_file(const char* path, Suite* suite, KeyBytes* key, std::string* err) {
    char buf[kMaxKeyFile];
    const long n = read_secret_file(path, buf, sizeof buf, err);
    const bool ok = n >= 0 && parse_key_text(std::string_view(buf, static_cast<size_t>(n)), suite, key, err);
    sodium_memzero(buf, sizeof buf);
    return ok;
}

bool load_pseudonym_key_file(const char* path, KeyBytes* key, std::string* err) {
    char buf[kMaxKeyFile];
    const long n = read_secret_file(path, buf, sizeof buf, err);
    const bool ok = n >= 0 && parse_pseudonym_key_text(std::string_view(buf, static_cast<size_t>(n)), key, err);
    sodium_memzero(buf, sizeof buf);
    return ok;
}

void hex_encode(const uint8_t* in, size_t len, char* out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

}  // namespace consent
