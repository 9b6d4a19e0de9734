// Durations in nginx's notation: "30s", "10m", "12h", "30d", "1y", and
// sums such as "1h30m". A bare number means seconds.
// Units: y (365 days), M (30 days), w, d, h, m, s.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace consent {

// Seconds, or nullopt for a malformed or overflowing duration.
std::optional<uint64_t> parse_duration(std::string_view text);

}  // namespace consent
