/*
 * Inside a Redis connection (ngx_http_consent_redis.h): the bytes on it.
 * Only ngx_http_consent_redis.cpp, which makes and loses connections,
 * includes this.
 */

#ifndef NGX_HTTP_CONSENT_REDIS_IO_H_INCLUDED_
#define NGX_HTTP_CONSENT_REDIS_IO_H_INCLUDED_

#include "ngx_module/ngx_http_consent_redis.h"


/* The buffers, once per connection object. */
ngx_int_t ngx_http_consent_redis_io_init(ngx_http_consent_redis_t *rc);
void ngx_http_consent_redis_io_free(ngx_http_consent_redis_t *rc);

/* A new attempt: a fresh reader, nothing queued. */
ngx_int_t ngx_http_consent_redis_io_start(ngx_http_consent_redis_t *rc);

/* The socket (and TLS) is up: what was queued goes out, replies come in. */
void ngx_http_consent_redis_io_established(ngx_http_consent_redis_t *rc);

/*
 * Tears the attempt or connection down: the resolver query, the socket,
 * the reader, the unsent commands; every command still waiting gets a NULL
 * reply. The caller then counts and schedules what follows.
 */
void ngx_http_consent_redis_io_drop(ngx_http_consent_redis_t *rc);

#endif /* NGX_HTTP_CONSENT_REDIS_IO_H_INCLUDED_ */
