// Shared helpers for the libFuzzer targets (tests/fuzz/*.cpp).
//
// FUZZ_CHECK aborts with a message when a property fails, so libFuzzer
// records the input as a crash artifact exactly like a sanitizer report.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            std::fprintf(stderr, "\n%s:%d: property failed: %s\n  ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                                 \
            std::fprintf(stderr, "\n");                                                        \
            std::abort();                                                                      \
        }                                                                                      \
    } while (0)

namespace fuzz {

// Printable, escaped form of arbitrary bytes for failure messages.
inline std::string show(std::string_view s) {
    std::string o = "\"";
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            o += static_cast<char>(c);
        } else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            o += b;
        }
    }
    return o + "\"";
}

}  // namespace fuzz
