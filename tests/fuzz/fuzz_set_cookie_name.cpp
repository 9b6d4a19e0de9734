// fuzz_set_cookie_name: set_cookie_name over arbitrary Set-Cookie values.
//
// Properties: the name is a sub-range of the input (never bytes outside
// it), lies before the first '=' or ';', holds neither, has no leading or
// trailing space or tab, and is exactly the reference: the bytes before the
// first '=' or ';' with surrounding spaces and tabs removed. find_cookie
// on "NAME=v" finds it again when it is not empty.
#include <cstring>
#include <memory>
#include <string_view>

#include "policy/cookie_rewrite.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<char[]> buf(new char[size]);
    if (size) std::memcpy(buf.get(), data, size);
    // An empty input is passed as a default string_view, {nullptr, 0}, as
    // callers do: UBSan then checks that nothing memcpy()s from it.
    const std::string_view value = size ? std::string_view(buf.get(), size) : std::string_view();
    const std::string shown = fuzz::show(value);

    const std::string_view name = set_cookie_name(value);
    if (!name.empty()) {
        FUZZ_CHECK(name.data() >= value.data() && name.data() + name.size() <= value.data() + value.size(),
                   "name outside the input %s", shown.c_str());
        FUZZ_CHECK(name.front() != ' ' && name.front() != '\t' && name.back() != ' ' && name.back() != '\t',
                   "name %s of %s not trimmed", fuzz::show(name).c_str(), shown.c_str());
        FUZZ_CHECK(name.find_first_of("=;") == std::string_view::npos, "name %s holds '=' or ';'",
                   fuzz::show(name).c_str());
    }
    // The reference.
    size_t end = 0;
    while (end < size && value[end] != '=' && value[end] != ';') end++;
    size_t b = 0, e = end;
    while (b < e && (value[b] == ' ' || value[b] == '\t')) b++;
    while (e > b && (value[e - 1] == ' ' || value[e - 1] == '\t')) e--;
    FUZZ_CHECK(name == value.substr(b, e - b), "set_cookie_name(%s) = %s", shown.c_str(), fuzz::show(name).c_str());
    if (!name.empty()) FUZZ_CHECK(name.data() == value.data() + b, "name not at its place in the input");

    // The name a Set-Cookie sets is the one a Cookie header then carries.
    if (!name.empty()) {
        const std::string cookie = std::string(name) + "=v";
        std::string_view v;
        FUZZ_CHECK(find_cookie(cookie, name, &v) && v == "v", "find_cookie does not find %s",
                   fuzz::show(name).c_str());
    }
    return 0;
}
