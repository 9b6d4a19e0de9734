#include "store/record.h"

#include <cstring>

namespace consent {

namespace {

// Decimal digits only, no sign, at least one digit, and the value fits in
// 64 bits. Leading zeros are accepted ("007" is 7).
bool parse_u64(std::string_view s, uint64_t* out) noexcept {
    if (s.empty()) return false;
    uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<uint64_t>(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

// Index of `field` among the declared purposes, or -1.
int purpose_index(std::string_view field, const PurposeNames& purposes) noexcept {
    const size_t n = purposes.count < kMaxPurposes ? purposes.count : kMaxPurposes;
    for (size_t i = 0; i < n; i++)
        if (purposes.names[i] == field) return static_cast<int>(i);
    return -1;
}

}  // namespace

RecordParse parse_record(const std::string_view* items, size_t n, const PurposeNames& purposes,
                         Record* out) noexcept {
    if (n == 0) return RecordParse::none;
    if (n % 2 != 0) return RecordParse::malformed;

    Record r;
    for (size_t i = 0; i < n; i += 2) {
        const std::string_view field = items[i], value = items[i + 1];
        // The schema's own fields come first: they are never purposes.
        if (field == "v") {
            if (!parse_u64(value, &r.version)) return RecordParse::malformed;
        } else if (field == "exp") {
            if (!parse_u64(value, &r.exp)) return RecordParse::malformed;
            r.has_exp = true;
        } else if (field == "rev") {
            if (!parse_u64(value, &r.rev)) return RecordParse::malformed;
        } else if (field == "erased") {
            if (value == "1")
                r.erased = true;
            else if (value == "0")
                r.erased = false;
            else
                return RecordParse::malformed;
        } else {
            const int idx = purpose_index(field, purposes);
            if (idx < 0) continue;  // a purpose this edge does not declare
            const PurposeMask bit = purpose_bit(static_cast<unsigned>(idx));
            if (value == "1") {
                r.granted |= bit;
                r.denied &= ~bit;
            } else {  // "0", and anything malformed: never granted
                r.granted &= ~bit;
                r.denied |= bit;
            }
        }
    }
    *out = r;
    return RecordParse::ok;
}

size_t record_key(std::string_view prefix, std::string_view subject, char* out) noexcept {
    char* o = out;
    if (!prefix.empty()) std::memcpy(o, prefix.data(), prefix.size());
    o += prefix.size();
    *o++ = '{';
    if (!subject.empty()) std::memcpy(o, subject.data(), subject.size());
    o += subject.size();
    *o++ = '}';
    return static_cast<size_t>(o - out);
}

bool parse_update(std::string_view message, UpdateMessage* out) noexcept {
    if (message == "*") {
        out->flush_all = true;
        out->subject = {};
        out->version = 0;
        return true;
    }
    const size_t sp = message.rfind(' ');
    if (sp == std::string_view::npos) return false;
    const std::string_view subject = message.substr(0, sp);
    if (subject.empty() || subject.size() > 64) return false;
    for (const char c : subject)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) return false;
    uint64_t version;
    if (!parse_u64(message.substr(sp + 1), &version)) return false;
    out->flush_all = false;
    out->subject = subject;
    out->version = version;
    return true;
}

}  // namespace consent
