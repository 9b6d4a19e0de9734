/*
 * consent_cache: consent records shared by all workers, in a slab-allocated
 * shared-memory zone with an rbtree by subject and an LRU queue, as nginx's
 * own limit_req and ssl session caches do. Nodes are plain data. The zone's
 * mutex is held to find and copy a node, never across I/O.
 *
 * When the zone is full the least recently used nodes go; a node that
 * still cannot be allocated is simply not cached. A request never fails
 * because of the cache.
 *
 * Which cached value may be served is decided by store/cache_rules.h. The
 * zone also keeps when subjects it holds no node for were last announced
 * (announced_ms), and the subscription's heartbeat, the moment since
 * which cached values can be trusted (valid_since) and the server whose
 * reads may be cached, these three written by the one subscriber of the
 * instance.
 */

#include "ngx_module/ngx_http_consent_cache.h"

#include "store/record.h"


typedef struct {
    ngx_rbtree_node_t              node;     /* key: crc32 of the subject */
    ngx_queue_t                    queue;    /* LRU, most recent first */
    consent::CacheSlot             slot;
    uint32_t                       purposes;  /* crc of the layout of slot.record */
    uint64_t                       announced_ms;  /* the last announcement into it */
    u_char                         len;
    u_char                         subject[consent::kMaxSubject];
} ngx_http_consent_cache_node_t;


/* a power of two; 8 KB, well within the smallest zone (8 pages) */
#define NGX_HTTP_CONSENT_ANNOUNCED_SLOTS  1024


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    lru;
    ngx_atomic_t                   valid_since_ms;
    ngx_atomic_t                   flushed_ms;    /* the last "*" */
    ngx_atomic_t                   heartbeat_ms;
    ngx_pid_t                      sub_pid;   /* the subscriber that beats */

    /* the address of the server it hears (0 long: none known) */
    size_t                         sub_server_len;
    u_char                         sub_server[NGX_SOCKADDR_STRLEN];

    /*
     * For subjects without a node, by hash: when an update of one was last
     * announced, or its node evicted (which forgets the announced version).
     * A read sent no later than that is not cached: it may have raced the
     * update. A subject with a node keeps the rule by version instead
     * (store/cache_rules.h). Subjects share slots, so another subject's
     * update may keep a read out of the cache too; that costs one more
     * Redis read, never a stale answer. This way an update for a subject
     * this edge does not hold takes no node: most updates are for
     * customers who are not browsing at that moment, and nodes made for
     * them would push the records of those who are out of the cache.
     */
    uint64_t                       announced_ms[NGX_HTTP_CONSENT_ANNOUNCED_SLOTS];
} ngx_http_consent_cache_sh_t;


typedef struct {
    ngx_http_consent_cache_sh_t   *sh;
    ngx_slab_pool_t               *shpool;
    ngx_http_consent_main_conf_t  *cmcf;

    /*
     * A record keeps its purposes as bits by declaration order. A reload
     * may declare them in another order and still reuse the zone, while
     * the old workers keep storing records in their order: a node's record
     * is read only by workers whose purposes it was stored with.
     */
    uint32_t                       purposes;
} ngx_http_consent_cache_t;


static ngx_int_t ngx_http_consent_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


static ngx_int_t
ngx_http_consent_cache_cmp(ngx_http_consent_cache_node_t *n,
    std::string_view subject)
{
    if (n->len != subject.size()) {
        return (ngx_int_t) n->len - (ngx_int_t) subject.size();
    }

    return ngx_memcmp(n->subject, subject.data(), n->len);
}


static void
ngx_http_consent_cache_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t             **p;
    ngx_http_consent_cache_node_t  *n, *t;

    n = (ngx_http_consent_cache_node_t *) node;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            t = (ngx_http_consent_cache_node_t *) temp;
            p = (ngx_http_consent_cache_cmp(
                     n, std::string_view((char *) t->subject, t->len)) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static uint64_t *
ngx_http_consent_cache_announced(ngx_http_consent_cache_t *cache, uint32_t hash)
{
    return &cache->sh->announced_ms[hash
                                    & (NGX_HTTP_CONSENT_ANNOUNCED_SLOTS - 1)];
}


/*
 * The time of an event the cache records (an announcement, an eviction, a
 * "*"): the time now, not this loop iteration's cached time, which may be
 * older (by a tick with timer_resolution) than the time another worker
 * stamped a read sent after the event with; that read must still count as
 * one that may have raced it.
 */
static uint64_t
ngx_http_consent_cache_event_ms(void)
{
    ngx_time_update();

    return (uint64_t) ngx_current_msec;
}


/* Stamps the subject's slot of announced_ms. Called with the mutex held. */
static void
ngx_http_consent_cache_stamp(ngx_http_consent_cache_t *cache, uint32_t hash)
{
    uint64_t  *at, now;

    now = ngx_http_consent_cache_event_ms();
    at = ngx_http_consent_cache_announced(cache, hash);

    if (*at < now) {
        *at = now;
    }
}


static ngx_http_consent_cache_node_t *
ngx_http_consent_cache_find(ngx_http_consent_cache_t *cache,
    std::string_view subject, uint32_t hash)
{
    ngx_int_t                       rc;
    ngx_rbtree_node_t              *node, *sentinel;
    ngx_http_consent_cache_node_t  *n;

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_http_consent_cache_node_t *) node;
        rc = ngx_http_consent_cache_cmp(n, subject);

        if (rc == 0) {
            return n;
        }

        /* the node compares against the subject: go the other way round */
        node = (rc > 0) ? node->left : node->right;
    }

    return NULL;
}


/* Finds or creates the node; NULL when the zone is full even after eviction. */
static ngx_http_consent_cache_node_t *
ngx_http_consent_cache_node(ngx_http_consent_cache_t *cache,
    std::string_view subject, uint32_t hash, ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_http_consent_cache_node_t  *n, *old;

    n = ngx_http_consent_cache_find(cache, subject, hash);
    if (n) {
        ngx_queue_remove(&n->queue);
        ngx_queue_insert_head(&cache->sh->lru, &n->queue);
        return n;
    }

    for (i = 0; i < 8; i++) {
        n = (ngx_http_consent_cache_node_t *)
                ngx_slab_alloc_locked(cache->shpool,
                                      sizeof(ngx_http_consent_cache_node_t));
        if (n) {
            break;
        }

        if (ngx_queue_empty(&cache->sh->lru)) {
            return NULL;
        }

        q = ngx_queue_last(&cache->sh->lru);
        old = ngx_queue_data(q, ngx_http_consent_cache_node_t, queue);

        /* before the delete, which zeroes node.key */
        ngx_http_consent_cache_stamp(cache, (uint32_t) old->node.key);
        ngx_queue_remove(q);
        ngx_rbtree_delete(&cache->sh->rbtree, &old->node);
        ngx_slab_free_locked(cache->shpool, old);

        ngx_http_consent_count_store(cycle, NGX_HTTP_CONSENT_CACHE_EVICTION);
    }

    if (n == NULL) {
        return NULL;
    }

    ngx_memzero(&n->node, sizeof(ngx_rbtree_node_t));
    new (&n->slot) consent::CacheSlot();
    n->purposes = cache->purposes;
    n->announced_ms = 0;
    n->node.key = hash;
    n->len = (u_char) subject.size();
    ngx_memcpy(n->subject, subject.data(), subject.size());

    ngx_rbtree_insert(&cache->sh->rbtree, &n->node);
    ngx_queue_insert_head(&cache->sh->lru, &n->queue);

    return n;
}


ngx_uint_t
ngx_http_consent_cache_get(ngx_shm_zone_t *zone, std::string_view subject,
    consent::CacheSlot *slot)
{
    uint32_t                        hash;
    ngx_http_consent_cache_t       *cache;
    ngx_http_consent_cache_node_t  *n;

    cache = (ngx_http_consent_cache_t *) zone->data;
    hash = ngx_crc32_short((u_char *) subject.data(), subject.size());

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_http_consent_cache_find(cache, subject, hash);

    if (n && n->purposes != cache->purposes) {
        /* stored by workers that number the purposes otherwise */
        n = NULL;
    }

    if (n) {
        *slot = n->slot;

        /* a hot subject is usually at the head already: no write, so its
         * cache lines are not passed between the workers' cores */
        if (ngx_queue_head(&cache->sh->lru) != &n->queue) {
            ngx_queue_remove(&n->queue);
            ngx_queue_insert_head(&cache->sh->lru, &n->queue);
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return n != NULL;
}


ngx_uint_t
ngx_http_consent_cache_store(ngx_shm_zone_t *zone, std::string_view subject,
    const consent::Record *record, uint64_t sent_ms, uint64_t conn_ms,
    const ngx_str_t *server, const consent::CacheClock &clock,
    consent::Record *newer, ngx_cycle_t *cycle)
{
    uint32_t                        hash;
    ngx_uint_t                      rc, vouched;
    consent::Advance                advance;
    ngx_http_consent_cache_t       *cache;
    ngx_http_consent_cache_node_t  *n;

    cache = (ngx_http_consent_cache_t *) zone->data;
    hash = ngx_crc32_short((u_char *) subject.data(), subject.size());

    rc = NGX_HTTP_CONSENT_CACHE_REFUSED;
    advance = consent::Advance::no;

    ngx_shmtx_lock(&cache->shpool->mutex);

    /*
     * What the subscription hears, its server has applied first: a read
     * of that server sent after an announcement has the announced version.
     * So has one of the primary. Another replica may lag behind it (a
     * worker that has not left a cut-off replica yet, while worker 0 has),
     * and an announcement for a subject without a node leaves only a time
     * behind, which a later read of it would pass: such a read answers
     * the requests that asked, and may only move a slot forward, perhaps
     * held only to outrank older reads (consent::slot_may_advance()).
     */
    vouched = server == NULL
              || (server->len == cache->sh->sub_server_len
                  && ngx_memcmp(server->data, cache->sh->sub_server,
                                server->len) == 0);

    if (*ngx_http_consent_cache_announced(cache, hash) < sent_ms) {
        n = vouched ? ngx_http_consent_cache_node(cache, subject, hash, cycle)
                    : ngx_http_consent_cache_find(cache, subject, hash);

        if (n && n->purposes == cache->purposes
            && consent::slot_holds_newer(n->slot, record, clock, conn_ms))
        {
            *newer = n->slot.record;
            rc = NGX_HTTP_CONSENT_CACHE_NEWER;

        } else if (n) {
            if (vouched) {
                advance = consent::Advance::servable;

            } else if (n->purposes == cache->purposes) {
                advance = consent::slot_may_advance(n->slot, record, clock);
            }

            if (advance != consent::Advance::no
                && consent::slot_store(&n->slot, record, sent_ms,
                                       advance == consent::Advance::held_only))
            {
                n->purposes = cache->purposes;
                rc = NGX_HTTP_CONSENT_CACHE_STORED;
            }
        }
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


void
ngx_http_consent_cache_announce(ngx_shm_zone_t *zone, std::string_view subject,
    uint64_t version, ngx_cycle_t *cycle)
{
    uint32_t                        hash;
    ngx_http_consent_cache_t       *cache;
    ngx_http_consent_cache_node_t  *n;

    cache = (ngx_http_consent_cache_t *) zone->data;
    hash = ngx_crc32_short((u_char *) subject.data(), subject.size());

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = ngx_http_consent_cache_find(cache, subject, hash);

    if (n) {
        /*
         * The version rules what may be stored; the time, what a request
         * may join (ngx_http_consent_cache_announced_since()). The node's
         * own time, not its slot's: stamping the shared slot would also
         * keep out of the cache a read sent in this very millisecond,
         * though it reads the announced version.
         */
        consent::slot_announce(&n->slot, version);
        n->announced_ms = ngx_http_consent_cache_event_ms();

    } else {
        /* a lookup may be in flight: see announced_ms */
        ngx_http_consent_cache_stamp(cache, hash);
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_uint_t
ngx_http_consent_cache_announced_since(ngx_shm_zone_t *zone,
    std::string_view subject, uint64_t ms)
{
    uint32_t                        hash;
    ngx_uint_t                      since;
    ngx_http_consent_cache_t       *cache;
    ngx_http_consent_cache_node_t  *n;

    cache = (ngx_http_consent_cache_t *) zone->data;
    hash = ngx_crc32_short((u_char *) subject.data(), subject.size());

    ngx_shmtx_lock(&cache->shpool->mutex);

    since = *ngx_http_consent_cache_announced(cache, hash) >= ms;

    if (!since) {
        n = ngx_http_consent_cache_find(cache, subject, hash);
        since = n && n->announced_ms >= ms;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return since;
}


void
ngx_http_consent_cache_flush(ngx_shm_zone_t *zone)
{
    ngx_http_consent_cache_t  *cache;

    /* everything fetched before now is stale: no walk over the tree */

    cache = (ngx_http_consent_cache_t *) zone->data;
    cache->sh->valid_since_ms = ngx_http_consent_cache_event_ms();
    cache->sh->flushed_ms = cache->sh->valid_since_ms;
}


/*
 * The subscriber of this process has just subscribed. Messages published
 * before now may have been lost, so everything cached before now becomes
 * stale, unless another live process held the subscription until now: on
 * a reload the old worker 0 stays subscribed while the new one joins, and
 * the cache stays warm. A crashed subscriber is reaped (and gone) before
 * its successor starts, so its gap is never mistaken for an overlap.
 *
 * Without such an overlap, the subscription is trusted from its first
 * heartbeat on, not from now: a subscription that hears nothing of what
 * is published (a heartbeat its user may not publish, a replica cut off
 * from where writers publish) must not serve the cache for the 3 s it
 * takes to be found dead, again after every resubscribe.
 */
void
ngx_http_consent_cache_subscribed(ngx_shm_zone_t *zone, uint64_t now_ms,
    const ngx_str_t *server)
{
    ngx_pid_t                  prev;
    ngx_uint_t                 alive;
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    prev = cache->sh->sub_pid;
    alive = cache->sh->heartbeat_ms
            && now_ms < cache->sh->heartbeat_ms
                        + NGX_HTTP_CONSENT_HEARTBEAT_DEAD;

    if (!(alive && prev > 0 && prev != ngx_pid && kill(prev, 0) == 0)) {
        cache->sh->valid_since_ms = now_ms;
        cache->sh->heartbeat_ms = 0;
    }

    cache->sh->sub_pid = ngx_pid;

    /* too long to keep: then only the primary's reads are cached */
    cache->sh->sub_server_len = server->len <= sizeof(cache->sh->sub_server)
                                ? server->len : 0;
    ngx_memcpy(cache->sh->sub_server, server->data,
               cache->sh->sub_server_len);

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


/* Only the process holding the subscription speaks for it. */
void
ngx_http_consent_cache_heartbeat(ngx_shm_zone_t *zone, uint64_t now_ms)
{
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) zone->data;

    if (cache->sh->sub_pid == ngx_pid) {
        cache->sh->heartbeat_ms = now_ms;
    }
}


void
ngx_http_consent_cache_unsubscribed(ngx_shm_zone_t *zone)
{
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) zone->data;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->sh->sub_pid == ngx_pid) {
        cache->sh->heartbeat_ms = 0;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_uint_t
ngx_http_consent_cache_subscription_up(ngx_shm_zone_t *zone, uint64_t now_ms)
{
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) zone->data;

    uint64_t heartbeat = cache->sh->heartbeat_ms;

    return heartbeat && now_ms < heartbeat + NGX_HTTP_CONSENT_HEARTBEAT_DEAD;
}


consent::CacheClock
ngx_http_consent_cache_clock(ngx_shm_zone_t *zone, ngx_msec_t ttl,
    uint64_t now_ms)
{
    consent::CacheClock        clock;
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) zone->data;

    clock.now_ms = now_ms;
    clock.ttl_ms = ttl;
    clock.valid_since_ms = cache->sh->valid_since_ms;
    clock.flushed_ms = cache->sh->flushed_ms;
    clock.subscribed = ngx_http_consent_cache_subscription_up(zone, now_ms);

    return clock;
}


/* consent_cache zone=NAME:SIZE [ttl=TIME]; */
char *
ngx_http_consent_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    u_char                    *p;
    ssize_t                    size;
    ngx_str_t                 *value, name, s;
    ngx_uint_t                 i;
    ngx_msec_t                 ttl;
    ngx_http_consent_cache_t  *cache;

    if (cmcf->cache_zone) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;
    size = 0;
    name.len = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL || p == name.data) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"consent_cache\": invalid zone \"%V\", "
                                   "expected zone=NAME:SIZE", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            name.len = p - name.data;
            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"consent_cache\": invalid zone size "
                                   "\"%V\"", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"consent_cache\": zone \"%V\" is too "
                                   "small, at least %uzk", &value[i],
                                   8 * ngx_pagesize / 1024);
                return (char *) NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 0);
            if (ttl == (ngx_msec_t) NGX_ERROR || ttl == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"consent_cache\": invalid duration in "
                                   "\"%V\", expected e.g. 60s", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            cmcf->cache_ttl = ttl;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"consent_cache\": invalid parameter \"%V\"",
                               &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_cache\" must have \"zone=NAME:SIZE\"");
        return (char *) NGX_CONF_ERROR;
    }

    cache = (ngx_http_consent_cache_t *)
                ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_cache_t));
    if (cache == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    cmcf->cache_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_consent_module);
    if (cmcf->cache_zone == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->cache_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_cache\": zone \"%V\" is already used",
                           &name);
        return (char *) NGX_CONF_ERROR;
    }

    cache->cmcf = cmcf;

    cmcf->cache_zone->init = ngx_http_consent_cache_init_zone;
    cmcf->cache_zone->data = cache;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_consent_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_consent_cache_t  *ocache = (ngx_http_consent_cache_t *) data;
    ngx_http_consent_cache_t  *cache;

    cache = (ngx_http_consent_cache_t *) shm_zone->data;

    /* the configuration is complete now: every purpose is declared */
    cache->purposes = ngx_http_consent_purposes_crc(cache->cmcf);

    if (ocache) {
        /* a reload: the records stay, and stay under the same rules */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = (ngx_http_consent_cache_sh_t *) cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = (ngx_http_consent_cache_sh_t *)
                    ngx_slab_calloc(cache->shpool,
                                    sizeof(ngx_http_consent_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_consent_cache_insert_value);
    ngx_queue_init(&cache->sh->lru);

    /* until a subscriber reports in, nothing cached is trusted */
    cache->sh->heartbeat_ms = 0;
    cache->sh->valid_since_ms = 0;

    cache->shpool->log_nomem = 0;

    return NGX_OK;
}
