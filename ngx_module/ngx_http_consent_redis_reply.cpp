/*
 * hiredis' reply tree copied, as views, into the pure parsers' RespValue.
 * A worker is one thread, and a reply is read to the end before the next
 * comes in, so one scratch array serves every call.
 */

#include "ngx_module/ngx_http_consent_redis_reply.h"


/* SENTINEL replicas of 16 replicas of ~40 fields each takes about 660 */
#define NGX_HTTP_CONSENT_RESP_VALUES  2048


static consent::RespValue  ngx_http_consent_resp_scratch[NGX_HTTP_CONSENT_RESP_VALUES];


/* Fills *v from r, its elements at scratch[*used...]; false when full. */
static bool
ngx_http_consent_resp_fill(const redisReply *r, consent::RespValue *v,
    size_t *used)
{
    size_t               i;
    consent::RespValue  *elements;

    *v = consent::RespValue();

    switch (r->type) {

    case REDIS_REPLY_STRING:
        v->type = consent::RespValue::Type::string;
        v->str = std::string_view(r->str, r->len);
        return true;

    case REDIS_REPLY_STATUS:
        v->type = consent::RespValue::Type::status;
        v->str = std::string_view(r->str, r->len);
        return true;

    case REDIS_REPLY_ERROR:
        v->type = consent::RespValue::Type::error;
        v->str = std::string_view(r->str, r->len);
        return true;

    case REDIS_REPLY_INTEGER:
        v->type = consent::RespValue::Type::integer;
        v->integer = r->integer;
        return true;

    case REDIS_REPLY_NIL:
        v->type = consent::RespValue::Type::nil;
        return true;

    case REDIS_REPLY_ARRAY:
        if (r->elements > NGX_HTTP_CONSENT_RESP_VALUES - *used) {
            return false;
        }

        elements = &ngx_http_consent_resp_scratch[*used];
        *used += r->elements;

        for (i = 0; i < r->elements; i++) {
            if (!ngx_http_consent_resp_fill(r->element[i], &elements[i], used)) {
                return false;
            }
        }

        v->type = consent::RespValue::Type::array;
        v->elements = elements;
        v->count = r->elements;
        return true;

    default:
        /* RESP3 types hiredis 1.x knows; the edge speaks RESP2 */
        v->type = consent::RespValue::Type::other;
        return true;
    }
}


const consent::RespValue *
ngx_http_consent_resp_view(const redisReply *reply)
{
    size_t  used = 1;

    if (!ngx_http_consent_resp_fill(reply, &ngx_http_consent_resp_scratch[0],
                                    &used))
    {
        return NULL;
    }

    return &ngx_http_consent_resp_scratch[0];
}
