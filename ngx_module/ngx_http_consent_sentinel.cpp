/*
 * A worker's Sentinel client, after Redis's rules for Sentinel clients:
 *
 * - every connection attempt to a data node asks where to go: the primary
 *   (SENTINEL get-master-addr-by-name), or the replicas (SENTINEL replicas),
 *   so each reconnect discovers again;
 * - the Sentinels are asked in turn: one that cannot be reached, answers
 *   garbage or an error, does not know the master, or names a server whose
 *   ROLE is not master (topology.cpp), counts as failed, and the next one
 *   is asked; the one that answered stays the one asked first;
 * - the address named is verified: the data connection's handshake asks
 *   ROLE (redis.cpp);
 * - worker 0 follows +switch-master on a Sentinel, and logs and counts the
 *   failover once for the instance. The other workers follow through
 *   their own connections: a failover kills the clients of the old primary
 *   (Redis 6+), a demoted one answers ROLE as a replica within a second,
 *   and their next attempt asks again.
 */

#include "ngx_module/ngx_http_consent_topology.h"
#include "ngx_module/ngx_http_consent_redis_reply.h"

#include <ifaddrs.h>


#define NGX_HTTP_CONSENT_SENTINEL_PING  5000
#define NGX_HTTP_CONSENT_KNOWN          32
#define NGX_HTTP_CONSENT_LOCAL_ADDRS    16


struct ngx_http_consent_sentinel_s {
    ngx_http_consent_topology_t      *topology;
    ngx_http_consent_redis_server_t  *sentinels;
    ngx_uint_t                        nsentinels;
    ngx_uint_t                        current;       /* asked first */
    ngx_str_t                         master;        /* the master's name */

    ngx_http_consent_redis_t          ask;
    ngx_http_consent_redis_t          watch;         /* worker 0 */
    ngx_uint_t                        watching;      /* the one watched */

    ngx_queue_t                       want_primary;  /* rc.locate_link */
    ngx_queue_t                       want_replicas;
    unsigned                          asked_primary:1;
    unsigned                          asked_replicas:1;

    /* the servers the Sentinels named, made once per address */
    ngx_http_consent_redis_server_t   known[NGX_HTTP_CONSENT_KNOWN];
    ngx_uint_t                        nknown;

    /* this host's addresses, as text: a replica there is read first */
    ngx_str_t                         local[NGX_HTTP_CONSENT_LOCAL_ADDRS];
    ngx_uint_t                        nlocal;
};


/*
 * The addresses of this host's interfaces. Sentinels report a replica by
 * the address they reach it on, never 127.0.0.1 in a fleet, so "the
 * replica beside the edge" is one at any of these.
 */
static void
ngx_http_consent_sentinel_local_addrs(ngx_http_consent_sentinel_t *sn,
    ngx_pool_t *pool)
{
    u_char           *p;
    socklen_t         len;
    struct ifaddrs   *ifa, *a;

    if (getifaddrs(&ifa) != 0) {
        return;
    }

    for (a = ifa; a && sn->nlocal < NGX_HTTP_CONSENT_LOCAL_ADDRS; a = a->ifa_next) {
        if (a->ifa_addr == NULL) {
            continue;
        }

        if (a->ifa_addr->sa_family == AF_INET) {
            len = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
        } else if (a->ifa_addr->sa_family == AF_INET6) {
            len = sizeof(struct sockaddr_in6);
#endif

        } else {
            continue;
        }

        p = (u_char *) ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);
        if (p == NULL) {
            break;
        }

        sn->local[sn->nlocal].data = p;
        sn->local[sn->nlocal].len = ngx_sock_ntop(a->ifa_addr, len, p,
                                                  NGX_SOCKADDR_STRLEN, 0);
        sn->nlocal++;
    }

    freeifaddrs(ifa);
}


static ngx_uint_t
ngx_http_consent_sentinel_on_this_host(ngx_http_consent_sentinel_t *sn,
    std::string_view host)
{
    ngx_uint_t  i;

    if (host == "localhost") {
        return 1;
    }

    for (i = 0; i < sn->nlocal; i++) {
        if (std::string_view((char *) sn->local[i].data, sn->local[i].len)
            == host)
        {
            return 1;
        }
    }

    return 0;
}


static void ngx_http_consent_sentinel_locate_ask(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_sentinel_ask_down(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_sentinel_locate_watch(
    ngx_http_consent_redis_t *rc);
static void ngx_http_consent_sentinel_watch_ready(ngx_http_consent_redis_t *rc);
static void ngx_http_consent_sentinel_watch_down(ngx_http_consent_redis_t *rc);


ngx_int_t
ngx_http_consent_sentinel_init(ngx_http_consent_topology_t *t)
{
    ngx_http_consent_sentinel_t  *sn;

    sn = (ngx_http_consent_sentinel_t *)
             ngx_pcalloc(t->pool, sizeof(ngx_http_consent_sentinel_t));
    if (sn == NULL) {
        return NGX_ERROR;
    }

    sn->topology = t;
    sn->sentinels = (ngx_http_consent_redis_server_t *)
                        t->cmcf->redis_sentinels->elts;
    sn->nsentinels = t->cmcf->redis_sentinels->nelts;
    sn->master = t->primary.server->master;
    ngx_queue_init(&sn->want_primary);
    ngx_queue_init(&sn->want_replicas);

    if (t->cmcf->redis_read_replica) {
        ngx_http_consent_sentinel_local_addrs(sn, t->pool);
    }

    /* each worker starts with another Sentinel: the load spreads */
    sn->current = ngx_worker % sn->nsentinels;
    sn->watching = sn->current;

    if (ngx_http_consent_redis_init(&sn->ask, &sn->sentinels[sn->current],
                                    t->cmcf, t->cycle,
                                    NGX_HTTP_CONSENT_SENTINEL_PING)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sn->ask.data = sn;
    sn->ask.locate = ngx_http_consent_sentinel_locate_ask;
    sn->ask.on_down = ngx_http_consent_sentinel_ask_down;

    if (ngx_worker == 0) {
        if (ngx_http_consent_redis_init(&sn->watch,
                                        &sn->sentinels[sn->watching],
                                        t->cmcf, t->cycle, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        sn->watch.data = sn;
        sn->watch.subscriber = 1;
        sn->watch.locate = ngx_http_consent_sentinel_locate_watch;
        sn->watch.on_ready = ngx_http_consent_sentinel_watch_ready;
        sn->watch.on_down = ngx_http_consent_sentinel_watch_down;
    }

    t->sentinel = sn;

    return NGX_OK;
}


void
ngx_http_consent_sentinel_start(ngx_http_consent_topology_t *t)
{
    ngx_http_consent_redis_connect(&t->sentinel->ask);

    if (t->sentinel->watch.cycle) {
        ngx_http_consent_redis_connect(&t->sentinel->watch);
    }
}


void
ngx_http_consent_sentinel_exit(ngx_http_consent_topology_t *t)
{
    ngx_http_consent_sentinel_t  *sn = t->sentinel;

    ngx_http_consent_redis_stop(&sn->ask);

    if (sn->watch.cycle) {
        ngx_http_consent_redis_stop(&sn->watch);
    }
}


/* ---- the servers named ----------------------------------------------------------- */

/*
 * The server at host:port as a Sentinel named it, with the sentinel:
 * line's database, credentials and timeouts. NULL when it cannot be
 * reached without a blocking lookup (a host name, and no `resolver`).
 */
static ngx_http_consent_redis_server_t *
ngx_http_consent_sentinel_server(ngx_http_consent_sentinel_t *sn,
    const consent::HostPort &hp, ngx_uint_t role)
{
    u_char                           *p;
    size_t                            len;
    ngx_uint_t                        i;
    ngx_addr_t                       *addr;
    ngx_http_consent_topology_t      *t = sn->topology;
    ngx_http_consent_redis_server_t  *s, *tmpl;

    for (i = 0; i < sn->nknown; i++) {
        s = &sn->known[i];

        if (s->port == hp.port && s->host.len == hp.host.size()
            && ngx_memcmp(s->host.data, hp.host.data(), s->host.len) == 0)
        {
            if (s->role != role) {
                s->role = role;
                ngx_http_consent_stats_server(s);
            }

            return s;
        }
    }

    if (sn->nknown == NGX_HTTP_CONSENT_KNOWN) {
        ngx_log_error(NGX_LOG_ERR, t->cycle->log, 0,
                      "consent: redis sentinel:%V: more than %d servers "
                      "named, %*s:%d left out", &sn->master,
                      NGX_HTTP_CONSENT_KNOWN, hp.host.size(), hp.host.data(),
                      hp.port);
        return NULL;
    }

    tmpl = (ngx_http_consent_redis_server_t *) t->cmcf->redis->elts;

    s = &sn->known[sn->nknown];
    ngx_memzero(s, sizeof(ngx_http_consent_redis_server_t));

    s->db = tmpl->db;
    s->user = tmpl->user;
    s->password = tmpl->password;
    s->connect_timeout = tmpl->connect_timeout;
    s->timeout = tmpl->timeout;
    s->role = role;
    s->port = (in_port_t) hp.port;

    len = hp.host.size();
    p = (u_char *) ngx_pnalloc(t->pool, 2 * len + sizeof("[]:65535"));
    if (p == NULL) {
        return NULL;
    }

    s->host.data = p;
    s->host.len = len;
    p = ngx_cpymem(p, hp.host.data(), len);

    s->name.data = p;
    s->name.len = (hp.host.find(':') != std::string_view::npos
                   ? ngx_sprintf(p, "[%*s]:%d", len, hp.host.data(), hp.port)
                   : ngx_sprintf(p, "%*s:%d", len, hp.host.data(), hp.port))
                  - p;

    addr = (ngx_addr_t *) ngx_pcalloc(t->pool, sizeof(ngx_addr_t));
    if (addr == NULL) {
        return NULL;
    }

    if (ngx_parse_addr(t->pool, addr, s->host.data, s->host.len) == NGX_OK) {
        ngx_inet_set_port(addr->sockaddr, s->port);
        s->addrs = addr;
        s->naddrs = 1;

    } else if (t->cmcf->resolver) {
        s->resolve = 1;

    } else {
        ngx_log_error(NGX_LOG_ERR, t->cycle->log, 0,
                      "consent: redis sentinel:%V: a Sentinel names \"%V\", "
                      "a host name, and there is no \"resolver\" to resolve "
                      "it without blocking", &sn->master, &s->name);
        return NULL;
    }

    if (ngx_http_consent_redis_ssl_name(t->pool, t->cmcf, s) != NGX_OK) {
        return NULL;
    }

    ngx_http_consent_stats_server(s);
    sn->nknown++;

    return s;
}


/*
 * The primary is `s` now. In worker 0 (once for the instance), a change
 * from a primary known before is a failover: logged and counted.
 */
static void
ngx_http_consent_sentinel_primary_is(ngx_http_consent_sentinel_t *sn,
    ngx_http_consent_redis_server_t *s)
{
    ngx_http_consent_topology_t  *t = sn->topology;

    if (t->primary.server == s) {
        return;
    }

    if (ngx_worker == 0 && !t->primary.server->master.len) {
        ngx_log_error(NGX_LOG_NOTICE, t->cycle->log, 0,
                      "consent: redis sentinel:%V: the primary is %V now, "
                      "was %V", &sn->master, &s->name,
                      &t->primary.server->name);
        ngx_http_consent_count_store(t->cycle, NGX_HTTP_CONSENT_FAILOVER);
    }

    t->primary.server = s;
    t->primary.avoid_until = 0;
}


/* ---- asking ---------------------------------------------------------------------- */

static void
ngx_http_consent_sentinel_locate_ask(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_sentinel_t  *sn = (ngx_http_consent_sentinel_t *) rc->data;

    ngx_http_consent_redis_located(rc, &sn->sentinels[sn->current],
                                   NGX_HTTP_CONSENT_ROLE_ANY);
}


/* Every connection waiting in q: no answer (they retry after a backoff). */
static void
ngx_http_consent_sentinel_fail(ngx_queue_t *q)
{
    ngx_queue_t               *link;
    ngx_http_consent_redis_t  *rc;

    while (!ngx_queue_empty(q)) {
        link = ngx_queue_head(q);
        ngx_queue_remove(link);
        ngx_queue_init(link);

        rc = ngx_queue_data(link, ngx_http_consent_redis_t, locate_link);
        ngx_http_consent_redis_located(rc, NULL, 0);
    }
}


/* This Sentinel failed: the next one is asked, from now on. */
void
ngx_http_consent_sentinel_next(ngx_http_consent_topology_t *t)
{
    ngx_http_consent_sentinel_t  *sn = t->sentinel;

    sn->current = (sn->current + 1) % sn->nsentinels;

    if (sn->ask.server != &sn->sentinels[sn->current]) {
        ngx_http_consent_redis_switch(&sn->ask);
    }
}


static void
ngx_http_consent_sentinel_ask_down(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_sentinel_t  *sn = (ngx_http_consent_sentinel_t *) rc->data;

    if (rc->down) {
        /* the next attempt goes to the next Sentinel */
        sn->current = (sn->current + 1) % sn->nsentinels;
    }
}


static void
ngx_http_consent_sentinel_failed(ngx_http_consent_sentinel_t *sn,
    const char *what, redisReply *reply)
{
    ngx_log_error(NGX_LOG_ERR, sn->topology->cycle->log, 0,
                  "consent: redis sentinel:%V: Sentinel %V %s%s%*s; asking "
                  "the next one", &sn->master, &sn->ask.server->name, what,
                  reply && reply->type == REDIS_REPLY_ERROR ? ": " : "",
                  reply && reply->type == REDIS_REPLY_ERROR
                  ? (size_t) reply->len : (size_t) 0,
                  reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "");

    ngx_http_consent_sentinel_next(sn->topology);
}


static void
ngx_http_consent_sentinel_master_reply(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_queue_t                      *link;
    consent::HostPort                 hp;
    consent::MasterAddr               answer;
    ngx_http_consent_redis_t         *wanted;
    const consent::RespValue         *v;
    ngx_http_consent_sentinel_t      *sn = (ngx_http_consent_sentinel_t *) data;
    ngx_http_consent_redis_server_t  *s;

    sn->asked_primary = 0;

    if (reply == NULL) {
        ngx_http_consent_sentinel_fail(&sn->want_primary);
        return;
    }

    v = ngx_http_consent_resp_view(reply);
    answer = v ? consent::parse_master_addr(*v, &hp)
               : consent::MasterAddr::malformed;

    if (answer != consent::MasterAddr::known) {
        ngx_http_consent_sentinel_failed(sn,
            answer == consent::MasterAddr::unknown
            ? "does not know the master" : "answered something else", reply);
        ngx_http_consent_sentinel_fail(&sn->want_primary);
        return;
    }

    s = ngx_http_consent_sentinel_server(sn, hp, NGX_HTTP_CONSENT_REDIS_PRIMARY);
    if (s == NULL) {
        ngx_http_consent_sentinel_fail(&sn->want_primary);
        return;
    }

    ngx_http_consent_sentinel_primary_is(sn, s);

    while (!ngx_queue_empty(&sn->want_primary)) {
        link = ngx_queue_head(&sn->want_primary);
        ngx_queue_remove(link);
        ngx_queue_init(link);

        wanted = ngx_queue_data(link, ngx_http_consent_redis_t, locate_link);
        ngx_http_consent_redis_located(wanted, s,
                                       NGX_HTTP_CONSENT_ROLE_PRIMARY);
    }
}


void
ngx_http_consent_sentinel_locate_primary(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc)
{
    std::string_view              argv[3];
    ngx_http_consent_sentinel_t  *sn = t->sentinel;

    ngx_queue_insert_tail(&sn->want_primary, &rc->locate_link);

    if (sn->asked_primary) {
        return;     /* the question is out already */
    }

    argv[0] = "SENTINEL";
    argv[1] = "get-master-addr-by-name";
    argv[2] = std::string_view((char *) sn->master.data, sn->master.len);

    if (ngx_http_consent_redis_send(&sn->ask,
                                    ngx_http_consent_sentinel_master_reply, sn,
                                    argv, 3)
        != NGX_OK)
    {
        /* no Sentinel to ask now: the attempt fails, the next asks again */
        ngx_http_consent_sentinel_fail(&sn->want_primary);
        return;
    }

    sn->asked_primary = 1;
}


/*
 * The replicas healthy in the Sentinel's eyes, loopback ones first, then
 * in its order: t->replicas, keeping what this worker knows of each.
 */
static void
ngx_http_consent_sentinel_replicas_reply(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    size_t                            count, i, k, n;
    ngx_uint_t                        pass, local;
    ngx_queue_t                      *link;
    ngx_http_consent_node_t           nodes[NGX_HTTP_CONSENT_MAX_NODES], *old;
    ngx_http_consent_redis_t         *wanted;
    const consent::RespValue         *v;
    ngx_http_consent_topology_t      *t;
    ngx_http_consent_sentinel_t      *sn = (ngx_http_consent_sentinel_t *) data;
    ngx_http_consent_redis_server_t  *s;

    consent::SentinelReplica  list[NGX_HTTP_CONSENT_MAX_NODES];

    t = sn->topology;
    sn->asked_replicas = 0;

    v = reply ? ngx_http_consent_resp_view(reply) : NULL;

    if (reply && (v == NULL
                  || !consent::parse_sentinel_replicas(*v, list,
                                                       NGX_HTTP_CONSENT_MAX_NODES,
                                                       &count)))
    {
        ngx_http_consent_sentinel_failed(sn, "answered something else", reply);

    } else if (reply) {
        n = 0;
        count = ngx_min(count, (size_t) NGX_HTTP_CONSENT_MAX_NODES);

        /*
         * On this host first (a loopback address, or one of this host's
         * own), then in Sentinel's order.
         */
        for (pass = 0; pass < 2; pass++) {
            for (i = 0; i < count; i++) {
                local = ngx_http_consent_sentinel_on_this_host(sn,
                                                               list[i].addr.host);

                if (local != (pass == 0) || !consent::replica_healthy(list[i])) {
                    continue;
                }

                s = ngx_http_consent_sentinel_server(sn, list[i].addr,
                                                NGX_HTTP_CONSENT_REDIS_REPLICA);
                if (s == NULL) {
                    continue;
                }

                nodes[n].server = s;
                nodes[n].avoid_until = 0;

                for (k = 0; k < t->nreplicas; k++) {
                    old = &t->replicas[k];

                    if (old->server == s) {
                        nodes[n].avoid_until = old->avoid_until;
                    }
                }

                n++;
            }
        }

        ngx_memcpy(t->replicas, nodes, n * sizeof(ngx_http_consent_node_t));
        t->nreplicas = n;
    }

    /* a Sentinel that failed leaves the list as it was */
    while (!ngx_queue_empty(&sn->want_replicas)) {
        link = ngx_queue_head(&sn->want_replicas);
        ngx_queue_remove(link);
        ngx_queue_init(link);

        wanted = ngx_queue_data(link, ngx_http_consent_redis_t, locate_link);
        ngx_http_consent_topology_pick_read(t, wanted);
    }
}


void
ngx_http_consent_sentinel_locate_replica(ngx_http_consent_topology_t *t,
    ngx_http_consent_redis_t *rc)
{
    std::string_view              argv[3];
    ngx_http_consent_sentinel_t  *sn = t->sentinel;

    if (rc) {
        ngx_queue_insert_tail(&sn->want_replicas, &rc->locate_link);
    }

    if (sn->asked_replicas) {
        return;
    }

    argv[0] = "SENTINEL";
    argv[1] = "replicas";
    argv[2] = std::string_view((char *) sn->master.data, sn->master.len);

    if (ngx_http_consent_redis_send(&sn->ask,
                                    ngx_http_consent_sentinel_replicas_reply,
                                    sn, argv, 3)
        != NGX_OK)
    {
        /* no Sentinel to ask now: the replicas known last */
        ngx_http_consent_sentinel_replicas_reply(&sn->ask, NULL, sn);
        return;
    }

    sn->asked_replicas = 1;
}


/* ---- +switch-master (worker 0) ---------------------------------------------------- */

static void
ngx_http_consent_sentinel_locate_watch(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_sentinel_t  *sn = (ngx_http_consent_sentinel_t *) rc->data;

    ngx_http_consent_redis_located(rc, &sn->sentinels[sn->watching],
                                   NGX_HTTP_CONSENT_ROLE_ANY);
}


static void
ngx_http_consent_sentinel_switch_master(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    consent::SwitchMaster             sw;
    ngx_http_consent_sentinel_t      *sn = (ngx_http_consent_sentinel_t *) rc->data;
    ngx_http_consent_redis_server_t  *s, *old;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis sentinel:%V: Sentinel %V refused "
                      "+switch-master: %*s", &sn->master, &rc->server->name,
                      (size_t) reply->len, reply->str);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_REPLY);
        return;
    }

    if (!ngx_http_consent_redis_is_message(reply)
        || reply->element[2]->type != REDIS_REPLY_STRING
        || !consent::parse_switch_master(
               std::string_view(reply->element[2]->str,
                                reply->element[2]->len), &sw)
        || sw.name != std::string_view((char *) sn->master.data,
                                       sn->master.len))
    {
        return;     /* the subscription's confirmation, another master */
    }

    s = ngx_http_consent_sentinel_server(sn, sw.to,
                                         NGX_HTTP_CONSENT_REDIS_PRIMARY);
    if (s == NULL) {
        return;
    }

    old = sn->topology->primary.server;

    ngx_http_consent_sentinel_primary_is(sn, s);
    ngx_http_consent_topology_failover(sn->topology, old);
}


static void
ngx_http_consent_sentinel_watch_ready(ngx_http_consent_redis_t *rc)
{
    std::string_view  argv[2] = { "SUBSCRIBE", "+switch-master" };

    if (ngx_http_consent_redis_subscribe(rc,
                                         ngx_http_consent_sentinel_switch_master,
                                         argv, 2)
        != NGX_OK)
    {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
    }
}


static void
ngx_http_consent_sentinel_watch_down(ngx_http_consent_redis_t *rc)
{
    ngx_http_consent_sentinel_t  *sn = (ngx_http_consent_sentinel_t *) rc->data;

    if (rc->down) {
        sn->watching = (sn->watching + 1) % sn->nsentinels;
    }
}
