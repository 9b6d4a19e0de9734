// redisReply -> RespValue (reply_view.h).
#include "cli/reply_view.h"

namespace consent::cli {

namespace {

// Nodes in the tree. hiredis nests at most a few levels deep, and the
// connection bounds a reply to 16 MB, so neither recursion nor the count
// can run away.
size_t count_nodes(const redisReply* r) {
    size_t n = 1;
    if (r->element)
        for (size_t i = 0; i < static_cast<size_t>(r->elements); i++) n += count_nodes(r->element[i]);
    return n;
}

RespValue::Type type_of(const redisReply* r) {
    switch (r->type) {
        case REDIS_REPLY_STRING: return RespValue::Type::string;
        case REDIS_REPLY_STATUS: return RespValue::Type::status;
        case REDIS_REPLY_ERROR: return RespValue::Type::error;
        case REDIS_REPLY_INTEGER: return RespValue::Type::integer;
        case REDIS_REPLY_NIL: return RespValue::Type::nil;
        case REDIS_REPLY_ARRAY: return RespValue::Type::array;
#ifdef REDIS_REPLY_MAP  // hiredis 1.x, RESP3: aggregates read as arrays
        case REDIS_REPLY_MAP:
        case REDIS_REPLY_SET:
        case REDIS_REPLY_PUSH:
            return RespValue::Type::array;
        case REDIS_REPLY_VERB: return RespValue::Type::string;
#endif
        default: return RespValue::Type::other;
    }
}

}  // namespace

ReplyView::ReplyView(const redisReply* r) {
    nodes_.reserve(count_nodes(r));
    nodes_.emplace_back();
    fill(r, 0);
}

void ReplyView::fill(const redisReply* r, size_t at) {
    RespValue v;
    v.type = type_of(r);
    if (r->str) v.str = std::string_view(r->str, r->len);
    if (v.type == RespValue::Type::integer) v.integer = r->integer;
    if (v.type == RespValue::Type::array && r->element && r->elements > 0) {
        const size_t n = static_cast<size_t>(r->elements);
        const size_t first = nodes_.size();
        nodes_.resize(first + n);  // within the reservation: no pointer moves
        v.elements = &nodes_[first];
        v.count = n;
        for (size_t i = 0; i < n; i++) fill(r->element[i], first + i);
    }
    nodes_[at] = v;
}

}  // namespace consent::cli
