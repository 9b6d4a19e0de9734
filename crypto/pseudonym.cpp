#include "crypto/pseudonym.h"

#include <sodium.h>

#include <cstring>

#include "crypto/keyfile.h"

namespace consent {

PseudonymKey::PseudonymKey(const uint8_t bytes[kKeyBytes]) { std::memcpy(key_, bytes, kKeyBytes); }

PseudonymKey::~PseudonymKey() { sodium_memzero(key_, sizeof key_); }

void PseudonymKey::pseudonym(std::string_view subject, char out[kPseudonymHex]) const noexcept {
    uint8_t h[kPseudonymBytes];
    crypto_generichash(h, sizeof h, reinterpret_cast<const uint8_t*>(subject.data()), subject.size(), key_,
                       sizeof key_);
    hex_encode(h, sizeof h, out);
}

}  // namespace consent
