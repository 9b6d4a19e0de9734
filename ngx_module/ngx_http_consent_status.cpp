/*
 * Counters in shared memory, and the consent_status handler that exposes
 * them in Prometheus text format, summed over workers. The zone is reused
 * across reloads, so counters only ever grow while nginx runs.
 *
 * Each process counts in a set of counters it holds alone, on cache lines
 * of its own, with plain adds. Shared lines would move between cores on
 * every request, and a lock-prefixed add costs about 20 cycles and orders
 * every memory access around it: a request makes a dozen
 * (docs/performance.md, fifth round). A worker takes the set of its
 * number when that is free, else the first free one; a set whose holder
 * died (killed, crashed: kill(pid, 0) says ESRCH) is free. It gives the
 * set back when it exits. Old workers draining after a reload keep theirs
 * and the new ones take others, so no two processes ever add to one set
 * without a lock. A process that finds none (more than
 * NGX_HTTP_CONSENT_COUNTER_SETS count at once) counts in one more set,
 * shared, with atomic adds.
 */

#include "ngx_module/ngx_http_consent_cache.h"


#define NGX_HTTP_CONSENT_TOKEN_SOURCES   2   /* purl, uid */
#define NGX_HTTP_CONSENT_TOKEN_STATUSES  5   /* consent::TokenStatus */


#define NGX_HTTP_CONSENT_COUNTER_SETS    64
#define NGX_HTTP_CONSENT_SHARED_SET      NGX_HTTP_CONSENT_COUNTER_SETS

/* the connection views of a server, by worker number */
#define NGX_HTTP_CONSENT_STATS_SLOTS     32

/*
 * Redis servers with counters of their own: row 0 of store[] counts what
 * belongs to no server (the cache, the channel), rows 1.. one server each,
 * found again by name after a reload.
 */
#define NGX_HTTP_CONSENT_STATS_SERVERS   16
#define NGX_HTTP_CONSENT_STATS_ROWS      (NGX_HTTP_CONSENT_STATS_SERVERS + 1)
#define NGX_HTTP_CONSENT_SERVER_NAME     320


/* one worker's counters: ngx_atomic_t members only (summed as an array) */
struct alignas(64) ngx_http_consent_stats_s {
    ngx_atomic_t   requests;
    ngx_atomic_t   tokens[NGX_HTTP_CONSENT_TOKEN_SOURCES]
                         [NGX_HTTP_CONSENT_TOKEN_STATUSES];
    ngx_atomic_t   decisions[consent::kMaxPurposes][2];   /* denied, granted */
    ngx_atomic_t   stripped_args;
    ngx_atomic_t   stripped_cookies;
    ngx_atomic_t   stripped_set_cookies;
    ngx_atomic_t   redirects;
    ngx_atomic_t   uid[3];                                 /* consent::UidAction */
    ngx_atomic_t   store[NGX_HTTP_CONSENT_STATS_ROWS]
                        [NGX_HTTP_CONSENT_STORE_COUNTERS];
};


/*
 * A server's row, and each worker's view of its connection to it. A worker
 * killed outright cannot clear its view: a view counts only while the
 * process that wrote it is alive.
 */
typedef struct {
    ngx_pid_t                 pid;           /* 0: no view */
    ngx_uint_t                up;
} ngx_http_consent_conn_view_t;

typedef struct {
    size_t                    len;           /* 0: a free row */
    u_char                    name[NGX_HTTP_CONSENT_SERVER_NAME];
    ngx_uint_t                role;          /* its role, last known */
    ngx_uint_t                generation;    /* of the last configuration
                                                that named it or found it */
    ngx_http_consent_conn_view_t  view[NGX_HTTP_CONSENT_STATS_SLOTS];
} ngx_http_consent_server_row_t;


typedef struct {
    uint32_t                  purposes_crc;  /* which purposes decisions[] counts */
    ngx_uint_t                generation;    /* +1 at every configuration */
    ngx_http_consent_server_row_t  server[NGX_HTTP_CONSENT_STATS_SERVERS];
    ngx_atomic_t              holder[NGX_HTTP_CONSENT_COUNTER_SETS];  /* pid */
    ngx_http_consent_stats_t  slot[NGX_HTTP_CONSENT_COUNTER_SETS + 1];
} ngx_http_consent_stats_zone_t;


/* this process's set: held alone, or NGX_HTTP_CONSENT_SHARED_SET */
static ngx_uint_t  ngx_http_consent_my_set = NGX_HTTP_CONSENT_SHARED_SET;


/* the shared set's adds: atomic, and out of the common case's way */
__attribute__((noinline, cold)) static void
ngx_http_consent_add_shared(ngx_atomic_t *counter, ngx_atomic_int_t n)
{
    (void) ngx_atomic_fetch_add(counter, n);
}


/* A pid that no process has any more (a worker killed or crashed). */
static ngx_uint_t
ngx_http_consent_process_gone(ngx_pid_t pid)
{
    return kill(pid, 0) == -1 && ngx_errno == NGX_ESRCH;
}


/* No other process writes a set held alone, and readers only sum. */
static ngx_inline void
ngx_http_consent_add(ngx_atomic_t *counter, ngx_atomic_int_t n)
{
    if (ngx_http_consent_my_set != NGX_HTTP_CONSENT_SHARED_SET) {
        *counter += n;

    } else {
        ngx_http_consent_add_shared(counter, n);
    }
}


static ngx_str_t  ngx_http_consent_stats_zone_name =
    ngx_string("ngx_http_consent_status");


static ngx_http_consent_main_conf_t *ngx_http_consent_stats_conf(
    ngx_cycle_t *cycle);
static void ngx_http_consent_stats_rows(ngx_http_consent_stats_zone_t *stats,
    ngx_http_consent_main_conf_t *cmcf);


uint32_t
ngx_http_consent_purposes_crc(ngx_http_consent_main_conf_t *cmcf)
{
    uint32_t                     crc;
    ngx_uint_t                   i;
    ngx_http_consent_purpose_t  *p;

    p = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

    ngx_crc32_init(crc);

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        ngx_crc32_update(&crc, p[i].name.data, p[i].name.len);
        ngx_crc32_update(&crc, (u_char *) ",", 1);
    }

    ngx_crc32_final(crc);

    return crc;
}


static ngx_int_t
ngx_http_consent_stats_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_uint_t                      i;
    ngx_slab_pool_t                *shpool;
    ngx_http_consent_stats_zone_t  *stats;
    ngx_http_consent_main_conf_t   *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *) shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: keep counting in the old counters */
        stats = (ngx_http_consent_stats_zone_t *) data;

    } else if (shm_zone->shm.exists) {
        stats = (ngx_http_consent_stats_zone_t *) shpool->data;

    } else {
        /* larger than a page: page-aligned, so every slot is line-aligned */
        stats = (ngx_http_consent_stats_zone_t *)
                    ngx_slab_calloc(shpool,
                                    sizeof(ngx_http_consent_stats_zone_t));
        if (stats == NULL) {
            return NGX_ERROR;
        }

        shpool->data = stats;
    }

    /* decisions are counted by purpose index: restart them if it changed */
    uint32_t crc = ngx_http_consent_purposes_crc(cmcf);

    if (stats->purposes_crc != crc) {
        for (i = 0; i <= NGX_HTTP_CONSENT_COUNTER_SETS; i++) {
            ngx_memzero((void *) stats->slot[i].decisions,
                        sizeof(stats->slot[i].decisions));
        }
        stats->purposes_crc = crc;
    }

    ngx_http_consent_stats_rows(stats, cmcf);

    shm_zone->data = stats;

    return NGX_OK;
}


/*
 * The row of the server called `name`: the one with that name, kept over
 * reloads, else a free one, else one that no server of this configuration
 * (generation) has, started again from zero. 0 when every row is taken:
 * the server is then counted in row 0, without a label.
 */
static ngx_uint_t
ngx_http_consent_stats_row(ngx_http_consent_stats_zone_t *stats,
    ngx_uint_t generation, ngx_str_t *name, ngx_uint_t role)
{
    size_t                          len;
    ngx_uint_t                      k, slot, pick, free, stale;
    ngx_http_consent_server_row_t  *row;

    const ngx_uint_t  none = NGX_HTTP_CONSENT_STATS_SERVERS;

    len = ngx_min(name->len, (size_t) NGX_HTTP_CONSENT_SERVER_NAME);
    free = stale = none;

    for (k = 0; k < NGX_HTTP_CONSENT_STATS_SERVERS; k++) {
        row = &stats->server[k];

        if (row->len == len && ngx_memcmp(row->name, name->data, len) == 0) {
            row->generation = generation;
            row->role = role;
            return k + 1;
        }

        if (row->len == 0 && free == none) {
            free = k;

        } else if (row->len && row->generation != generation && stale == none) {
            stale = k;
        }
    }

    pick = (free != none) ? free : stale;

    if (pick == none) {
        return 0;
    }

    row = &stats->server[pick];
    ngx_memzero(row, sizeof(ngx_http_consent_server_row_t));
    row->len = len;
    ngx_memcpy(row->name, name->data, len);
    row->role = role;
    row->generation = generation;

    for (slot = 0; slot <= NGX_HTTP_CONSENT_COUNTER_SETS; slot++) {
        ngx_memzero((void *) stats->slot[slot].store[pick + 1],
                    sizeof(stats->slot[slot].store[pick + 1]));
    }

    return pick + 1;
}


/* Gives each server the configuration names its row. */
static void
ngx_http_consent_stats_rows(ngx_http_consent_stats_zone_t *stats,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_uint_t                        i;
    ngx_array_t                      *list;
    ngx_http_consent_redis_server_t  *server;

    cmcf->stats_generation = ++stats->generation;

    for (list = cmcf->redis; list; list = (list == cmcf->redis)
                                           ? cmcf->redis_sentinels : NULL)
    {
        server = (ngx_http_consent_redis_server_t *) list->elts;

        for (i = 0; i < list->nelts; i++) {
            server[i].stats_row = ngx_http_consent_stats_row(stats,
                                      cmcf->stats_generation, &server[i].name,
                                      server[i].role);
        }
    }
}


ngx_int_t
ngx_http_consent_stats_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_shared_memory_add(cf, &ngx_http_consent_stats_zone_name,
                                 ngx_align(sizeof(ngx_http_consent_stats_zone_t),
                                           ngx_pagesize) + 8 * ngx_pagesize,
                                 &ngx_http_consent_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_consent_stats_init_zone;
    zone->data = cmcf;
    zone->noreuse = 0;

    cmcf->stats_zone = zone;

    return NGX_OK;
}


/* this process's counters */
static ngx_http_consent_stats_t *
ngx_http_consent_worker_stats(ngx_http_consent_main_conf_t *cmcf)
{
    ngx_http_consent_stats_zone_t  *stats;

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;

    return &stats->slot[ngx_http_consent_my_set];
}


static ngx_http_consent_stats_t *
ngx_http_consent_stats(ngx_http_request_t *r)
{
    return ngx_http_consent_worker_stats((ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module));
}


/* every worker's counters, summed, into *total */
static void
ngx_http_consent_stats_sum(ngx_http_consent_main_conf_t *cmcf,
    ngx_http_consent_stats_t *total)
{
    ngx_uint_t                      i, k;
    ngx_atomic_t                   *sum;
    const ngx_atomic_t             *add;
    ngx_http_consent_stats_zone_t  *stats;

    const ngx_uint_t n = sizeof(ngx_http_consent_stats_t)
                         / sizeof(ngx_atomic_t);

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;
    sum = (ngx_atomic_t *) total;

    ngx_memzero((void *) total, sizeof(ngx_http_consent_stats_t));

    for (i = 0; i <= NGX_HTTP_CONSENT_COUNTER_SETS; i++) {
        add = (const ngx_atomic_t *) &stats->slot[i];

        for (k = 0; k < n; k++) {
            sum[k] += add[k];
        }
    }
}


void
ngx_http_consent_count_request(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    ngx_uint_t                     i;
    ngx_http_consent_stats_t      *st;
    ngx_http_consent_main_conf_t  *cmcf;

    st = ngx_http_consent_stats(r);
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    ngx_http_consent_add(&st->requests, 1);

    if (ctx->has_token_arg) {
        ngx_http_consent_add(&st->tokens[0][(int) ctx->purl_status], 1);
    }

    if (ctx->carried_uid) {
        ngx_http_consent_add(&st->tokens[1][(int) ctx->uid_status], 1);
    }

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        ngx_http_consent_add(
            &st->decisions[i][(ctx->decision.granted & consent::purpose_bit(i))
                              ? 1 : 0], 1);
    }

    if (!ctx->conf->dry_run) {
        ngx_http_consent_add(&st->stripped_args, ctx->stripped_args);
        ngx_http_consent_add(&st->stripped_cookies, ctx->stripped_cookies);
    }
}


void
ngx_http_consent_count_set_cookies(ngx_http_request_t *r, ngx_uint_t removed)
{
    if (removed) {
        ngx_http_consent_add(&ngx_http_consent_stats(r)->stripped_set_cookies,
                             removed);
    }
}


void
ngx_http_consent_count_uid(ngx_http_request_t *r, consent::UidAction action)
{
    ngx_http_consent_add(&ngx_http_consent_stats(r)->uid[(int) action], 1);
}


/*
 * A worker (or the single process) takes a set of counters to hold alone:
 * its own number's when free, else the first free one. A set is free when
 * no process holds it, when its holder has died, or when the holder's pid
 * is this process's (a worker long dead, its pid given to this one).
 */
void
ngx_http_consent_stats_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      k, i;
    ngx_atomic_uint_t               holder;
    ngx_http_consent_main_conf_t   *cmcf;
    ngx_http_consent_stats_zone_t  *stats;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return;
    }

    cmcf = ngx_http_consent_stats_conf(cycle);
    if (cmcf == NULL) {
        return;
    }

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;

    for (k = 0; k < NGX_HTTP_CONSENT_COUNTER_SETS; k++) {
        i = (ngx_worker + k) % NGX_HTTP_CONSENT_COUNTER_SETS;
        holder = stats->holder[i];

        if (holder != 0 && holder != (ngx_atomic_uint_t) ngx_pid
            && !ngx_http_consent_process_gone((ngx_pid_t) holder))
        {
            continue;
        }

        if (ngx_atomic_cmp_set(&stats->holder[i], holder,
                               (ngx_atomic_uint_t) ngx_pid))
        {
            ngx_http_consent_my_set = i;
            return;
        }
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "consent: all %d counter sets are held by other processes, "
                  "this worker counts in the shared set",
                  NGX_HTTP_CONSENT_COUNTER_SETS);
}


/* The process exits: its set is free for the next one. */
void
ngx_http_consent_stats_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_consent_main_conf_t   *cmcf;
    ngx_http_consent_stats_zone_t  *stats;

    cmcf = ngx_http_consent_stats_conf(cycle);

    if (cmcf != NULL && ngx_http_consent_my_set != NGX_HTTP_CONSENT_SHARED_SET) {
        stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;
        (void) ngx_atomic_cmp_set(&stats->holder[ngx_http_consent_my_set],
                                  (ngx_atomic_uint_t) ngx_pid, 0);
    }

    ngx_http_consent_my_set = NGX_HTTP_CONSENT_SHARED_SET;
}


/* The cycle's configuration, when it counts at all. */
static ngx_http_consent_main_conf_t *
ngx_http_consent_stats_conf(ngx_cycle_t *cycle)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_consent_module);

    return (cmcf && cmcf->stats_zone) ? cmcf : NULL;
}


void
ngx_http_consent_count_store(ngx_cycle_t *cycle,
    ngx_http_consent_store_counter_e counter)
{
    ngx_http_consent_stats_t      *st;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_consent_stats_conf(cycle);
    if (cmcf == NULL) {
        return;
    }

    st = ngx_http_consent_worker_stats(cmcf);
    ngx_http_consent_add(&st->store[0][counter], 1);
}


void
ngx_http_consent_count_redis(ngx_http_consent_redis_server_t *server,
    ngx_http_consent_store_counter_e counter)
{
    ngx_http_consent_stats_t      *st;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_consent_stats_conf((ngx_cycle_t *) ngx_cycle);
    if (cmcf == NULL) {
        return;
    }

    st = ngx_http_consent_worker_stats(cmcf);
    ngx_http_consent_add(&st->store[server->stats_row][counter], 1);
}


void
ngx_http_consent_stats_server(ngx_http_consent_redis_server_t *server)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = ngx_http_consent_stats_conf((ngx_cycle_t *) ngx_cycle);
    if (cmcf == NULL) {
        return;
    }

    shpool = (ngx_slab_pool_t *) cmcf->stats_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    server->stats_row = ngx_http_consent_stats_row(
                            (ngx_http_consent_stats_zone_t *)
                                cmcf->stats_zone->data,
                            cmcf->stats_generation, &server->name,
                            server->role);
    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_consent_redis_state(ngx_http_consent_redis_server_t *server,
    ngx_uint_t up)
{
    ngx_http_consent_main_conf_t   *cmcf;
    ngx_http_consent_conn_view_t   *view;
    ngx_http_consent_stats_zone_t  *stats;

    cmcf = ngx_http_consent_stats_conf((ngx_cycle_t *) ngx_cycle);

    /* a sentinel: line is no server: its row counts failed discoveries */
    if (cmcf == NULL || server->stats_row == 0 || server->master.len) {
        return;
    }

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;
    stats->server[server->stats_row - 1].role = server->role;

    view = &stats->server[server->stats_row - 1]
                .view[ngx_worker % NGX_HTTP_CONSENT_STATS_SLOTS];

    view->up = up;
    view->pid = ngx_pid;
}


/* The worker exits: its views go with it (unless a successor took them). */
void
ngx_http_consent_redis_state_exit(ngx_cycle_t *cycle)
{
    ngx_uint_t                      k;
    ngx_http_consent_main_conf_t   *cmcf;
    ngx_http_consent_conn_view_t   *view;
    ngx_http_consent_stats_zone_t  *stats;

    cmcf = ngx_http_consent_stats_conf(cycle);
    if (cmcf == NULL) {
        return;
    }

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;

    for (k = 0; k < NGX_HTTP_CONSENT_STATS_SERVERS; k++) {
        view = &stats->server[k].view[ngx_worker % NGX_HTTP_CONSENT_STATS_SLOTS];

        if (view->pid == ngx_pid) {
            view->pid = 0;
        }
    }
}


/*
 * consent_redis_up: 1 while every live worker that reported on the server
 * has its connection up (and one did), else 0.
 */
static ngx_uint_t
ngx_http_consent_redis_up(ngx_http_consent_stats_zone_t *stats,
    ngx_uint_t row)
{
    ngx_uint_t                     i, seen;
    ngx_http_consent_conn_view_t  *view;

    if (row == 0) {
        return 0;
    }

    seen = 0;

    for (i = 0; i < NGX_HTTP_CONSENT_STATS_SLOTS; i++) {
        view = &stats->server[row - 1].view[i];

        if (view->pid == 0
            || ngx_http_consent_process_gone(view->pid))
        {
            continue;
        }

        if (!view->up) {
            return 0;
        }

        seen = 1;
    }

    return seen;
}


void
ngx_http_consent_count_redirect(ngx_http_request_t *r)
{
    ngx_http_consent_add(&ngx_http_consent_stats(r)->redirects, 1);
}


/* ---- consent_status: Prometheus text exposition ---- */

static const char *ngx_http_consent_token_sources[] = { "purl", "uid" };


static u_char *
ngx_http_consent_metric_head(u_char *p, const char *name, const char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n", name, help,
                       name);
}


/* a label value: backslash, double quote and newline escaped */
static u_char *
ngx_http_consent_label(u_char *p, ngx_str_t *value)
{
    size_t  i;

    for (i = 0; i < value->len; i++) {
        switch (value->data[i]) {
        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = value->data[i];
            break;
        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;
        default:
            *p++ = value->data[i];
        }
    }

    return p;
}


static u_char *
ngx_http_consent_status_store(u_char *p, ngx_http_consent_main_conf_t *cmcf,
    ngx_http_consent_stats_t *st)
{
    static const struct {
        const char  *name;
        const char  *help;
        ngx_uint_t   counter;
    } metrics[] = {
        { "consent_cache_hits_total", "Lookups answered by the shared cache.",
          NGX_HTTP_CONSENT_CACHE_HIT },
        { "consent_cache_misses_total", "Lookups the shared cache could not "
          "answer (absent, stale or past ttl).", NGX_HTTP_CONSENT_CACHE_MISS },
        { "consent_cache_evictions_total", "Records evicted from a full cache.",
          NGX_HTTP_CONSENT_CACHE_EVICTION },
        { "consent_updates_applied_total", "Update messages applied from the "
          "channel.", NGX_HTTP_CONSENT_UPDATE_APPLIED },
        { "consent_redis_failovers_total", "Failovers followed: the primary "
          "the Sentinels name changed.", NGX_HTTP_CONSENT_FAILOVER },
    }, server_metrics[] = {
        { "consent_redis_lookups_total", "HGETALL lookups sent to Redis.",
          NGX_HTTP_CONSENT_REDIS_LOOKUP },
        { "consent_redis_merged_total", "Lookups that joined one already in "
          "flight for the same subject.", NGX_HTTP_CONSENT_REDIS_MERGED },
        { "consent_redis_timeouts_total", "Lookups, connects and pings not "
          "answered in time.", NGX_HTTP_CONSENT_REDIS_TIMEOUT },
        { "consent_redis_reconnects_total", "Connections lost after they were "
          "up.", NGX_HTTP_CONSENT_REDIS_RECONNECT },
        { "consent_redis_fast_failures_total", "Lookups failed at once while "
          "Redis was known to be down.", NGX_HTTP_CONSENT_REDIS_FAST_FAIL },
    };

    static const struct {
        const char  *kind;
        ngx_uint_t   counter;
    } errors[] = {
        { "connect", NGX_HTTP_CONSENT_ERR_CONNECT },
        { "io", NGX_HTTP_CONSENT_ERR_IO },
        { "reply", NGX_HTTP_CONSENT_ERR_REPLY },
        { "protocol", NGX_HTTP_CONSENT_ERR_PROTOCOL },
        { "malformed", NGX_HTTP_CONSENT_ERR_MALFORMED },
        { "role", NGX_HTTP_CONSENT_ERR_ROLE },
    };

    static const char *roles[] = { "primary", "replica", "sentinel" };

    ngx_str_t                        name;
    ngx_uint_t                       i, k;
    ngx_http_consent_stats_zone_t   *stats;
    ngx_http_consent_server_row_t   *row;

    stats = (ngx_http_consent_stats_zone_t *) cmcf->stats_zone->data;

    for (i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        p = ngx_http_consent_metric_head(p, metrics[i].name, metrics[i].help);
        p = ngx_sprintf(p, "%s %uA\n", metrics[i].name,
                        st->store[0][metrics[i].counter]);
    }

    /* the servers this configuration named, or its workers found */
#define ngx_http_consent_each_row(k, row)                                     \
    for (k = 0, row = &stats->server[0];                                      \
         k < NGX_HTTP_CONSENT_STATS_SERVERS; k++, row++)                      \
        if (row->len && row->generation == cmcf->stats_generation)

    for (i = 0; i < sizeof(server_metrics) / sizeof(server_metrics[0]); i++) {
        p = ngx_http_consent_metric_head(p, server_metrics[i].name,
                                         server_metrics[i].help);

        ngx_http_consent_each_row(k, row) {
            name.data = row->name;
            name.len = row->len;
            p = ngx_sprintf(p, "%s{server=\"", server_metrics[i].name);
            p = ngx_http_consent_label(p, &name);
            p = ngx_sprintf(p, "\"} %uA\n",
                            st->store[k + 1][server_metrics[i].counter]);
        }
    }

    p = ngx_http_consent_metric_head(p, "consent_redis_errors_total",
                                     "Redis errors by kind.");
    ngx_http_consent_each_row(k, row) {
        name.data = row->name;
        name.len = row->len;

        for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
            p = ngx_sprintf(p, "consent_redis_errors_total{server=\"");
            p = ngx_http_consent_label(p, &name);
            p = ngx_sprintf(p, "\",kind=\"%s\"} %uA\n", errors[i].kind,
                            st->store[k + 1][errors[i].counter]);
        }
    }

    p = ngx_sprintf(p, "# HELP consent_redis_up 1 while every worker's "
                    "connection to the server is up.\n"
                    "# TYPE consent_redis_up gauge\n");
    ngx_http_consent_each_row(k, row) {
        if (row->len > 9 && ngx_strncmp(row->name, "sentinel:", 9) == 0) {
            continue;
        }

        name.data = row->name;
        name.len = row->len;
        p = ngx_sprintf(p, "consent_redis_up{server=\"");
        p = ngx_http_consent_label(p, &name);
        p = ngx_sprintf(p, "\",role=\"%s\"} %ui\n", roles[row->role % 3],
                        ngx_http_consent_redis_up(stats, k + 1));
    }

#undef ngx_http_consent_each_row

    p = ngx_sprintf(p, "# HELP consent_subscription_up 1 while the update "
                    "channel subscription is alive.\n"
                    "# TYPE consent_subscription_up gauge\n"
                    "consent_subscription_up %ui\n",
                    cmcf->cache_zone
                    ? ngx_http_consent_cache_subscription_up(
                          cmcf->cache_zone, (uint64_t) ngx_current_msec)
                    : (ngx_uint_t) 0);

    return p;
}


static ngx_int_t
ngx_http_consent_status_handler(ngx_http_request_t *r)
{
    size_t                         size;
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, j;
    ngx_chain_t                    out;
    ngx_http_consent_stats_t      *st, total;
    ngx_http_consent_purpose_t    *purpose;
    ngx_http_consent_main_conf_t  *cmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    ngx_http_consent_stats_sum(cmcf, &total);
    st = &total;
    purpose = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

    /* generous: fixed text, plus one line per label set */
    size = 8192 + cmcf->purposes.nelts * 2 * (128 + NGX_ATOMIC_T_LEN);

    /* a line per server and counter, its name escaped (at most doubled) */
    size += NGX_HTTP_CONSENT_STATS_SERVERS * 16
            * (128 + 2 * NGX_HTTP_CONSENT_SERVER_NAME + NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    p = ngx_http_consent_metric_head(p, "consent_requests_total",
                                     "Main requests the module decided.");
    p = ngx_sprintf(p, "consent_requests_total %uA\n", st->requests);

    p = ngx_http_consent_metric_head(p, "consent_tokens_total",
                                     "Tokens seen, by where they came from "
                                     "(purl argument or uid cookie) and "
                                     "status.");
    for (i = 0; i < NGX_HTTP_CONSENT_TOKEN_SOURCES; i++) {
        for (j = 1; j < NGX_HTTP_CONSENT_TOKEN_STATUSES; j++) {
            p = ngx_sprintf(p, "consent_tokens_total{source=\"%s\","
                            "status=\"%s\"} %uA\n",
                            ngx_http_consent_token_sources[i],
                            consent::token_status_name(
                                (consent::TokenStatus) j),
                            st->tokens[i][j]);
        }
    }

    p = ngx_http_consent_metric_head(p, "consent_decisions_total",
                                     "Decisions by purpose and result.");
    for (i = 0; i < cmcf->purposes.nelts; i++) {
        p = ngx_sprintf(p, "consent_decisions_total{purpose=\"%V\","
                        "result=\"granted\"} %uA\n"
                        "consent_decisions_total{purpose=\"%V\","
                        "result=\"denied\"} %uA\n",
                        &purpose[i].name, st->decisions[i][1],
                        &purpose[i].name, st->decisions[i][0]);
    }

    p = ngx_http_consent_metric_head(p, "consent_stripped_args_total",
                                     "Query arguments removed, the token "
                                     "argument included.");
    p = ngx_sprintf(p, "consent_stripped_args_total %uA\n",
                    st->stripped_args);

    p = ngx_http_consent_metric_head(p, "consent_stripped_cookies_total",
                                     "Request cookies removed, the UID "
                                     "cookie included.");
    p = ngx_sprintf(p, "consent_stripped_cookies_total %uA\n",
                    st->stripped_cookies);

    p = ngx_http_consent_metric_head(p, "consent_stripped_set_cookies_total",
                                     "Upstream Set-Cookie headers dropped.");
    p = ngx_sprintf(p, "consent_stripped_set_cookies_total %uA\n",
                    st->stripped_set_cookies);

    p = ngx_http_consent_metric_head(p, "consent_redirects_total",
                                     "Token redirects answered.");
    p = ngx_sprintf(p, "consent_redirects_total %uA\n", st->redirects);

    p = ngx_http_consent_metric_head(p, "consent_uid_cookies_total",
                                     "UID cookies set and cleared.");
    p = ngx_sprintf(p, "consent_uid_cookies_total{action=\"set\"} %uA\n"
                    "consent_uid_cookies_total{action=\"clear\"} %uA\n",
                    st->uid[(int) consent::UidAction::set],
                    st->uid[(int) consent::UidAction::clear]);

    p = ngx_http_consent_status_store(p, cmcf, st);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


char *
ngx_http_consent_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_consent_status_handler;

    return NGX_CONF_OK;
}
