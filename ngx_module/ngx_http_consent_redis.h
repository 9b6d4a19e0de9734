/*
 * One Redis connection of a worker, on nginx's own I/O.
 *
 * nginx makes the connection (ngx_event_connect_peer: its connection
 * accounting, its SSL, its resolver, its timers); hiredis only parses the
 * replies (its reader, no I/O of its own); store/resp.h writes the
 * commands. This layer adds what a Redis client needs on top: the
 * handshake (AUTH, SELECT, PING), replies matched to their commands in
 * order, a cap on a reply's size, keepalive pings, reconnection with
 * backoff, and the "known down" state that lets callers fail fast instead
 * of each waiting for a timeout.
 *
 * All timers are cancelable: a graceful shutdown never waits for them.
 * Each user of a connection (lookups, the subscription, a replica, a
 * Sentinel) is another instance of this object.
 */

#ifndef NGX_HTTP_CONSENT_REDIS_H_INCLUDED_
#define NGX_HTTP_CONSENT_REDIS_H_INCLUDED_

#include "ngx_module/ngx_http_consent_module.h"

#include <hiredis/hiredis.h>

#include <string_view>


typedef struct ngx_http_consent_redis_s  ngx_http_consent_redis_t;

typedef void (*ngx_http_consent_redis_pt)(ngx_http_consent_redis_t *rc);

/*
 * A command's reply; NULL when the connection went before it came. The
 * handler may close the connection, or send more.
 */
typedef void (*ngx_http_consent_redis_reply_pt)(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data);

typedef struct {
    ngx_http_consent_redis_reply_pt  handler;   /* NULL: the reply is dropped */
    void                            *data;
} ngx_http_consent_redis_wait_t;


/* what a connection expects of its server's ROLE */
#define NGX_HTTP_CONSENT_ROLE_ANY      0   /* not asked: PING */
#define NGX_HTTP_CONSENT_ROLE_PRIMARY  1   /* ROLE: master */
#define NGX_HTTP_CONSENT_ROLE_REPLICA  2   /* ROLE: slave, its link up */
#define NGX_HTTP_CONSENT_ROLE_READABLE 3   /* either: its data is current */


struct ngx_http_consent_redis_s {
    ngx_peer_connection_t              peer;       /* .connection: the socket */
    ngx_http_consent_redis_server_t   *server;
    ngx_http_consent_main_conf_t      *cmcf;       /* TLS, the resolver */
    ngx_cycle_t                       *cycle;

    /* the connection's log: nginx's own messages name the server */
    ngx_log_t                          log;

    ngx_resolver_ctx_t                *resolving;
    ngx_uint_t                         next_addr;  /* rotates after failures */
    ngx_sockaddr_t                     sockaddr;   /* this or the last attempt */
    socklen_t                          socklen;
    ngx_str_t                          addr_text;
    u_char                             addr_buf[NGX_SOCKADDR_STRLEN];

    redisReader                       *reader;
    size_t                             partial;    /* bytes of the reply being
                                                      read, so far */

    /* commands not written yet: out[out_pos, out_len) */
    u_char                            *out;
    size_t                             out_pos;
    size_t                             out_len;
    size_t                             out_size;

    /* who waits for the replies, in the order the commands went */
    ngx_http_consent_redis_wait_t     *waits;
    ngx_uint_t                         wait_head;
    ngx_uint_t                         wait_count;
    ngx_uint_t                         wait_size;

    ngx_event_t                        connect_timer;  /* until ready */
    ngx_event_t                        retry_timer;    /* reconnect backoff */
    ngx_event_t                        ping_timer;     /* keepalive */

    ngx_msec_t                         backoff;
    ngx_msec_t                         ping_every;
    ngx_msec_t                         started;        /* this attempt's
                                                          connect: a server
                                                          that restarts
                                                          since closes it */
    ngx_uint_t                         generation;     /* +1 at every close */
    ngx_uint_t                         expect_role;    /* of this attempt */
    ngx_queue_t                        locate_link;    /* while a Sentinel is
                                                          asked where to go */

    unsigned                           active:1;       /* connecting or up */
    unsigned                           established:1;  /* TCP (and TLS) up */
    unsigned                           ready:1;        /* handshake answered */
    unsigned                           down:1;         /* failed: fail fast */
    unsigned                           ping_pending:1;
    unsigned                           stopping:1;
    unsigned                           subscriber:1;   /* no SELECT, no state
                                                          in consent_redis_up */
    unsigned                           locating:1;     /* locate() runs */
    unsigned                           unfit:1;        /* the last attempt
                                                          ended on ROLE */
    unsigned                           primary:1;      /* ROLE said master at
                                                          the last check, or
                                                          was not asked */

    /* the owner's hooks; any may be NULL */
    ngx_http_consent_redis_pt          locate;         /* picks the server of
                                                          the next attempt:
                                                          calls ..._located() */
    ngx_http_consent_redis_pt          on_ready;
    ngx_http_consent_redis_pt          on_down;
    /* once subscribed: every reply, pushed or not, goes here */
    ngx_http_consent_redis_reply_pt    on_push;

    void                              *data;
};


/* ping_every 0: no keepalive pings (a subscriber has the heartbeat). */
ngx_int_t ngx_http_consent_redis_init(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server,
    ngx_http_consent_main_conf_t *cmcf, ngx_cycle_t *cycle,
    ngx_msec_t ping_every);

/*
 * Connects now (to the server locate() picks, when there is that hook);
 * on failure, retries with backoff on its own.
 */
void ngx_http_consent_redis_connect(ngx_http_consent_redis_t *rc);

/*
 * locate()'s answer, now or later: the server of this attempt and the ROLE
 * it must have; NULL: none can be named now (a failed attempt: backoff).
 */
void ngx_http_consent_redis_located(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server, ngx_uint_t expect_role);

/*
 * Drops the connection (commands still waiting get a NULL reply) and
 * connects again at once, to where locate() says now. Not a failure:
 * nothing is counted, `down` stays 0 (commands queue on the new attempt),
 * and the on_down hook runs (if it was connected) with rc->down 0.
 */
void ngx_http_consent_redis_switch(ngx_http_consent_redis_t *rc);

/* Drops the connection, nothing counted, no hook, no reconnect; reusable. */
void ngx_http_consent_redis_release(ngx_http_consent_redis_t *rc);

/*
 * Drops the connection (commands still waiting get a NULL reply), marks
 * it down and schedules a reconnect. Safe anywhere, reply handlers
 * included.
 */
void ngx_http_consent_redis_close(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason);

/* Worker exit: drops the connection for good, and frees the buffers. */
void ngx_http_consent_redis_stop(ngx_http_consent_redis_t *rc);

/*
 * Queues a command behind the handshake and whatever was sent before.
 * NGX_ERROR when there is no connection (nor one being made), or the
 * connection has fallen too far behind.
 */
ngx_int_t ngx_http_consent_redis_send(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_reply_pt handler, void *data,
    const std::string_view *argv, size_t argc);

/*
 * Sends SUBSCRIBE (argv); from then on every reply goes to `handler`:
 * the confirmations, the messages, an error.
 */
ngx_int_t ngx_http_consent_redis_subscribe(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_reply_pt handler, const std::string_view *argv,
    size_t argc);

/* True for a "message" push of a subscribed connection. */
ngx_uint_t ngx_http_consent_redis_is_message(redisReply *reply);

#endif /* NGX_HTTP_CONSENT_REDIS_H_INCLUDED_ */
