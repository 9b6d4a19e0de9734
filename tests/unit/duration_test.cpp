#include "cli/duration.h"

#include <gtest/gtest.h>

using consent::parse_duration;

TEST(Duration, NginxForms) {
    EXPECT_EQ(parse_duration("30s"), 30u);
    EXPECT_EQ(parse_duration("10m"), 600u);
    EXPECT_EQ(parse_duration("12h"), 43200u);
    EXPECT_EQ(parse_duration("30d"), 2592000u);
    EXPECT_EQ(parse_duration("2w"), 1209600u);
    EXPECT_EQ(parse_duration("1M"), 2592000u);
    EXPECT_EQ(parse_duration("1y"), 31536000u);
    EXPECT_EQ(parse_duration("90"), 90u);
    EXPECT_EQ(parse_duration("1h30m"), 5400u);
    EXPECT_EQ(parse_duration("1h 30m"), 5400u);
}

TEST(Duration, RejectsBad) {
    for (const char* bad : {"", "s", "-1s", "1x", "1.5h", "abc", "10ms", "h1", "99999999999999999999y"})
        EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
}
