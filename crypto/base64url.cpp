#include "crypto/base64url.h"

#include <array>

namespace consent {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// Four tables, one per position in a quantum, hold each sextet already
// shifted into place, so a quantum decodes with four loads and three ORs.
// An invalid character carries kBadBit, which no shifted sextet can set;
// the loop ORs every quantum into one accumulator and checks once at the end.
constexpr uint32_t kBadBit = 1u << 24;

constexpr std::array<uint32_t, 256> make_table(int shift) {
    std::array<uint32_t, 256> t{};
    for (auto& v : t) v = kBadBit;
    for (uint32_t i = 0; i < 64; i++) t[static_cast<uint8_t>(kAlphabet[i])] = i << shift;
    return t;
}

constexpr std::array<uint32_t, 256> kD0 = make_table(18), kD1 = make_table(12), kD2 = make_table(6),
                                     kD3 = make_table(0);

}  // namespace

long base64url_decode(std::string_view text, uint8_t* out, size_t cap) noexcept {
    const size_t n = text.size();
    const size_t rem = n % 4;
    if (rem == 1) return -1;  // one character carries only 6 bits: never valid
    const size_t need = n / 4 * 3 + (rem ? rem - 1 : 0);
    if (need > cap) return -1;

    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    uint8_t* o = out;
    uint32_t bad = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t v = kD0[s[i]] | kD1[s[i + 1]] | kD2[s[i + 2]] | kD3[s[i + 3]];
        bad |= v;
        o[0] = static_cast<uint8_t>(v >> 16);
        o[1] = static_cast<uint8_t>(v >> 8);
        o[2] = static_cast<uint8_t>(v);
        o += 3;
    }
    if (rem == 2) {
        const uint32_t v = kD0[s[i]] | kD1[s[i + 1]];
        bad |= v | (v & 0xffff ? kBadBit : 0);  // trailing bits must be zero
        *o++ = static_cast<uint8_t>(v >> 16);
    } else if (rem == 3) {
        const uint32_t v = kD0[s[i]] | kD1[s[i + 1]] | kD2[s[i + 2]];
        bad |= v | (v & 0xff ? kBadBit : 0);
        *o++ = static_cast<uint8_t>(v >> 16);
        *o++ = static_cast<uint8_t>(v >> 8);
    }
    if (bad & kBadBit) return -1;
    return static_cast<long>(o - out);
}

size_t base64url_encode(const uint8_t* in, size_t len, char* out) noexcept {
    char* o = out;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        const uint32_t v = uint32_t(in[i]) << 16 | uint32_t(in[i + 1]) << 8 | in[i + 2];
        *o++ = kAlphabet[v >> 18 & 63];
        *o++ = kAlphabet[v >> 12 & 63];
        *o++ = kAlphabet[v >> 6 & 63];
        *o++ = kAlphabet[v & 63];
    }
    if (len - i == 1) {
        const uint32_t v = uint32_t(in[i]) << 16;
        *o++ = kAlphabet[v >> 18 & 63];
        *o++ = kAlphabet[v >> 12 & 63];
    } else if (len - i == 2) {
        const uint32_t v = uint32_t(in[i]) << 16 | uint32_t(in[i + 1]) << 8;
        *o++ = kAlphabet[v >> 18 & 63];
        *o++ = kAlphabet[v >> 12 & 63];
        *o++ = kAlphabet[v >> 6 & 63];
    }
    return static_cast<size_t>(o - out);
}

}  // namespace consent
