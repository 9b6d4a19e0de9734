// The Lua write script published in docs/redis-schema.md must be, byte for
// byte, the one consentctl runs (store/write_script.h).
#include "store/write_script.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

namespace {

// The contents of every ```lua fenced block, each line ending in '\n'.
std::vector<std::string> lua_blocks(const char* path) {
    std::ifstream in(path);
    EXPECT_TRUE(in.good()) << path;
    std::vector<std::string> blocks;
    std::string line;
    bool in_lua = false, in_other = false;
    while (std::getline(in, line)) {
        if (line.rfind("```", 0) == 0) {
            if (in_lua) {
                in_lua = false;
            } else if (in_other) {
                in_other = false;
            } else if (line == "```lua") {
                in_lua = true;
                blocks.emplace_back();
            } else {
                in_other = true;
            }
            continue;
        }
        if (in_lua) blocks.back() += line + "\n";
    }
    EXPECT_FALSE(in_lua) << "unterminated ```lua block";
    return blocks;
}

}  // namespace

TEST(WriteScript, DocumentedScriptIsTheOneConsentctlRuns) {
    const auto blocks = lua_blocks(CONSENT_SOURCE_DIR "/docs/redis-schema.md");
    ASSERT_EQ(blocks.size(), 1u) << "docs/redis-schema.md must hold exactly one ```lua block: the script";
    EXPECT_EQ(blocks[0], std::string(consent::kWriteScript));
}

TEST(WriteScript, ShapeOfTheConstant) {
    const std::string s = consent::kWriteScript;
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.back(), '\n');
    EXPECT_EQ(s.find('\r'), std::string::npos);
    EXPECT_EQ(s.find('\t'), std::string::npos);
    for (const char* needle : {"KEYS[1]", "ARGV[1]", "ARGV[2]", "ARGV[3]", "'replace'", "'merge'", "HINCRBY",
                               "PUBLISH", "return v"})
        EXPECT_NE(s.find(needle), std::string::npos) << needle;
}
