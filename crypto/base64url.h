// base64url (RFC 4648 section 5) without padding.
//
// The decoder is a plain table lookup: tokens are public data, so a
// constant-time decoder (libsodium's sodium_base642bin) would only add cost,
// and on a 100-byte token it costs more than the AEAD check that follows.
// It is strict: padding, characters outside the alphabet, an impossible
// length or non-zero trailing bits are rejected, so every token has exactly
// one text form.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace consent {

// Bytes needed to decode `text_len` characters (an upper bound).
constexpr size_t base64url_decoded_max(size_t text_len) { return text_len / 4 * 3 + 2; }

// Characters produced by encoding `len` bytes.
constexpr size_t base64url_encoded_len(size_t len) { return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0); }

// Decodes `text` into `out` (capacity `cap`). Returns the number of bytes
// written, or -1 on any malformed input or when `cap` is too small.
long base64url_decode(std::string_view text, uint8_t* out, size_t cap) noexcept;

// Encodes `len` bytes into `out`, which must hold base64url_encoded_len(len)
// characters. Returns the number of characters written.
size_t base64url_encode(const uint8_t* in, size_t len, char* out) noexcept;

}  // namespace consent
