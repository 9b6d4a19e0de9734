// A hiredis reply seen as store/redis_roles.h's RespValue, so that the pure
// parsers there (ROLE, SENTINEL replies) read what a RedisConnection got.
// The view points into the redisReply: keep that alive as long as the view.
#pragma once

#include <hiredis/hiredis.h>

#include <vector>

#include "store/redis_roles.h"

namespace consent::cli {

class ReplyView {
public:
    explicit ReplyView(const redisReply* r);
    ReplyView(const ReplyView&) = delete;
    ReplyView& operator=(const ReplyView&) = delete;

    const RespValue& root() const { return nodes_.front(); }

private:
    void fill(const redisReply* r, size_t at);
    // Every node, each array's elements contiguous; reserved up front so
    // that the elements pointers stay valid.
    std::vector<RespValue> nodes_;
};

}  // namespace consent::cli
