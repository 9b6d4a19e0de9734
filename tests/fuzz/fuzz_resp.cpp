// fuzz_resp: resp_write_command over arbitrary arguments.
//
// Input layout: up to 16 arguments, each a length byte L then L bytes (the
// last one cut short by the end of the input). Properties: exactly
// resp_command_size() bytes are written, and they are exactly what hiredis'
// redisFormatCommandArgv makes of the same arguments; hiredis' reader reads
// them back as one complete reply, an array of bulk strings equal to the
// arguments, with no byte left over.
#include <hiredis/hiredis.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/resp.h"
#include "tests/fuzz/fuzz_check.h"

using namespace consent;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<std::string> args;
    for (size_t i = 0; i < size && args.size() < 16;) {
        const size_t len = data[i++];
        const size_t n = len < size - i ? len : size - i;
        args.emplace_back(reinterpret_cast<const char*>(data + i), n);
        i += n;
    }
    if (args.empty()) return 0;  // Redis has no command without a name

    std::vector<std::string_view> views(args.begin(), args.end());
    const size_t want = resp_command_size(views.data(), views.size());
    std::unique_ptr<char[]> out(new char[want + 1]);
    out[want] = '\x5a';  // a canary just past the end
    char* end = resp_write_command(out.get(), views.data(), views.size());
    FUZZ_CHECK(end == out.get() + want, "wrote %zu bytes, resp_command_size said %zu",
               static_cast<size_t>(end - out.get()), want);
    FUZZ_CHECK(out[want] == '\x5a', "wrote past resp_command_size()");

    // the reference formatter
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    char* ref = nullptr;
    const int n = redisFormatCommandArgv(&ref, static_cast<int>(args.size()), argv.data(), lens.data());
    FUZZ_CHECK(n > 0 && static_cast<size_t>(n) == want && std::memcmp(ref, out.get(), want) == 0,
               "differs from redisFormatCommandArgv for %zu arguments", args.size());
    std::free(ref);

    // read back
    redisReader* reader = redisReaderCreate();
    FUZZ_CHECK(reader != nullptr, "redisReaderCreate");
    FUZZ_CHECK(redisReaderFeed(reader, out.get(), want) == REDIS_OK, "feed");
    void* raw = nullptr;
    FUZZ_CHECK(redisReaderGetReply(reader, &raw) == REDIS_OK && raw != nullptr, "no complete reply");
    const redisReply* r = static_cast<const redisReply*>(raw);
    FUZZ_CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == args.size(), "not an array of %zu",
               args.size());
    for (size_t k = 0; k < args.size(); k++) {
        const redisReply* e = r->element[k];
        FUZZ_CHECK(e->type == REDIS_REPLY_STRING && static_cast<size_t>(e->len) == args[k].size()
                       && std::memcmp(e->str, args[k].data(), args[k].size()) == 0,
                   "argument %zu read back as something else", k);
    }
    void* more = nullptr;
    FUZZ_CHECK(redisReaderGetReply(reader, &more) == REDIS_OK && more == nullptr, "bytes left over");
    freeReplyObject(raw);
    redisReaderFree(reader);
    return 0;
}
