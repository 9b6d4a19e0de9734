/*
 * One Redis connection of a worker, on nginx's event loop.
 *
 * hiredis (0.14, async API) owns the socket and the protocol; this layer
 * owns everything hiredis lacks: the nginx event adapter, connect and
 * keepalive timeouts, reconnection with backoff, and the "known down" state
 * that lets callers fail fast instead of each waiting for a timeout.
 *
 * All timers are cancelable: a graceful shutdown never waits for them.
 * A connection to another server (a replica, a Sentinel-found primary) is
 * another instance of this object.
 */

#ifndef NGX_HTTP_CONSENT_REDIS_H_INCLUDED_
#define NGX_HTTP_CONSENT_REDIS_H_INCLUDED_

#include "ngx_module/ngx_http_consent_module.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>


typedef struct ngx_http_consent_redis_s  ngx_http_consent_redis_t;

typedef void (*ngx_http_consent_redis_pt)(ngx_http_consent_redis_t *rc);


struct ngx_http_consent_redis_s {
    redisAsyncContext                 *ac;
    ngx_connection_t                  *conn;
    ngx_http_consent_redis_server_t   *server;
    ngx_cycle_t                       *cycle;
    ngx_log_t                         *log;

    ngx_event_t                        connect_timer;  /* connect + handshake */
    ngx_event_t                        retry_timer;    /* reconnect backoff */
    ngx_event_t                        ping_timer;     /* keepalive, and its timeout */
    ngx_event_t                        close_event;    /* close outside hiredis */

    ngx_msec_t                         backoff;
    ngx_msec_t                         ping_every;
    ngx_http_consent_store_counter_e   close_reason;

    unsigned                           ready:1;        /* handshake done */
    unsigned                           down:1;         /* failed: fail fast */
    unsigned                           ping_pending:1;
    unsigned                           stopping:1;
    unsigned                           subscriber:1;

    /* the owner's hooks; any may be NULL */
    ngx_http_consent_redis_pt          on_ready;
    ngx_http_consent_redis_pt          on_down;

    void                              *data;
};


void ngx_http_consent_redis_init(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server, ngx_cycle_t *cycle,
    ngx_msec_t ping_every);

/* Connects now; on failure, retries with backoff on its own. */
void ngx_http_consent_redis_connect(ngx_http_consent_redis_t *rc);

/*
 * Drops the connection (pending commands get a NULL reply), marks it down
 * and schedules a reconnect. Safe from timers and event handlers; from
 * inside a hiredis callback use ngx_http_consent_redis_fail().
 */
void ngx_http_consent_redis_close(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason);

/* The same, deferred to a posted event: safe inside hiredis callbacks. */
void ngx_http_consent_redis_fail(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason);

/* Worker exit: drops the connection for good. */
void ngx_http_consent_redis_stop(ngx_http_consent_redis_t *rc);

/* Sends a command; NGX_ERROR when there is no connection to send it on. */
ngx_int_t ngx_http_consent_redis_send(ngx_http_consent_redis_t *rc,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen);

/*
 * True for a "message" push of a subscribed connection. (A subscribed
 * connection sends no PING: hiredis 0.14 cannot route its reply, see the
 * heartbeat in ngx_http_consent_lookup.cpp.)
 */
ngx_uint_t ngx_http_consent_redis_is_message(redisReply *reply);

#endif /* NGX_HTTP_CONSENT_REDIS_H_INCLUDED_ */
