// Pseudonyms: what the backend sees instead of the customer id.
// Keyed BLAKE2b (libsodium crypto_generichash), 16-byte output, lowercase hex.
// Without the pseudonym key nobody can link a pseudonym back to a subject.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "crypto/key.h"

namespace consent {

constexpr size_t kPseudonymBytes = 16;
constexpr size_t kPseudonymHex = 2 * kPseudonymBytes;

class PseudonymKey {
public:
    explicit PseudonymKey(const uint8_t bytes[kKeyBytes]);
    ~PseudonymKey();
    PseudonymKey(const PseudonymKey&) = delete;
    PseudonymKey& operator=(const PseudonymKey&) = delete;

    // Writes kPseudonymHex lowercase hex chars to `out` (no terminator).
    void pseudonym(std::string_view subject, char out[kPseudonymHex]) const noexcept;

private:
    uint8_t key_[kKeyBytes];
};

}  // namespace consent
