// Key files: reading them safely and parsing them strictly.
//
//   token key file:      "<suite> <64 hex chars>"   (suite xchacha20poly1305 | aes256gcm)
//   pseudonym key file:  "<64 hex chars>"
//
// One line, an optional final newline, nothing else. Anything looser would
// let a half-pasted or concatenated key file load silently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/key.h"

namespace consent {

// 32 key bytes that wipe themselves.
struct KeyBytes {
    uint8_t b[kKeyBytes]{};
    KeyBytes() = default;
    KeyBytes(const KeyBytes&) = delete;
    KeyBytes& operator=(const KeyBytes&) = delete;
    ~KeyBytes();
};

// Parses the text of a token key file. On failure sets *err to a short
// reason ("expected '<suite> <64 hex chars>'", ...).
bool parse_key_text(std::string_view text, Suite* suite, KeyBytes* key, std::string* err);

// Parses the text of a pseudonym key file.
bool parse_pseudonym_key_text(std::string_view text, KeyBytes* key, std::string* err);

// Reads a secret file into `buf` (capacity `cap`), refusing anything that is
// not a regular file, is readable by group or others, or is larger than
// `cap`. Returns the length read, or -1 with *err set. The caller wipes buf.
long read_secret_file(const char* path, char* buf, size_t cap, std::string* err);

// read_secret_file + parse_*_text, wiping the buffer. *err names the reason.
bool load_key_file(const char* path, Suite* suite, KeyBytes* key, std::string* err);
bool load_pseudonym_key_file(const char* path, KeyBytes* key, std::string* err);

// Lowercase hex of `len` bytes into `out` (2 * len chars, no terminator).
void hex_encode(const uint8_t* in, size_t len, char* out);

}  // namespace consent
