/*
 * The bytes on a Redis connection: commands out, replies in.
 *
 * Commands are written (store/resp.h) into one buffer per connection and
 * flushed once per event loop iteration, so the lookups of many requests
 * leave in one write. Replies are parsed by hiredis' reader, which owns no
 * socket: every complete reply of a read is handed, in order, to whoever
 * waits for it. The reader has no limit of its own on what it buffers, so
 * a reply over NGX_HTTP_CONSENT_REDIS_MAX_REPLY closes the connection, as
 * does any reader error (the reader cannot recover from one).
 *
 * Buffers are allocated once per connection object and grow only when a
 * burst needs it; a connection that falls behind by more than
 * NGX_HTTP_CONSENT_REDIS_MAX_OUT refuses more commands (callers fail fast).
 */

#include "ngx_module/ngx_http_consent_redis_io.h"

#include "store/resp.h"


/* The largest reply accepted; nothing the edge asks for comes near. */
#define NGX_HTTP_CONSENT_REDIS_MAX_REPLY  65536

#define NGX_HTTP_CONSENT_REDIS_READ       16384
#define NGX_HTTP_CONSENT_REDIS_OUT        4096
#define NGX_HTTP_CONSENT_REDIS_MAX_OUT    (1024 * 1024)
#define NGX_HTTP_CONSENT_REDIS_WAITS      64
#define NGX_HTTP_CONSENT_REDIS_MAX_WAITS  65536


static void ngx_http_consent_redis_read_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_write_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_flush(ngx_http_consent_redis_t *rc);


ngx_int_t
ngx_http_consent_redis_io_init(ngx_http_consent_redis_t *rc)
{
    rc->out = (u_char *) ngx_alloc(NGX_HTTP_CONSENT_REDIS_OUT, rc->cycle->log);
    rc->waits = (ngx_http_consent_redis_wait_t *)
                    ngx_alloc(NGX_HTTP_CONSENT_REDIS_WAITS
                              * sizeof(ngx_http_consent_redis_wait_t),
                              rc->cycle->log);

    if (rc->out == NULL || rc->waits == NULL) {
        ngx_http_consent_redis_io_free(rc);
        return NGX_ERROR;
    }

    rc->out_size = NGX_HTTP_CONSENT_REDIS_OUT;
    rc->wait_size = NGX_HTTP_CONSENT_REDIS_WAITS;

    return NGX_OK;
}


void
ngx_http_consent_redis_io_free(ngx_http_consent_redis_t *rc)
{
    if (rc->out) {
        ngx_free(rc->out);
        rc->out = NULL;
    }

    if (rc->waits) {
        ngx_free(rc->waits);
        rc->waits = NULL;
    }

    rc->out_size = 0;
    rc->wait_size = 0;
}


ngx_int_t
ngx_http_consent_redis_io_start(ngx_http_consent_redis_t *rc)
{
    if (rc->out == NULL) {
        return NGX_ERROR;
    }

    rc->reader = redisReaderCreate();
    if (rc->reader == NULL) {
        return NGX_ERROR;
    }

    rc->partial = 0;
    rc->out_pos = 0;
    rc->out_len = 0;
    rc->established = 0;

    return NGX_OK;
}


void
ngx_http_consent_redis_io_established(ngx_http_consent_redis_t *rc)
{
    ngx_connection_t  *c = rc->peer.connection;

    rc->established = 1;
    rc->log.action = (char *) "in the handshake (AUTH, SELECT, PING)";

    c->read->handler = ngx_http_consent_redis_read_handler;
    c->write->handler = ngx_http_consent_redis_write_handler;

    ngx_http_consent_redis_flush(rc);
}


void
ngx_http_consent_redis_io_drop(ngx_http_consent_redis_t *rc)
{
    ngx_uint_t                      n;
    ngx_pool_t                     *pool;
    ngx_connection_t               *c;
    ngx_http_consent_redis_wait_t   w;

    /* first: the handlers run below see the connection gone, and a read
     * loop that called into them stops */
    rc->active = 0;
    rc->established = 0;
    rc->generation++;
    rc->on_push = NULL;

    if (rc->resolving) {
        ngx_resolve_name_done(rc->resolving);
        rc->resolving = NULL;
    }

    c = rc->peer.connection;

    if (c) {
        rc->peer.connection = NULL;

#if (NGX_SSL)
        if (c->ssl) {
            /* a quiet close: nothing is waited for, nothing sent */
            c->ssl->no_wait_shutdown = 1;
            c->ssl->no_send_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif

        pool = c->pool;
        ngx_close_connection(c);

        if (pool) {
            ngx_destroy_pool(pool);
        }
    }

    if (rc->reader) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }

    rc->out_pos = 0;
    rc->out_len = 0;
    rc->partial = 0;

    /* those queued now, not any a handler might queue for a new attempt */
    for (n = rc->wait_count; n; n--) {
        w = rc->waits[rc->wait_head];
        rc->wait_head = (rc->wait_head + 1) % rc->wait_size;
        rc->wait_count--;

        if (w.handler) {
            w.handler(rc, NULL, w.data);
        }
    }
}


/* ---- commands out ---------------------------------------------------------- */

/* Room for n more bytes at out + out_len. */
static ngx_int_t
ngx_http_consent_redis_out_room(ngx_http_consent_redis_t *rc, size_t n)
{
    u_char  *p;
    size_t   size, pending;

    if (rc->out_size - rc->out_len >= n) {
        return NGX_OK;
    }

    pending = rc->out_len - rc->out_pos;

    if (rc->out_pos) {
        ngx_memmove(rc->out, rc->out + rc->out_pos, pending);
        rc->out_pos = 0;
        rc->out_len = pending;

        if (rc->out_size - rc->out_len >= n) {
            return NGX_OK;
        }
    }

    size = rc->out_size;

    while (size - pending < n) {
        size *= 2;

        if (size > NGX_HTTP_CONSENT_REDIS_MAX_OUT) {
            return NGX_ERROR;
        }
    }

    p = (u_char *) ngx_alloc(size, rc->cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, rc->out, pending);
    ngx_free(rc->out);

    rc->out = p;
    rc->out_size = size;

    return NGX_OK;
}


/* One more waiter at the tail of the ring. */
static ngx_int_t
ngx_http_consent_redis_wait(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_reply_pt handler, void *data)
{
    size_t                          size;
    ngx_uint_t                      i;
    ngx_http_consent_redis_wait_t  *w;

    if (rc->wait_count == rc->wait_size) {
        if (rc->wait_size >= NGX_HTTP_CONSENT_REDIS_MAX_WAITS) {
            return NGX_ERROR;
        }

        size = rc->wait_size * 2;

        w = (ngx_http_consent_redis_wait_t *)
                ngx_alloc(size * sizeof(ngx_http_consent_redis_wait_t),
                          rc->cycle->log);
        if (w == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < rc->wait_count; i++) {
            w[i] = rc->waits[(rc->wait_head + i) % rc->wait_size];
        }

        ngx_free(rc->waits);
        rc->waits = w;
        rc->wait_size = size;
        rc->wait_head = 0;
    }

    w = &rc->waits[(rc->wait_head + rc->wait_count) % rc->wait_size];
    w->handler = handler;
    w->data = data;
    rc->wait_count++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_redis_write_command(ngx_http_consent_redis_t *rc,
    const std::string_view *argv, size_t argc)
{
    size_t  n;

    if (!rc->active) {
        return NGX_ERROR;
    }

    n = consent::resp_command_size(argv, argc);

    if (ngx_http_consent_redis_out_room(rc, n) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: %uz bytes of commands not sent "
                      "yet, refusing more", &rc->server->name,
                      rc->out_len - rc->out_pos);
        return NGX_ERROR;
    }

    (void) consent::resp_write_command((char *) rc->out + rc->out_len, argv,
                                       argc);
    rc->out_len += n;

    /* flushed once this iteration of the event loop is done */
    if (rc->established && !rc->peer.connection->write->posted) {
        ngx_post_event(rc->peer.connection->write, &ngx_posted_events);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_redis_send(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_reply_pt handler, void *data,
    const std::string_view *argv, size_t argc)
{
    size_t  len = rc->out_len;

    if (rc->on_push) {
        return NGX_ERROR;       /* a subscribed connection takes no commands */
    }

    if (ngx_http_consent_redis_write_command(rc, argv, argc) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_consent_redis_wait(rc, handler, data) != NGX_OK) {
        rc->out_len = len;      /* unsent, unwaited: as if never queued */
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_redis_subscribe(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_reply_pt handler, const std::string_view *argv,
    size_t argc)
{
    if (rc->on_push || rc->wait_count) {
        return NGX_ERROR;       /* replies still due would be taken as pushes */
    }

    if (ngx_http_consent_redis_write_command(rc, argv, argc) != NGX_OK) {
        return NGX_ERROR;
    }

    rc->on_push = handler;

    return NGX_OK;
}


static void
ngx_http_consent_redis_flush(ngx_http_consent_redis_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c = rc->peer.connection;

    while (rc->out_pos < rc->out_len) {
        n = c->send(c, rc->out + rc->out_pos, rc->out_len - rc->out_pos);

        if (n > 0) {
            rc->out_pos += n;
            continue;
        }

        if (n == NGX_AGAIN || n == 0) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
            }

            return;
        }

        /* nginx logged why */
        ngx_http_consent_redis_close(rc, rc->ready ? NGX_HTTP_CONSENT_ERR_IO
                                                   : NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    rc->out_pos = 0;
    rc->out_len = 0;
}


static void
ngx_http_consent_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = (ngx_connection_t *) ev->data;

    ngx_http_consent_redis_flush((ngx_http_consent_redis_t *) c->data);
}


/* ---- replies in ------------------------------------------------------------ */

ngx_uint_t
ngx_http_consent_redis_is_message(redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
           && reply->element[0]->type == REDIS_REPLY_STRING
           && reply->element[0]->len == 7
           && ngx_strncmp(reply->element[0]->str, "message", 7) == 0;
}


static void
ngx_http_consent_redis_dispatch(ngx_http_consent_redis_t *rc,
    redisReply *reply)
{
    ngx_http_consent_redis_wait_t  w;

    if (rc->on_push) {
        rc->on_push(rc, reply, rc->data);
        return;
    }

    if (rc->wait_count == 0) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: a reply no command waits for%s%*s",
                      &rc->server->name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? (size_t) reply->len
                                                       : (size_t) 0,
                      reply->str);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_PROTOCOL);
        return;
    }

    w = rc->waits[rc->wait_head];
    rc->wait_head = (rc->wait_head + 1) % rc->wait_size;
    rc->wait_count--;

    if (w.handler) {
        w.handler(rc, reply, w.data);
    }
}


/*
 * Every complete reply the reader holds, in order. NGX_ERROR when the
 * connection is gone (a handler closed it, or the reader failed).
 */
static ngx_int_t
ngx_http_consent_redis_drain(ngx_http_consent_redis_t *rc)
{
    void        *reply;
    ngx_uint_t   generation = rc->generation;

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: protocol error: %s",
                          &rc->server->name, rc->reader->errstr);
            ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_PROTOCOL);
            return NGX_ERROR;
        }

        if (reply == NULL) {
            return NGX_OK;
        }

        /* what the reader holds beyond this reply belongs to the next */
        rc->partial = rc->reader->len - rc->reader->pos;

        ngx_http_consent_redis_dispatch(rc, (redisReply *) reply);

        freeReplyObject(reply);

        if (rc->generation != generation) {
            return NGX_ERROR;
        }
    }
}


static void
ngx_http_consent_redis_read_handler(ngx_event_t *ev)
{
    ssize_t                    n;
    ngx_connection_t          *c = (ngx_connection_t *) ev->data;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) c->data;

    u_char  buf[NGX_HTTP_CONSENT_REDIS_READ];

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {
            if (n == 0) {
                ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                              "consent: redis %V: the server closed the "
                              "connection%s", &rc->server->name,
                              rc->ready ? ""
                              : " before the handshake completed (TLS "
                                "expected but not configured, or the "
                                "reverse?)");
            }

            ngx_http_consent_redis_close(rc, rc->ready
                                             ? NGX_HTTP_CONSENT_ERR_IO
                                             : NGX_HTTP_CONSENT_ERR_CONNECT);
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: protocol error: %s",
                          &rc->server->name, rc->reader->errstr);
            ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_PROTOCOL);
            return;
        }

        rc->partial += n;

        if (ngx_http_consent_redis_drain(rc) != NGX_OK) {
            return;
        }

        if (rc->partial > NGX_HTTP_CONSENT_REDIS_MAX_REPLY) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: a reply over %d bytes",
                          &rc->server->name,
                          NGX_HTTP_CONSENT_REDIS_MAX_REPLY);
            ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_PROTOCOL);
            return;
        }
    }
}
