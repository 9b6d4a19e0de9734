/*
 * A worker's Redis connection: hiredis' async API on nginx's event loop.
 * See ngx_http_consent_redis.h for what this layer promises.
 *
 * hiredis closes the socket itself; the nginx connection structure that
 * wraps it is only ever released (ngx_free_connection), never closed, so
 * the descriptor is closed exactly once.
 */

#include "ngx_module/ngx_http_consent_redis.h"

#include <cstring>


#define NGX_HTTP_CONSENT_BACKOFF_MIN  100
#define NGX_HTTP_CONSENT_BACKOFF_MAX  2000


static void ngx_http_consent_redis_read_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_write_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_consent_redis_retry(ngx_event_t *ev);
static void ngx_http_consent_redis_ping(ngx_event_t *ev);
static void ngx_http_consent_redis_close_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_down(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason);


/* ---- the event adapter hiredis calls --------------------------------- */

static void
ngx_http_consent_redis_add(ngx_event_t *ev, ngx_int_t event)
{
    /* level-triggered: hiredis reads once per call, so an edge could be lost */
    if (!ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_consent_redis_del(ngx_event_t *ev, ngx_int_t event)
{
    if (ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


static void
ngx_http_consent_redis_add_read(void *privdata)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) privdata;

    if (rc->conn) {
        ngx_http_consent_redis_add(rc->conn->read, NGX_READ_EVENT);
    }
}


static void
ngx_http_consent_redis_del_read(void *privdata)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) privdata;

    if (rc->conn) {
        ngx_http_consent_redis_del(rc->conn->read, NGX_READ_EVENT);
    }
}


static void
ngx_http_consent_redis_add_write(void *privdata)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) privdata;

    if (rc->conn) {
        ngx_http_consent_redis_add(rc->conn->write, NGX_WRITE_EVENT);
    }
}


static void
ngx_http_consent_redis_del_write(void *privdata)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) privdata;

    if (rc->conn) {
        ngx_http_consent_redis_del(rc->conn->write, NGX_WRITE_EVENT);
    }
}


/*
 * hiredis frees its context: release (not close) the nginx connection.
 * This runs for every context, whoever frees it. When it is still rc->ac,
 * hiredis gave up on it by itself (a refused connect, EOF, a read error):
 * the connection is down from here on. When we freed it (close, stop),
 * rc->ac was cleared first and there is nothing more to do.
 */
static void
ngx_http_consent_redis_cleanup(void *privdata)
{
    ngx_connection_t          *c;
    redisAsyncContext         *ac;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) privdata;

    c = rc->conn;

    if (c) {
        rc->conn = NULL;

        ngx_http_consent_redis_del(c->read, NGX_READ_EVENT);
        ngx_http_consent_redis_del(c->write, NGX_WRITE_EVENT);

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        /*
         * In this order, as ngx_close_connection() does: with poll,
         * ngx_free_connection() clears ngx_cycle->files[c->fd], and
         * ngx_get_connection() fills only an empty slot, so a slot left
         * stale would send the next socket's events with this descriptor
         * to this released connection. Then fd -1: any event still queued
         * for it in this loop iteration is recognised as stale.
         */
        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    ac = rc->ac;

    if (ac) {
        rc->ac = NULL;

        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "consent: redis %V: connection %s%s%s",
                      &rc->server->name,
                      (ac->c.flags & REDIS_CONNECTED) ? "closed" : "failed",
                      ac->errstr[0] ? ": " : "", ac->errstr);

        ngx_http_consent_redis_down(rc, (ac->c.flags & REDIS_CONNECTED)
                                        ? NGX_HTTP_CONSENT_ERR_IO
                                        : NGX_HTTP_CONSENT_ERR_CONNECT);
    }
}


static void
ngx_http_consent_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = (ngx_connection_t *) ev->data;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) c->data;

    if (rc->ac) {
        redisAsyncHandleRead(rc->ac);
    }
}


static void
ngx_http_consent_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c = (ngx_connection_t *) ev->data;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) c->data;

    if (rc->ac) {
        redisAsyncHandleWrite(rc->ac);
    }
}


/* ---- lifecycle ------------------------------------------------------- */

static void
ngx_http_consent_redis_init_event(ngx_event_t *ev, ngx_event_handler_pt h,
    ngx_http_consent_redis_t *rc)
{
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = h;
    ev->data = rc;
    ev->log = rc->log;
    ev->cancelable = 1;
}


void
ngx_http_consent_redis_init(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server, ngx_cycle_t *cycle,
    ngx_msec_t ping_every)
{
    ngx_memzero(rc, sizeof(ngx_http_consent_redis_t));

    rc->server = server;
    rc->cycle = cycle;
    rc->log = cycle->log;
    rc->ping_every = ping_every;
    rc->backoff = NGX_HTTP_CONSENT_BACKOFF_MIN;

    ngx_http_consent_redis_init_event(&rc->connect_timer,
                                      ngx_http_consent_redis_connect_timeout,
                                      rc);
    ngx_http_consent_redis_init_event(&rc->retry_timer,
                                      ngx_http_consent_redis_retry, rc);
    ngx_http_consent_redis_init_event(&rc->ping_timer,
                                      ngx_http_consent_redis_ping, rc);
    ngx_http_consent_redis_init_event(&rc->close_event,
                                      ngx_http_consent_redis_close_handler, rc);
}


static void
ngx_http_consent_redis_handshake_step(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                *reply = (redisReply *) r;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) privdata;

    if (reply && reply->type == REDIS_REPLY_ERROR && rc->ac == ac) {
        /* the text of an AUTH error never contains the password */
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "consent: redis %V: %*s", &rc->server->name,
                      (size_t) reply->len, reply->str);
        ngx_http_consent_redis_fail(rc, NGX_HTTP_CONSENT_ERR_REPLY);
    }
}


static void
ngx_http_consent_redis_handshake_done(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                *reply = (redisReply *) r;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) privdata;

    if (reply == NULL || rc->ac != ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "consent: redis %V: %*s", &rc->server->name,
                      (size_t) reply->len, reply->str);
        ngx_http_consent_redis_fail(rc, NGX_HTTP_CONSENT_ERR_REPLY);
        return;
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->down) {
        ngx_log_error(NGX_LOG_NOTICE, rc->log, 0,
                      "consent: redis %V: connected again", &rc->server->name);
    }

    rc->ready = 1;
    rc->down = 0;
    rc->backoff = NGX_HTTP_CONSENT_BACKOFF_MIN;

    if (rc->ping_every) {
        ngx_add_timer(&rc->ping_timer, rc->ping_every);
    }

    if (rc->on_ready) {
        rc->on_ready(rc);
    }
}


void
ngx_http_consent_redis_connect(ngx_http_consent_redis_t *rc)
{
    const char                       *argv[2];
    size_t                            argvlen[2];
    redisAsyncContext                *ac;
    ngx_connection_t                 *c;
    ngx_http_consent_redis_server_t  *s = rc->server;

    if (rc->ac || rc->stopping) {
        return;
    }

    if (s->unix_path.len) {
        ac = redisAsyncConnectUnix((const char *) s->unix_path.data);
    } else {
        ac = redisAsyncConnect((const char *) s->host.data, (int) s->port);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "consent: redis %V: cannot connect: %s", &s->name,
                      ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        ngx_http_consent_redis_down(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rc->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_consent_redis_down(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_http_consent_redis_read_handler;
    c->write->handler = ngx_http_consent_redis_write_handler;
    c->read->log = rc->log;
    c->write->log = rc->log;

    rc->ac = ac;
    rc->conn = c;
    rc->ready = 0;
    rc->ping_pending = 0;

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_consent_redis_add_read;
    ac->ev.delRead = ngx_http_consent_redis_del_read;
    ac->ev.addWrite = ngx_http_consent_redis_add_write;
    ac->ev.delWrite = ngx_http_consent_redis_del_write;
    ac->ev.cleanup = ngx_http_consent_redis_cleanup;

    ngx_add_timer(&rc->connect_timer, s->connect_timeout);

    /* queued now, written once the connect completes */

    if (s->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = 4;
        argv[1] = (const char *) s->password.data;
        argvlen[1] = s->password.len;
        redisAsyncCommandArgv(ac, ngx_http_consent_redis_handshake_step, rc,
                              2, argv, argvlen);
    }

    if (s->db && !rc->subscriber) {
        char  db[NGX_INT_T_LEN + 1];

        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = db;
        argvlen[1] = ngx_sprintf((u_char *) db, "%i", s->db) - (u_char *) db;
        redisAsyncCommandArgv(ac, ngx_http_consent_redis_handshake_step, rc,
                              2, argv, argvlen);
    }

    argv[0] = "PING";
    argvlen[0] = 4;
    redisAsyncCommandArgv(ac, ngx_http_consent_redis_handshake_done, rc,
                          1, argv, argvlen);
}


/* Marks the connection down and schedules the reconnect. */
static void
ngx_http_consent_redis_down(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason)
{
    ngx_uint_t  was_ready = rc->ready;

    rc->ready = 0;
    rc->down = 1;
    rc->ping_pending = 0;

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->ping_timer.timer_set) {
        ngx_del_timer(&rc->ping_timer);
    }

    ngx_http_consent_count_store(rc->cycle, reason);

    if (rc->stopping) {
        return;
    }

    if (was_ready) {
        ngx_http_consent_count_store(rc->cycle,
                                     NGX_HTTP_CONSENT_REDIS_RECONNECT);
    }

    if (!rc->retry_timer.timer_set) {
        ngx_add_timer(&rc->retry_timer, rc->backoff);
        rc->backoff = ngx_min(rc->backoff * 2, NGX_HTTP_CONSENT_BACKOFF_MAX);
    }

    if (rc->on_down) {
        rc->on_down(rc);
    }
}


void
ngx_http_consent_redis_close(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason)
{
    redisAsyncContext  *ac = rc->ac;

    if (ac == NULL) {
        return;
    }

    /* first, so the disconnect callback and the NULL replies see it gone */
    rc->ac = NULL;

    redisAsyncFree(ac);

    ngx_http_consent_redis_down(rc, reason);
}


void
ngx_http_consent_redis_fail(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason)
{
    if (!rc->close_event.posted) {
        rc->close_reason = reason;
        ngx_post_event(&rc->close_event, &ngx_posted_events);
    }
}


static void
ngx_http_consent_redis_close_handler(ngx_event_t *ev)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) ev->data;

    ngx_http_consent_redis_close(rc, rc->close_reason);
}


void
ngx_http_consent_redis_stop(ngx_http_consent_redis_t *rc)
{
    rc->stopping = 1;

    if (rc->close_event.posted) {
        ngx_delete_posted_event(&rc->close_event);
    }

    if (rc->retry_timer.timer_set) {
        ngx_del_timer(&rc->retry_timer);
    }

    if (rc->ac) {
        redisAsyncContext *ac = rc->ac;

        rc->ac = NULL;
        redisAsyncFree(ac);
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->ping_timer.timer_set) {
        ngx_del_timer(&rc->ping_timer);
    }
}


static void
ngx_http_consent_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) ev->data;

    ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                  "consent: redis %V: no answer within connect_timeout",
                  &rc->server->name);

    ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_REDIS_TIMEOUT);
}


static void
ngx_http_consent_redis_retry(ngx_event_t *ev)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) ev->data;

    ngx_http_consent_redis_connect(rc);
}


/* ---- keepalive ------------------------------------------------------- */

ngx_uint_t
ngx_http_consent_redis_is_message(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
           && reply->element[0]->type == REDIS_REPLY_STRING
           && reply->element[0]->len == 7
           && ngx_strncmp(reply->element[0]->str, "message", 7) == 0;
}


static void
ngx_http_consent_redis_pong(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = (redisReply *) r;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) privdata;

    if (reply == NULL || rc->ac != ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_consent_redis_fail(rc, NGX_HTTP_CONSENT_ERR_REPLY);
        return;
    }

    rc->ping_pending = 0;

    if (rc->ping_timer.timer_set) {
        ngx_del_timer(&rc->ping_timer);
    }

    ngx_add_timer(&rc->ping_timer, rc->ping_every);
}


static void
ngx_http_consent_redis_ping(ngx_event_t *ev)
{
    const char                *argv[1] = { "PING" };
    size_t                     argvlen[1] = { 4 };
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) ev->data;

    if (rc->ac == NULL) {
        return;
    }

    if (rc->ping_pending) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "consent: redis %V: keepalive ping not answered",
                      &rc->server->name);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_REDIS_TIMEOUT);
        return;
    }

    if (redisAsyncCommandArgv(rc->ac, ngx_http_consent_redis_pong, rc, 1,
                              argv, argvlen)
        != REDIS_OK)
    {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
        return;
    }

    rc->ping_pending = 1;
    ngx_add_timer(&rc->ping_timer, ngx_max(rc->server->timeout, 1000));
}


ngx_int_t
ngx_http_consent_redis_send(ngx_http_consent_redis_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    if (rc->ac == NULL) {
        return NGX_ERROR;
    }

    if (redisAsyncCommandArgv(rc->ac, fn, privdata, argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}
