/*
 * hiredis' replies as the pure parsers of store/ read them
 * (store/redis_roles.h: ROLE, what Sentinels answer).
 */

#ifndef NGX_HTTP_CONSENT_REDIS_REPLY_H_INCLUDED_
#define NGX_HTTP_CONSENT_REDIS_REPLY_H_INCLUDED_

#include <hiredis/hiredis.h>

#include "store/redis_roles.h"


/*
 * The reply as a RespValue tree, in this worker's scratch space: valid
 * until the next call, and the reply must outlive it (the tree points into
 * it). NULL when the reply has more values than the scratch space holds,
 * which no answer the edge asks for comes near: the caller treats that as
 * a malformed answer.
 */
const consent::RespValue *ngx_http_consent_resp_view(const redisReply *reply);

#endif /* NGX_HTTP_CONSENT_REDIS_REPLY_H_INCLUDED_ */
