/*
 * A worker's Redis connection: how it is made, kept and lost. See
 * ngx_http_consent_redis.h for what this layer promises; the bytes on
 * the connection (commands out, replies in) are in
 * ngx_http_consent_redis_io.cpp.
 *
 * A connection attempt runs: locate (which server: the owner's hook, for
 * replicas and Sentinel) -> resolve (only for a host name, with nginx's
 * resolver set) -> connect -> TLS handshake and verification (with
 * consent_redis_ssl on) -> AUTH, SELECT, then PING, or ROLE when the
 * server must be a primary or a replica with its link up -> ready.
 * connect_timeout bounds all but locate. Any failure on the way closes the
 * attempt, counts as an error, and the next attempt comes after a backoff,
 * at the next address when there are several.
 */

#include "ngx_module/ngx_http_consent_redis_io.h"
#include "ngx_module/ngx_http_consent_redis_reply.h"


#define NGX_HTTP_CONSENT_BACKOFF_MIN  100
#define NGX_HTTP_CONSENT_BACKOFF_MAX  2000


static void ngx_http_consent_redis_connect_server(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_redis_resolve(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_consent_redis_connect_peer(ngx_http_consent_redis_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen);
static void ngx_http_consent_redis_connect_handler(ngx_event_t *ev);
static void ngx_http_consent_redis_connected(ngx_http_consent_redis_t *rc);
#if (NGX_SSL)
static void ngx_http_consent_redis_tls_start(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_redis_tls_done(ngx_connection_t *c);
#endif
static void ngx_http_consent_redis_handshake_step(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_consent_redis_handshake_done(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_consent_redis_connect_timeout(ngx_event_t *ev);
static void ngx_http_consent_redis_retry(ngx_event_t *ev);
static void ngx_http_consent_redis_ping(ngx_event_t *ev);
static void ngx_http_consent_redis_down(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason);


/* ", consent redis: NAME" after nginx's own messages on the connection */
static u_char *
ngx_http_consent_redis_log_error(ngx_log_t *log, u_char *buf, size_t len)
{
    u_char                    *p = buf;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) log->data;

    if (log->action) {
        p = ngx_snprintf(p, len, " while %s", log->action);
        len -= p - buf;
    }

    return ngx_snprintf(p, len, ", consent redis: %V", &rc->server->name);
}


static void
ngx_http_consent_redis_init_event(ngx_event_t *ev, ngx_event_handler_pt h,
    ngx_http_consent_redis_t *rc)
{
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = h;
    ev->data = rc;
    ev->log = rc->cycle->log;
    ev->cancelable = 1;
}


ngx_int_t
ngx_http_consent_redis_init(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server,
    ngx_http_consent_main_conf_t *cmcf, ngx_cycle_t *cycle,
    ngx_msec_t ping_every)
{
    ngx_memzero(rc, sizeof(ngx_http_consent_redis_t));

    rc->server = server;
    rc->cmcf = cmcf;
    rc->cycle = cycle;
    rc->ping_every = ping_every;
    rc->backoff = NGX_HTTP_CONSENT_BACKOFF_MIN;

    rc->log = *cycle->log;
    rc->log.handler = ngx_http_consent_redis_log_error;
    rc->log.data = rc;
    rc->log.action = NULL;

    rc->addr_text.data = rc->addr_buf;
    ngx_queue_init(&rc->locate_link);

    ngx_http_consent_redis_init_event(&rc->connect_timer,
                                      ngx_http_consent_redis_connect_timeout,
                                      rc);
    ngx_http_consent_redis_init_event(&rc->retry_timer,
                                      ngx_http_consent_redis_retry, rc);
    ngx_http_consent_redis_init_event(&rc->ping_timer,
                                      ngx_http_consent_redis_ping, rc);

    return ngx_http_consent_redis_io_init(rc);
}


void
ngx_http_consent_redis_connect(ngx_http_consent_redis_t *rc)
{
    if (rc->active || rc->stopping || rc->locating) {
        return;
    }

    if (rc->locate) {
        rc->locating = 1;
        rc->locate(rc);
        return;
    }

    ngx_http_consent_redis_connect_server(rc);
}


void
ngx_http_consent_redis_located(ngx_http_consent_redis_t *rc,
    ngx_http_consent_redis_server_t *server, ngx_uint_t expect_role)
{
    rc->locating = 0;

    if (rc->stopping || rc->active) {
        return;
    }

    if (server == NULL) {
        /* the owner said why; counted against the server it had */
        ngx_http_consent_redis_down(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    if (server != rc->server) {
        rc->server = server;
        rc->next_addr = 0;
        rc->socklen = 0;
    }

    rc->expect_role = expect_role;

    ngx_http_consent_redis_connect_server(rc);
}


static void
ngx_http_consent_redis_connect_server(ngx_http_consent_redis_t *rc)
{
    size_t                            n;
    ngx_addr_t                       *addr;
    std::string_view                  argv[3];
    ngx_http_consent_redis_server_t  *s = rc->server;

    if (ngx_http_consent_redis_io_start(rc) != NGX_OK) {
        ngx_http_consent_redis_down(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    rc->active = 1;
    rc->ready = 0;
    rc->unfit = 0;
    rc->ping_pending = 0;

    ngx_add_timer(&rc->connect_timer, s->connect_timeout);

    /* the handshake: queued first, written once the connection is up */

    if (s->password.len) {
        n = 0;
        argv[n++] = "AUTH";

        if (s->user.len) {
            argv[n++] = std::string_view((char *) s->user.data, s->user.len);
        }

        argv[n++] = std::string_view((char *) s->password.data,
                                     s->password.len);

        if (ngx_http_consent_redis_send(rc,
                ngx_http_consent_redis_handshake_step, NULL, argv, n)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (s->db && !rc->subscriber) {
        char  db[NGX_INT_T_LEN];

        argv[0] = "SELECT";
        argv[1] = std::string_view(db, ngx_sprintf((u_char *) db, "%i", s->db)
                                       - (u_char *) db);

        if (ngx_http_consent_redis_send(rc,
                ngx_http_consent_redis_handshake_step, NULL, argv, 2)
            != NGX_OK)
        {
            goto failed;
        }
    }

    argv[0] = rc->expect_role ? "ROLE" : "PING";

    if (ngx_http_consent_redis_send(rc, ngx_http_consent_redis_handshake_done,
                                    NULL, argv, 1)
        != NGX_OK)
    {
        goto failed;
    }

    if (s->resolve && rc->cmcf->resolver) {
        ngx_http_consent_redis_resolve(rc);
        return;
    }

    addr = &s->addrs[rc->next_addr % s->naddrs];

    ngx_http_consent_redis_connect_peer(rc, addr->sockaddr, addr->socklen);

    return;

failed:

    ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
}


/* ---- resolve ----------------------------------------------------------- */

static void
ngx_http_consent_redis_resolve(ngx_http_consent_redis_t *rc)
{
    ngx_resolver_ctx_t               *ctx;
    ngx_http_consent_redis_server_t  *s = rc->server;

    ctx = ngx_resolve_start(rc->cmcf->resolver, NULL);
    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    ctx->name = s->host;
    ctx->handler = ngx_http_consent_redis_resolved;
    ctx->data = rc;
    ctx->timeout = rc->cmcf->resolver_timeout;
    ctx->cancelable = 1;

    rc->resolving = ctx;
    rc->log.action = (char *) "resolving";

    /* the handler may run before this returns (a cached answer) */
    if (ngx_resolve_name(ctx) != NGX_OK) {
        rc->resolving = NULL;
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
    }
}


static void
ngx_http_consent_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_addr_t                       *addr;
    ngx_resolver_addr_t              *a;
    ngx_http_consent_redis_t         *rc;
    ngx_http_consent_redis_server_t  *s;

    rc = (ngx_http_consent_redis_t *) ctx->data;
    s = rc->server;
    rc->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        /*
         * DNS trouble is not Redis trouble: try the address that served
         * last, else the one the configuration was read with.
         */
        if (rc->socklen == 0) {
            addr = &s->addrs[rc->next_addr % s->naddrs];
            ngx_memcpy(&rc->sockaddr, addr->sockaddr, addr->socklen);
            rc->socklen = addr->socklen;
        }

        ngx_log_error(NGX_LOG_WARN, rc->cycle->log, 0,
                      "consent: redis %V: \"%V\" could not be resolved "
                      "(%i: %s), trying its last address",
                      &s->name, &ctx->name, ctx->state,
                      ngx_resolver_strerror(ctx->state));

        ngx_resolve_name_done(ctx);

    } else {
        a = &ctx->addrs[rc->next_addr % ctx->naddrs];

        ngx_memcpy(&rc->sockaddr, a->sockaddr, a->socklen);
        rc->socklen = a->socklen;
        ngx_inet_set_port(&rc->sockaddr.sockaddr, s->port);

        ngx_resolve_name_done(ctx);
    }

    ngx_http_consent_redis_connect_peer(rc, &rc->sockaddr.sockaddr,
                                        rc->socklen);
}


/* ---- connect ----------------------------------------------------------- */

static void
ngx_http_consent_redis_connect_peer(ngx_http_consent_redis_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_int_t          r;
    ngx_connection_t  *c;

    if (sockaddr != &rc->sockaddr.sockaddr) {
        ngx_memcpy(&rc->sockaddr, sockaddr, socklen);
        rc->socklen = socklen;
    }

    rc->addr_text.len = ngx_sock_ntop(&rc->sockaddr.sockaddr, rc->socklen,
                                      rc->addr_buf, NGX_SOCKADDR_STRLEN, 1);

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));
    rc->peer.sockaddr = &rc->sockaddr.sockaddr;
    rc->peer.socklen = rc->socklen;
    rc->peer.name = &rc->addr_text;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = &rc->log;
    rc->peer.log_error = NGX_ERROR_ERR;
    rc->peer.tries = 1;

    rc->log.action = (char *) "connecting";
    rc->started = ngx_current_msec;

    r = ngx_event_connect_peer(&rc->peer);

    if (r == NGX_ERROR || r == NGX_BUSY || r == NGX_DECLINED) {
        /* nginx logged why; the connection, if any, is closed */
        rc->peer.connection = NULL;
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    c = rc->peer.connection;
    c->data = rc;
    c->read->handler = ngx_http_consent_redis_connect_handler;
    c->write->handler = ngx_http_consent_redis_connect_handler;

    /* what nginx's SSL allocates for the connection */
    c->pool = ngx_create_pool(1024, &rc->log);
    if (c->pool == NULL) {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    if (r == NGX_AGAIN) {
        return;     /* the write event says when the connect completed */
    }

    ngx_http_consent_redis_connected(rc);
}


static void
ngx_http_consent_redis_connect_handler(ngx_event_t *ev)
{
    int                        err;
    socklen_t                  len;
    ngx_connection_t          *c = (ngx_connection_t *) ev->data;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) c->data;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        (void) ngx_connection_error(c, err, (char *) "connect() failed");
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    ngx_http_consent_redis_connected(rc);
}


static void
ngx_http_consent_redis_connected(ngx_http_consent_redis_t *rc)
{
#if (NGX_SSL)
    if (rc->cmcf->redis_tls.ctx && !rc->server->unix_socket) {
        ngx_http_consent_redis_tls_start(rc);
        return;
    }
#endif

    ngx_http_consent_redis_io_established(rc);
}


#if (NGX_SSL)

static void
ngx_http_consent_redis_tls_start(ngx_http_consent_redis_t *rc)
{
    ngx_int_t          r;
    ngx_str_t         *name = &rc->server->ssl_name;
    ngx_connection_t  *c = rc->peer.connection;

    if (ngx_ssl_create_connection(rc->cmcf->redis_tls.ctx, c, NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    /* commands may be written again from another place in a grown buffer */
    SSL_set_mode(c->ssl->connection, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    /* SNI carries names only, never an address (RFC 6066) */
    if (ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL
        && SSL_set_tlsext_host_name(c->ssl->connection, (char *) name->data)
           != 1)
    {
        ngx_ssl_error(NGX_LOG_ERR, &rc->log, 0,
                      (char *) "SSL_set_tlsext_host_name(\"%V\") failed",
                      name);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    rc->log.action = (char *) "TLS handshaking";

    r = ngx_ssl_handshake(c);

    if (r == NGX_AGAIN) {
        c->ssl->handler = ngx_http_consent_redis_tls_done;
        return;
    }

    ngx_http_consent_redis_tls_done(c);
}


/* The name or address the configuration expects, in the certificate. */
static ngx_uint_t
ngx_http_consent_redis_tls_name_ok(ngx_http_consent_redis_t *rc)
{
    int                rv;
    X509              *cert;
    ngx_str_t         *name = &rc->server->ssl_name;
    ngx_connection_t  *c = rc->peer.connection;

    if (ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL)
    {
        return ngx_ssl_check_host(c, name) == NGX_OK;
    }

    /* an address is matched against the IP addresses the certificate names */
    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return 0;
    }

    rv = X509_check_ip_asc(cert, (char *) name->data, 0);
    X509_free(cert);

    return rv == 1;
}


static void
ngx_http_consent_redis_tls_done(ngx_connection_t *c)
{
    long                       v;
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) c->data;

    if (!c->ssl->handshaked) {
        /* nginx logged OpenSSL's reason, once, on the connection's log */
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
        return;
    }

    if (rc->cmcf->redis_tls.verify) {
        v = SSL_get_verify_result(c->ssl->connection);

        if (v != X509_V_OK) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: TLS certificate verify error: "
                          "(%l:%s)", &rc->server->name, v,
                          X509_verify_cert_error_string(v));
            ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
            return;
        }

        if (!ngx_http_consent_redis_tls_name_ok(rc)) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: TLS certificate does not match "
                          "\"%V\"", &rc->server->name,
                          &rc->server->ssl_name);
            ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_CONNECT);
            return;
        }
    }

    ngx_http_consent_redis_io_established(rc);
}

#endif


/* ---- handshake ---------------------------------------------------------- */

static void
ngx_http_consent_redis_handshake_step(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* the text of an AUTH error never contains the password */
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: %*s", &rc->server->name,
                      (size_t) reply->len, reply->str);

        /* what was queued behind it (another database's record after a
         * failed SELECT) must not be answered: it fails with the close */
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_REPLY);
    }
}


/*
 * ROLE's answer fits what the attempt expects: a primary, or a replica
 * whose link to its primary is up. When not, says why (once per attempt)
 * and closes: the owner's on_down hook sees rc->unfit.
 */
static ngx_int_t
ngx_http_consent_redis_role_fit(ngx_http_consent_redis_t *rc,
    redisReply *reply)
{
    consent::RoleInfo          info;
    const consent::RespValue  *v;

    v = ngx_http_consent_resp_view(reply);
    rc->primary = 0;

    if (v == NULL || !consent::parse_role(*v, &info)) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V (%V): ROLE answered something else",
                      &rc->server->name, &rc->addr_text);
        goto unfit;
    }

    if (rc->expect_role != NGX_HTTP_CONSENT_ROLE_REPLICA
        && info.role == consent::Role::master)
    {
        rc->primary = 1;
        return NGX_OK;
    }

    if (rc->expect_role != NGX_HTTP_CONSENT_ROLE_PRIMARY
        && info.role == consent::Role::replica && consent::link_up(info.link))
    {
        return NGX_OK;
    }

    if (info.role == consent::Role::replica) {
        std::string_view  state = consent::link_state_name(info.link);

        ngx_log_error(NGX_LOG_WARN, rc->cycle->log, 0,
                      "consent: redis %V (%V): a replica of %*s:%d, its link "
                      "%*s, where %s was expected",
                      &rc->server->name, &rc->addr_text,
                      info.primary.host.size(), info.primary.host.data(),
                      info.primary.port, state.size(), state.data(),
                      rc->expect_role == NGX_HTTP_CONSENT_ROLE_PRIMARY
                      ? "the primary" : "its link up");

    } else {
        ngx_log_error(NGX_LOG_WARN, rc->cycle->log, 0,
                      "consent: redis %V (%V): ROLE says %s, where %s was "
                      "expected", &rc->server->name, &rc->addr_text,
                      info.role == consent::Role::master ? "master"
                                                         : "sentinel",
                      rc->expect_role == NGX_HTTP_CONSENT_ROLE_PRIMARY
                      ? "the primary" : "a replica");
    }

unfit:

    rc->unfit = 1;
    ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_ROLE);

    return NGX_ERROR;
}


static void
ngx_http_consent_redis_handshake_done(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_consent_redis_handshake_step(rc, reply, data);
        return;
    }

    if (rc->expect_role == NGX_HTTP_CONSENT_ROLE_ANY) {
        rc->primary = 1;

    } else if (ngx_http_consent_redis_role_fit(rc, reply) != NGX_OK) {
        return;
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->down) {
        ngx_log_error(NGX_LOG_NOTICE, rc->cycle->log, 0,
                      "consent: redis %V: connected again (%V)",
                      &rc->server->name, &rc->addr_text);
    }

    rc->ready = 1;
    rc->down = 0;
    rc->backoff = NGX_HTTP_CONSENT_BACKOFF_MIN;
    rc->log.action = NULL;

    if (!rc->subscriber) {
        ngx_http_consent_redis_state(rc->server, 1);
    }

    if (rc->ping_every) {
        ngx_add_timer(&rc->ping_timer, rc->ping_every);
    }

    if (rc->on_ready) {
        rc->on_ready(rc);
    }
}


/* ---- failure and reconnection ---------------------------------------------- */

void
ngx_http_consent_redis_close(ngx_http_consent_redis_t *rc,
    ngx_http_consent_store_counter_e reason)
{
    if (!rc->active) {
        return;
    }

    ngx_http_consent_redis_io_drop(rc);

    ngx_http_consent_redis_down(rc, reason);
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

    ngx_http_consent_count_redis(rc->server, reason);

    if (!rc->subscriber) {
        ngx_http_consent_redis_state(rc->server, 0);
    }

    if (rc->stopping) {
        return;
    }

    if (was_ready) {
        ngx_http_consent_count_redis(rc->server,
                                     NGX_HTTP_CONSENT_REDIS_RECONNECT);

    } else {
        /* the next attempt tries the next address, if there is one */
        rc->next_addr++;
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
ngx_http_consent_redis_stop(ngx_http_consent_redis_t *rc)
{
    rc->stopping = 1;

    /* not a failure: nothing is counted, no hook runs */
    ngx_http_consent_redis_release(rc);

    ngx_http_consent_redis_io_free(rc);
}


void
ngx_http_consent_redis_release(ngx_http_consent_redis_t *rc)
{
    if (rc->active) {
        ngx_http_consent_redis_io_drop(rc);
    }

    if (ngx_queue_next(&rc->locate_link) != &rc->locate_link) {
        ngx_queue_remove(&rc->locate_link);
        ngx_queue_init(&rc->locate_link);
    }

    rc->locating = 0;

    if (rc->retry_timer.timer_set) {
        ngx_del_timer(&rc->retry_timer);
    }

    if (rc->connect_timer.timer_set) {
        ngx_del_timer(&rc->connect_timer);
    }

    if (rc->ping_timer.timer_set) {
        ngx_del_timer(&rc->ping_timer);
    }

    rc->ready = 0;
    rc->down = 0;
    rc->ping_pending = 0;
    rc->backoff = NGX_HTTP_CONSENT_BACKOFF_MIN;
}


void
ngx_http_consent_redis_switch(ngx_http_consent_redis_t *rc)
{
    ngx_uint_t  was_active = rc->active;

    if (rc->stopping) {
        return;
    }

    ngx_http_consent_redis_release(rc);

    /* down stays 0: the hook knows it from a failure */
    if (was_active && rc->on_down) {
        rc->on_down(rc);
    }

    ngx_http_consent_redis_connect(rc);
}


static void
ngx_http_consent_redis_connect_timeout(ngx_event_t *ev)
{
    ngx_http_consent_redis_t *rc = (ngx_http_consent_redis_t *) ev->data;

    ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                  "consent: redis %V: no answer within connect_timeout%s%s",
                  &rc->server->name,
                  rc->log.action ? " while " : "",
                  rc->log.action ? rc->log.action : "");

    ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_REDIS_TIMEOUT);
}


static void
ngx_http_consent_redis_retry(ngx_event_t *ev)
{
    ngx_http_consent_redis_connect((ngx_http_consent_redis_t *) ev->data);
}


/* ---- keepalive ------------------------------------------------------------ */

static void
ngx_http_consent_redis_pong(ngx_http_consent_redis_t *rc, redisReply *reply,
    void *data)
{
    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_REPLY);
        return;
    }

    if (rc->expect_role
        && ngx_http_consent_redis_role_fit(rc, reply) != NGX_OK)
    {
        return;
    }

    rc->ping_pending = 0;

    /* again: another generation's worker may have written its own state */
    ngx_http_consent_redis_state(rc->server, 1);

    if (rc->ping_timer.timer_set) {
        ngx_del_timer(&rc->ping_timer);
    }

    ngx_add_timer(&rc->ping_timer, rc->ping_every);
}


static void
ngx_http_consent_redis_ping(ngx_event_t *ev)
{
    ngx_http_consent_redis_t  *rc = (ngx_http_consent_redis_t *) ev->data;

    /* ROLE, when the role matters: a replica whose link broke is left */
    std::string_view  argv[1] = { rc->expect_role ? "ROLE" : "PING" };

    if (!rc->ready) {
        return;
    }

    if (rc->ping_pending) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: keepalive ping not answered",
                      &rc->server->name);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_REDIS_TIMEOUT);
        return;
    }

    if (ngx_http_consent_redis_send(rc, ngx_http_consent_redis_pong, NULL,
                                    argv, 1)
        != NGX_OK)
    {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
        return;
    }

    rc->ping_pending = 1;
    ngx_add_timer(&rc->ping_timer, ngx_max(rc->server->timeout, 1000));
}
