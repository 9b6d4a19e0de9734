/*
 * Where a worker's Redis connections go: the primary, a replica, or
 * whatever the Sentinels name (ngx_http_consent_topology.cpp,
 * ngx_http_consent_sentinel.cpp).
 *
 * The request path does not see any of it: a lookup asks `read`, which
 * answers or fails. Which server `read` is connected to is decided here,
 * again at every connection attempt (its locate hook):
 *
 *   consent_redis_read primary   the primary
 *   consent_redis_read replica   the first replica, in order of preference,
 *                                that this worker is not avoiding; else the
 *                                primary
 *
 * A replica is avoided for NGX_HTTP_CONSENT_AVOID after it failed or its
 * ROLE showed its link to the primary down (ROLE is its keepalive, every
 * second). A timer probes the replicas preferred over the current one, and
 * `read` moves back once one answers ROLE with its link up.
 *
 * Worker 0 also subscribes to the update channel on `read`'s server (the
 * subscription follows `read`), and publishes the liveness proof on the
 * primary: through `read` when it is there, else through `primary`.
 */

#ifndef NGX_HTTP_CONSENT_TOPOLOGY_H_INCLUDED_
#define NGX_HTTP_CONSENT_TOPOLOGY_H_INCLUDED_

#include "ngx_module/ngx_http_consent_redis.h"


#define NGX_HTTP_CONSENT_MAX_NODES  16
#define NGX_HTTP_CONSENT_AVOID      5000      /* ms */


typedef struct ngx_http_consent_sentinel_s  ngx_http_consent_sentinel_t;


typedef struct {
    ngx_http_consent_redis_server_t  *server;
    ngx_msec_t                        avoid_until;
} ngx_http_consent_node_t;


typedef struct ngx_http_consent_topology_s {
    ngx_http_consent_main_conf_t     *cmcf;
    ngx_cycle_t                      *cycle;
    ngx_pool_t                       *pool;

    /*
     * The primary, then the replicas in order of preference: the order
     * listed, or (Sentinel) loopback ones first, then Sentinel's order.
     * A Sentinel's servers are made once per address and kept.
     */
    ngx_http_consent_node_t           primary;
    ngx_http_consent_node_t           replicas[NGX_HTTP_CONSENT_MAX_NODES];
    ngx_uint_t                        nreplicas;

    ngx_http_consent_redis_t          read;      /* lookups */
    ngx_http_consent_redis_t          sub;       /* worker 0: the channel */
    ngx_http_consent_redis_t          primary_conn;  /* when `read` is on a
                                                        replica: worker 0's
                                                        heartbeat, and the
                                                        consent_choice
                                                        writes */
    ngx_http_consent_redis_t          probe;     /* back to a replica */
    ngx_event_t                       probe_timer;

    unsigned                          subscribing:1;  /* worker 0, a cache */
    unsigned                          sub_waiting:1;  /* for `read` */

    ngx_http_consent_sentinel_t      *sentinel;  /* with sentinel: */
} ngx_http_consent_topology_t;


/*
 * The connections, not connected yet. subscribe: this worker holds the
 * channel subscription (then set sub's on_ready and on_down before
 * starting).
 */
ngx_http_consent_topology_t *ngx_http_consent_topology_init(
    ngx_cycle_t *cycle, ngx_http_consent_main_conf_t *cmcf, ngx_pool_t *pool,
    ngx_uint_t subscribe);
void ngx_http_consent_topology_start(ngx_http_consent_topology_t *t);
void ngx_http_consent_topology_exit(ngx_http_consent_topology_t *t);

/* The connection on the primary, ready, or NULL: the heartbeat's, and the
 * consent_choice writes'. */
ngx_http_consent_redis_t *ngx_http_consent_topology_primary(
    ngx_http_consent_topology_t *t);

/* for ngx_http_consent_sentinel.cpp: `read`'s choice, once the replicas
 * are known */
void ngx_http_consent_topology_pick_read(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc);

/* the primary the Sentinels name changed: every connection follows */
void ngx_http_consent_topology_failover(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_server_t *old);

/* sentinel.cpp */
ngx_int_t ngx_http_consent_sentinel_init(ngx_http_consent_topology_t *t);
void ngx_http_consent_sentinel_start(ngx_http_consent_topology_t *t);
void ngx_http_consent_sentinel_exit(ngx_http_consent_topology_t *t);
/* answer rc's locate with the primary they name (verified by ROLE) */
void ngx_http_consent_sentinel_locate_primary(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc);
/* refresh t->replicas from the Sentinels, then pick for rc (if any) */
void ngx_http_consent_sentinel_locate_replica(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc);
/* the primary named was not one (ROLE): ask the next Sentinel */
void ngx_http_consent_sentinel_next(ngx_http_consent_topology_t *t);

#endif /* NGX_HTTP_CONSENT_TOPOLOGY_H_INCLUDED_ */
