// fuzz_keyfile: parse_key_text and parse_pseudonym_key_text over arbitrary
// text.
//
// Properties: neither crashes; each returns true exactly when the text is
// "<suite> <64 hex>" (token key) or "<64 hex>" (pseudonym key) followed by
// at most one "\n" or "\r\n" and nothing else, and then yields the suite
// and the 32 bytes the hex spells; on false, *err says why.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "crypto/keyfile.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;

namespace {

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The reference reading of the format, written independently of the parser.
std::string_view without_final_newline(std::string_view t) {
    if (t.size() >= 2 && t.substr(t.size() - 2) == "\r\n") return t.substr(0, t.size() - 2);
    if (!t.empty() && t.back() == '\n') return t.substr(0, t.size() - 1);
    return t;
}

bool ref_hex(std::string_view h, uint8_t out[kKeyBytes]) {
    if (h.size() != 2 * kKeyBytes) return false;
    for (size_t i = 0; i < kKeyBytes; i++) {
        const int hi = hex(h[2 * i]), lo = hex(h[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    return true;
}

bool ref_key(std::string_view text, Suite* suite, uint8_t out[kKeyBytes]) {
    const std::string_view line = without_final_newline(text);
    for (const auto& [name, s] : {std::pair<std::string_view, Suite>{"xchacha20poly1305 ", Suite::xchacha20poly1305},
                                  std::pair<std::string_view, Suite>{"aes256gcm ", Suite::aes256gcm}}) {
        if (line.substr(0, name.size()) == name) {
            *suite = s;
            return ref_hex(line.substr(name.size()), out);
        }
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // Exactly the input's bytes on the heap: ASan catches a read past them.
    std::unique_ptr<char[]> buf(new char[size ? size : 1]);
    if (size) std::memcpy(buf.get(), data, size);
    // An empty input is passed as a default string_view, {nullptr, 0}, as
    // callers do: UBSan then checks that nothing memcpy()s from it.
    const std::string_view text = size ? std::string_view(buf.get(), size) : std::string_view();
    const std::string shown = fuzz::show(text);

    {
        Suite suite = Suite::aes256gcm, want_suite = Suite::aes256gcm;
        KeyBytes key;
        uint8_t want[kKeyBytes] = {};
        std::string err;
        const bool ok = parse_key_text(text, &suite, &key, &err);
        const bool want_ok = ref_key(text, &want_suite, want);
        FUZZ_CHECK(ok == want_ok, "parse_key_text(%s) = %d, reference says %d (%s)", shown.c_str(), ok, want_ok,
                   err.c_str());
        if (ok) {
            FUZZ_CHECK(suite == want_suite, "suite of %s", shown.c_str());
            FUZZ_CHECK(std::memcmp(key.b, want, kKeyBytes) == 0, "key bytes of %s", shown.c_str());
        } else {
            FUZZ_CHECK(!err.empty(), "no reason given for %s", shown.c_str());
        }
    }
    {
        KeyBytes key;
        uint8_t want[kKeyBytes] = {};
        std::string err;
        const bool ok = parse_pseudonym_key_text(text, &key, &err);
        const bool want_ok = ref_hex(without_final_newline(text), want);
        FUZZ_CHECK(ok == want_ok, "parse_pseudonym_key_text(%s) = %d, reference says %d (%s)", shown.c_str(), ok,
                   want_ok, err.c_str());
        if (ok)
            FUZZ_CHECK(std::memcmp(key.b, want, kKeyBytes) == 0, "key bytes of %s", shown.c_str());
        else
            FUZZ_CHECK(!err.empty(), "no reason given for %s", shown.c_str());
    }
    return 0;
}
