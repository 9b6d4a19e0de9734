#include "store/resp.h"

#include <cstring>

namespace consent {

namespace {

size_t decimal_digits(size_t n) noexcept {
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

// "<tag><n>\r\n"
char* write_header(char* out, char tag, size_t n) noexcept {
    const size_t d = decimal_digits(n);
    *out++ = tag;
    for (size_t i = d; i > 0; i--) {
        out[i - 1] = static_cast<char>('0' + n % 10);
        n /= 10;
    }
    out += d;
    *out++ = '\r';
    *out++ = '\n';
    return out;
}

}  // namespace

size_t resp_command_size(const std::string_view* argv, size_t argc) noexcept {
    size_t size = 1 + decimal_digits(argc) + 2;
    for (size_t i = 0; i < argc; i++) {
        size += 1 + decimal_digits(argv[i].size()) + 2 + argv[i].size() + 2;
    }
    return size;
}

char* resp_write_command(char* out, const std::string_view* argv, size_t argc) noexcept {
    out = write_header(out, '*', argc);
    for (size_t i = 0; i < argc; i++) {
        out = write_header(out, '$', argv[i].size());
        if (!argv[i].empty()) {
            std::memcpy(out, argv[i].data(), argv[i].size());
            out += argv[i].size();
        }
        *out++ = '\r';
        *out++ = '\n';
    }
    return out;
}

}  // namespace consent
