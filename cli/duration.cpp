#include "cli/duration.h"

namespace consent {

std::optional<uint64_t> parse_duration(std::string_view s) {
    // Bounded well below UINT64_MAX so that now + duration cannot overflow.
    constexpr uint64_t kMax = uint64_t(1) << 48;
    if (s.empty()) return std::nullopt;
    uint64_t total = 0;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') i++;
        if (i == s.size()) break;
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
        uint64_t n = 0;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            n = n * 10 + uint64_t(s[i++] - '0');
            if (n > kMax) return std::nullopt;
        }
        uint64_t unit = 1;
        if (i < s.size()) {
            switch (s[i]) {
                case 'y': unit = 365 * 86400; break;
                case 'M': unit = 30 * 86400; break;
                case 'w': unit = 7 * 86400; break;
                case 'd': unit = 86400; break;
                case 'h': unit = 3600; break;
                case 'm': unit = 60; break;
                case 's': unit = 1; break;
                case ' ': unit = 1; i--; break;
                default: return std::nullopt;
            }
            i++;
        }
        if (n > kMax / unit) return std::nullopt;
        total += n * unit;
        if (total > kMax) return std::nullopt;
    }
    return total;
}

}  // namespace consent
