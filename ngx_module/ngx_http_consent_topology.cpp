/*
 * Where a worker's Redis connections go (ngx_http_consent_topology.h).
 *
 * Every choice is made again at each connection attempt, by the locate
 * hooks below, from this worker's view: which replicas it avoids, and (with
 * Sentinel) what the Sentinels said last. Nothing is shared between
 * workers: each finds a broken replica by itself, within a second.
 */

#include "ngx_module/ngx_http_consent_topology.h"


/* how often the replicas preferred over the current one are tried */
#define NGX_HTTP_CONSENT_PROBE_EVERY  2000

/* ROLE, the keepalive of a connection whose server's role matters */
#define NGX_HTTP_CONSENT_ROLE_EVERY   1000

#define NGX_HTTP_CONSENT_LOOKUP_PING  5000


static void ngx_http_consent_topology_locate_read(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_locate_primary(
    ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_locate_sub(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_read_primary(
    ngx_http_consent_topology_t *t, ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_read_ready(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_read_down(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_primary_down(
    ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_probe(ngx_event_t *ev);
static void ngx_http_consent_topology_probe_ready(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_topology_probe_down(ngx_http_consent_redis_t *rc);


static ngx_int_t
ngx_http_consent_topology_conn(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc, ngx_msec_t ping_every)
{
    if (ngx_http_consent_redis_init(rc, t->primary.server, t->cmcf, t->cycle,
                                    ping_every)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->data = t;

    return NGX_OK;
}


ngx_http_consent_topology_t *
ngx_http_consent_topology_init(ngx_cycle_t *cycle,
    ngx_http_consent_main_conf_t *cmcf, ngx_pool_t *pool, ngx_uint_t subscribe)
{
    ngx_uint_t                        i;
    ngx_http_consent_topology_t      *t;
    ngx_http_consent_redis_server_t  *server;

    t = (ngx_http_consent_topology_t *)
            ngx_pcalloc(pool, sizeof(ngx_http_consent_topology_t));
    if (t == NULL) {
        return NULL;
    }

    t->cmcf = cmcf;
    t->cycle = cycle;
    t->pool = pool;

    /* the primary first (the sentinel: line, until a Sentinel names one) */
    server = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;
    t->primary.server = &server[0];

    for (i = 1; i < cmcf->redis->nelts && i <= NGX_HTTP_CONSENT_MAX_NODES; i++) {
        t->replicas[t->nreplicas++].server = &server[i];
    }

    /*
     * A replica's (and a Sentinel-named server's) ROLE is asked every
     * second; a static primary keeps the PING of every 5 s.
     */
    if (ngx_http_consent_topology_conn(t, &t->read,
                                       (cmcf->redis_read_replica
                                        || server[0].master.len)
                                       ? NGX_HTTP_CONSENT_ROLE_EVERY
                                       : NGX_HTTP_CONSENT_LOOKUP_PING)
        != NGX_OK)
    {
        return NULL;
    }

    t->read.locate = ngx_http_consent_topology_locate_read;
    t->read.on_ready = ngx_http_consent_topology_read_ready;
    t->read.on_down = ngx_http_consent_topology_read_down;

    if (subscribe) {
        t->subscribing = 1;

        /* liveness comes from the heartbeat (lookup.cpp), not from PING */
        if (ngx_http_consent_topology_conn(t, &t->sub, 0) != NGX_OK) {
            return NULL;
        }

        t->sub.subscriber = 1;
        t->sub.locate = ngx_http_consent_topology_locate_sub;

    }

    /*
     * The heartbeat (worker 0) and the consent_choice endpoint's writes
     * (every worker) go to the primary; reading it, `read` carries them.
     */
    if (cmcf->redis_read_replica && (subscribe || cmcf->choice_writes)) {
        if (ngx_http_consent_topology_conn(t, &t->primary_conn,
                                           server[0].master.len
                                           ? NGX_HTTP_CONSENT_ROLE_EVERY
                                           : NGX_HTTP_CONSENT_LOOKUP_PING)
            != NGX_OK)
        {
            return NULL;
        }

        t->primary_conn.locate = ngx_http_consent_topology_locate_primary;
        t->primary_conn.on_down = ngx_http_consent_topology_primary_down;
    }

    if (cmcf->redis_read_replica) {
        if (ngx_http_consent_topology_conn(t, &t->probe, 0) != NGX_OK) {
            return NULL;
        }

        t->probe.on_ready = ngx_http_consent_topology_probe_ready;
        t->probe.on_down = ngx_http_consent_topology_probe_down;

        t->probe_timer.handler = ngx_http_consent_topology_probe;
        t->probe_timer.data = t;
        t->probe_timer.log = cycle->log;
        t->probe_timer.cancelable = 1;
    }

    if (server[0].master.len && ngx_http_consent_sentinel_init(t) != NGX_OK) {
        return NULL;
    }

    return t;
}


void
ngx_http_consent_topology_start(ngx_http_consent_topology_t *t)
{
    if (t->sentinel) {
        ngx_http_consent_sentinel_start(t);
    }

    ngx_http_consent_redis_connect(&t->read);

    if (t->subscribing) {
        ngx_http_consent_redis_connect(&t->sub);
    }

    if (t->primary_conn.cycle) {
        ngx_http_consent_redis_connect(&t->primary_conn);
    }

    if (t->probe.cycle) {
        ngx_add_timer(&t->probe_timer, NGX_HTTP_CONSENT_PROBE_EVERY);
    }
}


void
ngx_http_consent_topology_exit(ngx_http_consent_topology_t *t)
{
    if (t->probe_timer.timer_set) {
        ngx_del_timer(&t->probe_timer);
    }

    if (t->probe.cycle) {
        ngx_http_consent_redis_stop(&t->probe);
    }

    if (t->primary_conn.cycle) {
        ngx_http_consent_redis_stop(&t->primary_conn);
    }

    if (t->subscribing) {
        ngx_http_consent_redis_stop(&t->sub);
    }

    ngx_http_consent_redis_stop(&t->read);

    if (t->sentinel) {
        ngx_http_consent_sentinel_exit(t);
    }
}


ngx_http_consent_redis_t *
ngx_http_consent_topology_primary(ngx_http_consent_topology_t *t)
{
    /* not a listed primary that is a replica now: it would prove nothing */
    if (t->read.ready && t->read.primary && t->read.server == t->primary.server)
    {
        return &t->read;
    }

    if (t->primary_conn.ready) {
        return &t->primary_conn;
    }

    return NULL;
}


/* ---- which server --------------------------------------------------------- */

static ngx_http_consent_node_t *
ngx_http_consent_topology_node(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_server_t *server)
{
    ngx_uint_t  i;

    if (server == t->primary.server) {
        return &t->primary;
    }

    for (i = 0; i < t->nreplicas; i++) {
        if (t->replicas[i].server == server) {
            return &t->replicas[i];
        }
    }

    return NULL;
}


/* The first replica this worker does not avoid, else the primary. */
void
ngx_http_consent_topology_pick_read(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc)
{
    ngx_uint_t  i;

    for (i = 0; i < t->nreplicas; i++) {
        if ((ngx_msec_int_t) (t->replicas[i].avoid_until - ngx_current_msec)
            <= 0)
        {
            ngx_http_consent_redis_located(rc, t->replicas[i].server,
                                           NGX_HTTP_CONSENT_ROLE_REPLICA);
            return;
        }
    }

    ngx_http_consent_topology_read_primary(t, rc);
}


/*
 * Reads from the primary. A listed one is right for reads while it is the
 * primary, or a replica (demoted, say, by a failover a static list does
 * not follow) whose link is up; a lone server is not asked.
 */
static void
ngx_http_consent_topology_read_primary(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc)
{
    if (t->sentinel) {
        ngx_http_consent_sentinel_locate_primary(t, rc);
        return;
    }

    ngx_http_consent_redis_located(rc, t->primary.server,
                                   t->nreplicas ? NGX_HTTP_CONSENT_ROLE_READABLE
                                                : NGX_HTTP_CONSENT_ROLE_ANY);
}


static void
ngx_http_consent_topology_locate_read(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (!t->cmcf->redis_read_replica) {
        ngx_http_consent_topology_read_primary(t, rc);
        return;
    }

    if (t->sentinel) {
        ngx_http_consent_sentinel_locate_replica(t, rc);
        return;
    }

    ngx_http_consent_topology_pick_read(t, rc);
}


static void
ngx_http_consent_topology_locate_primary(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (t->sentinel) {
        ngx_http_consent_sentinel_locate_primary(t, rc);
        return;
    }

    /*
     * A lone server is not asked for its ROLE: reads are right on it, and
     * so is the heartbeat, heard there too (and its ACL user needs no
     * +role). With replicas listed, the heartbeat must go to a real primary,
     * or it would prove nothing about what they replicate.
     */
    ngx_http_consent_redis_located(rc, t->primary.server,
                                   t->nreplicas ? NGX_HTTP_CONSENT_ROLE_PRIMARY
                                                : NGX_HTTP_CONSENT_ROLE_ANY);
}


/* The subscription goes where `read` is, once `read` is there. */
static void
ngx_http_consent_topology_locate_sub(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (!t->read.ready) {
        t->sub_waiting = 1;
        return;
    }

    t->sub_waiting = 0;
    ngx_http_consent_redis_located(rc, t->read.server, t->read.expect_role);
}


static void
ngx_http_consent_topology_read_ready(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (!t->subscribing) {
        return;
    }

    if (t->sub_waiting) {
        ngx_http_consent_topology_locate_sub(&t->sub);

    } else if (t->sub.server != rc->server) {
        /* `read` moved: what is published is heard there now */
        ngx_http_consent_redis_switch(&t->sub);
    }
}


/*
 * `read` failed. A replica is then left for the next one (or the primary)
 * at once, rather than tried again after a backoff while requests fail.
 */
static void
ngx_http_consent_topology_read_down(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_node_t      *node;
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (!rc->down) {
        return;     /* a switch, not a failure */
    }

    if (rc->unfit && rc->expect_role == NGX_HTTP_CONSENT_ROLE_PRIMARY
        && t->sentinel)
    {
        /* the Sentinel named a server that is no primary */
        ngx_http_consent_sentinel_next(t);
        return;
    }

    node = ngx_http_consent_topology_node(t, rc->server);

    if (node == NULL || node == &t->primary) {
        return;     /* the usual backoff */
    }

    node->avoid_until = ngx_current_msec + NGX_HTTP_CONSENT_AVOID;

    ngx_log_error(NGX_LOG_NOTICE, t->cycle->log, 0,
                  "consent: redis %V: left for %d ms", &rc->server->name,
                  NGX_HTTP_CONSENT_AVOID);

    ngx_http_consent_redis_switch(rc);
}


static void
ngx_http_consent_topology_primary_down(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    if (rc->down && rc->unfit && t->sentinel) {
        ngx_http_consent_sentinel_next(t);
    }
}


/* ---- back to a preferred replica ----------------------------------------------- */

static void
ngx_http_consent_topology_probe(ngx_event_t *ev)
{
    ngx_uint_t                    i;
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) ev->data;

    ngx_add_timer(ev, NGX_HTTP_CONSENT_PROBE_EVERY);

    /*
     * What the Sentinels see now, for the next tick: a replica that was
     * down (or not one yet, during a failover) when `read` last connected
     * is taken back once they list it healthy.
     */
    if (t->sentinel && !(t->nreplicas && t->read.server == t->replicas[0].server))
    {
        ngx_http_consent_sentinel_locate_replica(t, NULL);
    }

    if (t->probe.active || t->probe.locating || !t->read.ready) {
        return;
    }

    /*
     * The first replica `read` would rather be on than where it is, no
     * longer avoided: it is tried on the side, and `read` moves only once
     * its ROLE shows the link up.
     */
    for (i = 0; i < t->nreplicas; i++) {
        if (t->replicas[i].server == t->read.server) {
            return;
        }

        if ((ngx_msec_int_t) (t->replicas[i].avoid_until - ngx_current_msec)
            <= 0)
        {
            break;
        }
    }

    if (i == t->nreplicas) {
        return;
    }

    ngx_http_consent_redis_located(&t->probe, t->replicas[i].server,
                                   NGX_HTTP_CONSENT_ROLE_REPLICA);
}


/* ROLE says the replica is back: `read` moves to it. */
static void
ngx_http_consent_topology_probe_ready(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_node_t      *node;
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    node = ngx_http_consent_topology_node(t, rc->server);
    ngx_http_consent_redis_release(rc);

    if (node == NULL) {
        return;
    }

    node->avoid_until = 0;

    ngx_log_error(NGX_LOG_NOTICE, t->cycle->log, 0,
                  "consent: redis %V: a replica again, reading from it",
                  &node->server->name);

    ngx_http_consent_redis_switch(&t->read);
}


static void
ngx_http_consent_topology_probe_down(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_node_t      *node;
    ngx_http_consent_topology_t  *t;

    t = (ngx_http_consent_topology_t *) rc->data;

    node = ngx_http_consent_topology_node(t, rc->server);

    if (node) {
        node->avoid_until = ngx_current_msec + NGX_HTTP_CONSENT_AVOID;
    }

    ngx_http_consent_redis_release(rc);
}


/* ---- failover ------------------------------------------------------------------ */

/*
 * The Sentinels name another primary: the connections on the old one
 * follow, and the subscription starts again (with it, the cache: what was
 * published during the failover is lost).
 */
void
ngx_http_consent_topology_failover(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_server_t *old)
{
    if (t->read.server == old || t->read.locating) {
        ngx_http_consent_redis_switch(&t->read);
    }

    if (t->primary_conn.cycle) {
        ngx_http_consent_redis_switch(&t->primary_conn);
    }

    if (t->subscribing && (t->sub.active || t->sub.ready)) {
        ngx_http_consent_redis_switch(&t->sub);
    }
}
