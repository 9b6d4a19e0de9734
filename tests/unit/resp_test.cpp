#include "store/resp.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace consent;

namespace {

std::string format(const std::vector<std::string>& args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    std::string out(resp_command_size(views.data(), views.size()), '\0');
    char* end = resp_write_command(out.data(), views.data(), views.size());
    EXPECT_EQ(end, out.data() + out.size()) << "resp_command_size disagrees with what was written";
    return out;
}

// hiredis' own formatter, the reference.
std::string hiredis_format(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* cmd = nullptr;
    const int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
    EXPECT_GT(n, 0);
    std::string out(cmd, static_cast<size_t>(n));
    std::free(cmd);
    return out;
}

TEST(Resp, HgetallAsOnTheWire) {
    EXPECT_EQ(format({"HGETALL", "consent:{cust-42}"}),
              "*2\r\n$7\r\nHGETALL\r\n$17\r\nconsent:{cust-42}\r\n");
}

TEST(Resp, EmptyAndBinaryArguments) {
    EXPECT_EQ(format({"PING"}), "*1\r\n$4\r\nPING\r\n");
    EXPECT_EQ(format({"SET", "", std::string("a\0\r\nb", 5)}),
              std::string("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\0\r\nb\r\n", 30));
}

TEST(Resp, LengthsAcrossDigitBoundaries) {
    for (size_t len : {0u, 1u, 9u, 10u, 99u, 100u, 999u, 1000u, 65536u}) {
        const std::vector<std::string> args = {"AUTH", std::string(len, 'x')};
        EXPECT_EQ(format(args), hiredis_format(args)) << "length " << len;
    }
    std::vector<std::string> many(12, "a");  // argc of two digits
    EXPECT_EQ(format(many), hiredis_format(many));
}

TEST(Resp, AgreesWithHiredisOnRandomCommands) {
    std::mt19937 rng(20261205);
    for (int round = 0; round < 2000; round++) {
        std::vector<std::string> args(1 + rng() % 6);
        for (auto& a : args) {
            a.resize(rng() % 300);
            for (auto& c : a) c = static_cast<char>(rng());
        }
        ASSERT_EQ(format(args), hiredis_format(args)) << "round " << round;
    }
}

}  // namespace
