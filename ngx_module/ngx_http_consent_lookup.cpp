/*
 * The lookup step: the subject's consent record, from the shared cache or
 * from Redis, without ever blocking the worker.
 *
 * The contract with the handler: NGX_OK when ctx->outcome (and ctx->record,
 * ctx->record_source) are set now; NGX_AGAIN when the request waits. A
 * waiting request is woken through its connection's write event, with
 * ctx->state NGX_HTTP_CONSENT_LOOKED, and the handler continues there.
 *
 * Per worker: one connection for lookups (the topology's `read`: the
 * primary or a replica, ngx_http_consent_topology.h); identical lookups in flight are
 * merged (one HGETALL serves every request waiting for that subject); a
 * lookup not answered within `timeout` fails its requests and drops the
 * connection, which then counts as down, so that later requests fail fast
 * (consent_on_failure) until the background reconnect succeeds.
 *
 * Per instance: worker 0 holds the channel subscription and applies its
 * messages to the shared cache.
 */

#include "ngx_module/ngx_http_consent_cache.h"
#include "ngx_module/ngx_http_consent_topology.h"

#include "store/record.h"


/* The largest HGETALL reply accepted; anything larger is not a record. */
#define NGX_HTTP_CONSENT_MAX_REPLY  65536


typedef struct {
    ngx_str_node_t                 sn;        /* sn.str: the subject */
    ngx_queue_t                    waiters;   /* ngx_http_consent_ctx_t.wait_link */
    ngx_event_t                    timer;
    ngx_queue_t                    free_link;
    uint64_t                       sent_ms;   /* when HGETALL was sent */
    unsigned                       timed_out:1;
    unsigned                       in_tree:1;
    u_char                         subject[consent::kMaxSubject];
} ngx_http_consent_pending_t;


typedef struct {
    ngx_http_consent_main_conf_t  *cmcf;
    ngx_pool_t                    *pool;
    ngx_http_consent_topology_t   *topology;
    ngx_event_t                    heartbeat;
    ngx_str_t                      heartbeat_channel;
    uint64_t                       heartbeat_rx;
    ngx_uint_t                     heartbeat_refused;

    ngx_rbtree_t                   pending;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    free;

    std::string_view               names[consent::kMaxPurposes];
    consent::PurposeNames          purposes;
    u_char                        *key;       /* prefix{subject} scratch */
} ngx_http_consent_worker_t;


static ngx_http_consent_worker_t  *ngx_http_consent_worker;


static void ngx_http_consent_lookup_reply(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data);
static void ngx_http_consent_lookup_timeout(ngx_event_t *ev);
static void ngx_http_consent_pending_untree(ngx_http_consent_pending_t *p);


static uint64_t
ngx_http_consent_now_ms()
{
    /* monotonic, and the same clock in every worker */
    return (uint64_t) ngx_current_msec;
}


/* ---- the request side ------------------------------------------------ */

static void
ngx_http_consent_set_outcome(ngx_http_consent_ctx_t *ctx,
    consent::LookupOutcome outcome, const consent::Record *record,
    consent::Source source)
{
    ctx->outcome = outcome;
    ctx->record_source = source;

    if (record) {
        ctx->record = *record;
    }
}


ngx_int_t
ngx_http_consent_lookup(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    uint32_t                       hash;
    uint64_t                       now;
    std::string_view               argv[2];
    ngx_queue_t                   *q;
    consent::CacheSlot             slot;
    ngx_http_consent_worker_t     *w;
    ngx_http_consent_pending_t    *p;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    w = ngx_http_consent_worker;

    if (cmcf->redis == NULL || w == NULL) {
        ctx->outcome = consent::LookupOutcome::no_store;
        return NGX_OK;
    }

    std::string_view subject = ctx->claims.subject_view();
    now = ngx_http_consent_now_ms();

    if (cmcf->cache_zone) {
        if (ngx_http_consent_cache_get(cmcf->cache_zone, subject, &slot)
            && consent::slot_state(slot,
                   ngx_http_consent_cache_clock(cmcf->cache_zone,
                                                cmcf->cache_ttl, now))
               == consent::SlotState::fresh)
        {
            ngx_http_consent_count_store((ngx_cycle_t *) ngx_cycle, NGX_HTTP_CONSENT_CACHE_HIT);
            ngx_http_consent_set_outcome(ctx,
                slot.exists ? consent::LookupOutcome::record
                            : consent::LookupOutcome::no_record,
                slot.exists ? &slot.record : NULL, consent::Source::cache);
            return NGX_OK;
        }

        ngx_http_consent_count_store((ngx_cycle_t *) ngx_cycle, NGX_HTTP_CONSENT_CACHE_MISS);
    }

    if (w->topology->read.down) {
        /* known down: do not make every request wait for the timeout */
        ngx_http_consent_count_redis(w->topology->read.server,
                                     NGX_HTTP_CONSENT_REDIS_FAST_FAIL);
        ctx->outcome = consent::LookupOutcome::failure;
        return NGX_OK;
    }

    hash = ngx_crc32_short((u_char *) subject.data(), subject.size());

    ngx_str_t  s = { subject.size(), (u_char *) subject.data() };

    p = (ngx_http_consent_pending_t *)
            ngx_str_rbtree_lookup(&w->pending, &s, hash);

    if (p && cmcf->cache_zone
        && ngx_http_consent_cache_announced_since(cmcf->cache_zone, subject,
                                                  p->sent_ms))
    {
        /*
         * An update was announced since that lookup was sent: it may answer
         * with the older version, which this request, come after the
         * announcement, must not get. Its waiters keep it; later requests
         * wait for a new one.
         */
        ngx_http_consent_pending_untree(p);
        p = NULL;
    }

    if (p) {
        ngx_http_consent_count_redis(w->topology->read.server,
                                     NGX_HTTP_CONSENT_REDIS_MERGED);

    } else {
        if (!ngx_queue_empty(&w->free)) {
            q = ngx_queue_head(&w->free);
            ngx_queue_remove(q);
            p = ngx_queue_data(q, ngx_http_consent_pending_t, free_link);

        } else {
            p = (ngx_http_consent_pending_t *)
                    ngx_palloc(w->pool, sizeof(ngx_http_consent_pending_t));
            if (p == NULL) {
                ctx->outcome = consent::LookupOutcome::failure;
                return NGX_OK;
            }
        }

        ngx_memzero(p, sizeof(ngx_http_consent_pending_t));
        ngx_memcpy(p->subject, subject.data(), subject.size());
        p->sent_ms = now;
        p->sn.str.data = p->subject;
        p->sn.str.len = subject.size();
        p->sn.node.key = hash;
        ngx_queue_init(&p->waiters);

        argv[0] = "HGETALL";
        argv[1] = std::string_view(
            (char *) w->key,
            consent::record_key(std::string_view((char *) cmcf->redis_prefix.data,
                                                 cmcf->redis_prefix.len),
                                subject, (char *) w->key));

        if (ngx_http_consent_redis_send(&w->topology->read,
                                        ngx_http_consent_lookup_reply, p,
                                        argv, 2)
            != NGX_OK)
        {
            ngx_queue_insert_head(&w->free, &p->free_link);
            ngx_http_consent_count_redis(w->topology->read.server,
                                         NGX_HTTP_CONSENT_REDIS_FAST_FAIL);
            ctx->outcome = consent::LookupOutcome::failure;
            return NGX_OK;
        }

        ngx_http_consent_count_redis(w->topology->read.server,
                                     NGX_HTTP_CONSENT_REDIS_LOOKUP);

        ngx_rbtree_insert(&w->pending, &p->sn.node);
        p->in_tree = 1;

        /* not cancelable: a graceful shutdown waits for waiting requests */
        p->timer.handler = ngx_http_consent_lookup_timeout;
        p->timer.data = p;
        p->timer.log = ngx_cycle->log;
        ngx_add_timer(&p->timer, w->topology->read.server->timeout);
    }

    ctx->pending = p;
    ctx->request = r;
    ngx_queue_insert_tail(&p->waiters, &ctx->wait_link);

    /* notice a client that gives up while it waits */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


void
ngx_http_consent_lookup_detach(ngx_http_consent_ctx_t *ctx)
{
    if (ctx->pending) {
        ngx_queue_remove(&ctx->wait_link);
        ctx->pending = NULL;
    }
}


/* Hands the outcome to every waiting request and wakes it. */
static void
ngx_http_consent_wake(ngx_http_consent_pending_t *p,
    consent::LookupOutcome outcome, const consent::Record *record,
    consent::Source source)
{
    ngx_queue_t             *q;
    ngx_http_request_t      *r;
    ngx_http_consent_ctx_t  *ctx;

    while (!ngx_queue_empty(&p->waiters)) {
        q = ngx_queue_head(&p->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_consent_ctx_t, wait_link);
        ctx->pending = NULL;
        ngx_http_consent_set_outcome(ctx, outcome, record, source);
        ctx->state = NGX_HTTP_CONSENT_LOOKED;

        /*
         * Not run here, inside the Redis connection's read handler:
         * posted, it runs from the event loop like any request woken by
         * its connection.
         */
        r = ctx->request;
        r->read_event_handler = ngx_http_block_reading;
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_post_event(r->connection->write, &ngx_posted_events);
    }
}


/* Later requests for the subject no longer join this lookup. */
static void
ngx_http_consent_pending_untree(ngx_http_consent_pending_t *p)
{
    if (p->in_tree) {
        ngx_rbtree_delete(&ngx_http_consent_worker->pending, &p->sn.node);
        p->in_tree = 0;
    }
}


static void
ngx_http_consent_pending_done(ngx_http_consent_pending_t *p)
{
    ngx_http_consent_pending_untree(p);

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }
}


static void
ngx_http_consent_lookup_timeout(ngx_event_t *ev)
{
    ngx_http_consent_pending_t  *p = (ngx_http_consent_pending_t *) ev->data;

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "consent: redis lookup not answered within timeout");

    p->timed_out = 1;
    ngx_http_consent_pending_done(p);
    ngx_http_consent_wake(p, consent::LookupOutcome::failure, NULL,
                          consent::Source::redis);

    /*
     * Replies come back in order: behind a late one, all are late. Drop the
     * connection; its reconnect is the probe that ends the failure state.
     * This frees `p`, through its callback with no reply.
     */
    ngx_http_consent_redis_close(&ngx_http_consent_worker->topology->read,
                                 NGX_HTTP_CONSENT_REDIS_TIMEOUT);
}


/* The reply to HGETALL, or NULL when the connection went away. */
static void
ngx_http_consent_lookup_reply(ngx_http_consent_redis_t *rc, redisReply *reply,
    void *data)
{
    size_t                         i, total;
    consent::Record                record;
    consent::RecordParse           parsed;
    consent::Source                source;
    consent::LookupOutcome         outcome;
    ngx_http_consent_worker_t     *w = ngx_http_consent_worker;
    ngx_http_consent_pending_t    *p = (ngx_http_consent_pending_t *) data;
    ngx_http_consent_main_conf_t  *cmcf = w->cmcf;

    std::string_view  items[256];

    ngx_http_consent_pending_done(p);

    outcome = consent::LookupOutcome::failure;
    parsed = consent::RecordParse::malformed;

    if (reply == NULL) {
        /* connection lost: its own counter says so */

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "consent: redis %V: lookup: %*s", &rc->server->name,
                      (size_t) reply->len, reply->str);
        ngx_http_consent_count_redis(rc->server, NGX_HTTP_CONSENT_ERR_REPLY);

    } else if (reply->type != REDIS_REPLY_ARRAY
               || reply->elements > sizeof(items) / sizeof(items[0]))
    {
        ngx_http_consent_count_redis(rc->server, NGX_HTTP_CONSENT_ERR_PROTOCOL);

    } else {
        total = 0;

        for (i = 0; i < reply->elements; i++) {
            redisReply *e = reply->element[i];

            if (e->type != REDIS_REPLY_STRING) {
                break;
            }

            total += e->len;
            items[i] = std::string_view(e->str, e->len);
        }

        if (i < reply->elements || total > NGX_HTTP_CONSENT_MAX_REPLY) {
            ngx_http_consent_count_redis(rc->server,
                                         NGX_HTTP_CONSENT_ERR_PROTOCOL);

        } else {
            parsed = consent::parse_record(items, reply->elements,
                                           w->purposes, &record);

            if (parsed == consent::RecordParse::ok) {
                outcome = consent::LookupOutcome::record;

            } else if (parsed == consent::RecordParse::none) {
                outcome = consent::LookupOutcome::no_record;

            } else {
                ngx_http_consent_count_redis(rc->server,
                                             NGX_HTTP_CONSENT_ERR_MALFORMED);
            }
        }
    }

    source = consent::Source::redis;

    if (outcome != consent::LookupOutcome::failure && cmcf->cache_zone) {
        if (ngx_http_consent_cache_store(
                cmcf->cache_zone,
                std::string_view((char *) p->subject, p->sn.str.len),
                outcome == consent::LookupOutcome::record ? &record : NULL,
                p->sent_ms, (uint64_t) rc->started,
                rc->primary ? NULL : &rc->addr_text,
                ngx_http_consent_cache_clock(cmcf->cache_zone, cmcf->cache_ttl,
                                             ngx_http_consent_now_ms()),
                &record, (ngx_cycle_t *) ngx_cycle)
            == NGX_HTTP_CONSENT_CACHE_NEWER)
        {
            /* this server is behind what another read already brought */
            outcome = consent::LookupOutcome::record;
            source = consent::Source::cache;
        }
    }

    /*
     * A read that raced an announced update is not cached (slot_store
     * refuses it), but the requests that asked before the update still get
     * what Redis answered them.
     */
    ngx_http_consent_wake(p, outcome,
                          outcome == consent::LookupOutcome::record
                          ? &record : NULL, source);

    ngx_queue_insert_head(&w->free, &p->free_link);

    if (reply && reply->type == REDIS_REPLY_ERROR
        && (ngx_strncmp(reply->str, "NOAUTH", 6) == 0
            || ngx_strncmp(reply->str, "LOADING", 7) == 0))
    {
        /* the server is not serving: reconnect, fail fast meanwhile */
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_REPLY);
    }
}


/* ---- the subscription (worker 0) --------------------------------------- */

/*
 * Proof that the subscription delivers: worker 0 publishes a heartbeat on
 * a channel of its own every second, through its lookup connection, and
 * its subscriber listens for it. A subscription that stops delivering (a
 * half-open socket, a partition) stops the heartbeats, and after
 * NGX_HTTP_CONSENT_HEARTBEAT_DEAD nothing cached is served and the
 * subscriber reconnects. A PING on the subscribed connection would only
 * prove the socket: the heartbeat proves that what is published reaches
 * it, which is what the cache relies on (and, with replicas, that it
 * travels from where writers publish to where the edge listens).
 */

static void
ngx_http_consent_apply_message(ngx_http_consent_redis_t *rc, redisReply *reply)
{
    uint64_t                       now;
    redisReply                    *channel, *payload;
    consent::UpdateMessage         msg;
    ngx_http_consent_worker_t     *w = ngx_http_consent_worker;
    ngx_http_consent_main_conf_t  *cmcf = w->cmcf;

    channel = reply->element[1];
    payload = reply->element[2];
    now = ngx_http_consent_now_ms();

    if (channel->type == REDIS_REPLY_STRING
        && (size_t) channel->len == w->heartbeat_channel.len
        && ngx_strncmp(channel->str, w->heartbeat_channel.data,
                       channel->len) == 0)
    {
        w->heartbeat_rx = now;
        ngx_http_consent_cache_heartbeat(cmcf->cache_zone, now);
        return;
    }

    if (payload->type != REDIS_REPLY_STRING
        || !consent::parse_update(std::string_view(payload->str, payload->len),
                                  &msg))
    {
        ngx_http_consent_count_redis(rc->server, NGX_HTTP_CONSENT_ERR_PROTOCOL);
        return;
    }

    if (msg.flush_all) {
        ngx_http_consent_cache_flush(cmcf->cache_zone);

    } else {
        ngx_http_consent_cache_announce(cmcf->cache_zone, msg.subject,
                                        msg.version, rc->cycle);
    }

    ngx_http_consent_count_store(rc->cycle, NGX_HTTP_CONSENT_UPDATE_APPLIED);
}


/* Every reply on the subscribed connection. */
static void
ngx_http_consent_subscribe_reply(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_consent_worker_t  *w = ngx_http_consent_worker;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: subscribe: %*s", &rc->server->name,
                      (size_t) reply->len, reply->str);
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_REPLY);
        return;
    }

    if (ngx_http_consent_redis_is_message(reply)) {
        ngx_http_consent_apply_message(rc, reply);
        return;
    }

    /* ["subscribe", channel, count]: the update channel is the first */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[0]->len == 9
        && ngx_strncmp(reply->element[0]->str, "subscribe", 9) == 0
        && reply->element[2]->type == REDIS_REPLY_INTEGER
        && reply->element[2]->integer == 1)
    {
        ngx_log_error(NGX_LOG_NOTICE, rc->cycle->log, 0,
                      "consent: subscribed to \"%V\" on %V",
                      &w->cmcf->redis_channel, &rc->server->name);

        /* reads sent before now may have missed an update: the time now,
         * not this iteration's cached time (ngx_http_consent_cache_event_ms) */
        ngx_time_update();
        w->heartbeat_rx = ngx_http_consent_now_ms();
        ngx_http_consent_cache_subscribed(w->cmcf->cache_zone, w->heartbeat_rx,
                                          &rc->addr_text);
    }
}


static void
ngx_http_consent_subscribe(ngx_http_consent_redis_t *rc)
{
    std::string_view            argv[3];
    ngx_http_consent_worker_t  *w = ngx_http_consent_worker;

    argv[0] = "SUBSCRIBE";
    argv[1] = std::string_view((char *) w->cmcf->redis_channel.data,
                               w->cmcf->redis_channel.len);
    argv[2] = std::string_view((char *) w->heartbeat_channel.data,
                               w->heartbeat_channel.len);

    if (ngx_http_consent_redis_subscribe(rc, ngx_http_consent_subscribe_reply,
                                         argv, 3)
        != NGX_OK)
    {
        ngx_http_consent_redis_close(rc, NGX_HTTP_CONSENT_ERR_IO);
    }
}


static void
ngx_http_consent_subscriber_down(ngx_http_consent_redis_t *rc)
{
    /* from now on nothing cached is served */
    ngx_http_consent_cache_unsubscribed(ngx_http_consent_worker->cmcf->cache_zone);
}


/*
 * The heartbeat's PUBLISH is refused (an ACL without the heartbeat
 * channel, a read-only replica): nothing cached can be served, so say so,
 * once until it is accepted again.
 */
static void
ngx_http_consent_heartbeat_reply(ngx_http_consent_redis_t *rc,
    redisReply *reply, void *data)
{
    ngx_http_consent_worker_t  *w = ngx_http_consent_worker;

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ERROR) {
        w->heartbeat_refused = 0;
        return;
    }

    if (!w->heartbeat_refused) {
        ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                      "consent: redis %V: the heartbeat's PUBLISH to \"%V\" "
                      "was refused: %*s; records are not served from the "
                      "cache while it is", &rc->server->name,
                      &w->heartbeat_channel, (size_t) reply->len, reply->str);
        w->heartbeat_refused = 1;
    }
}


static void
ngx_http_consent_heartbeat(ngx_event_t *ev)
{
    uint64_t                    now;
    std::string_view            argv[3];
    ngx_http_consent_redis_t   *rc;
    ngx_http_consent_worker_t  *w = ngx_http_consent_worker;

    now = ngx_http_consent_now_ms();

    if (w->topology->sub.ready
        && now > w->heartbeat_rx + NGX_HTTP_CONSENT_HEARTBEAT_DEAD)
    {
        ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                      "consent: no heartbeat through the update channel "
                      "subscription, resubscribing");
        ngx_http_consent_cache_unsubscribed(w->cmcf->cache_zone);
        ngx_http_consent_redis_close(&w->topology->sub,
                                     NGX_HTTP_CONSENT_REDIS_TIMEOUT);
    }

    /* on the primary: then it proves replication to a replica, too */
    rc = ngx_http_consent_topology_primary(w->topology);

    if (rc) {
        argv[0] = "PUBLISH";
        argv[1] = std::string_view((char *) w->heartbeat_channel.data,
                                   w->heartbeat_channel.len);
        argv[2] = "hb";
        (void) ngx_http_consent_redis_send(rc, ngx_http_consent_heartbeat_reply,
                                           NULL, argv, 3);
    }

    ngx_add_timer(ev, NGX_HTTP_CONSENT_HEARTBEAT_EVERY);
}


/* ---- process lifecycle ----------------------------------------------- */

struct ngx_http_consent_topology_s *
ngx_http_consent_lookup_topology(void)
{
    return ngx_http_consent_worker ? ngx_http_consent_worker->topology : NULL;
}


ngx_int_t
ngx_http_consent_lookup_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i, subscribe;
    ngx_http_consent_worker_t        *w;
    ngx_http_consent_purpose_t       *purpose;
    ngx_http_consent_main_conf_t     *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_consent_module);
    if (cmcf == NULL || cmcf->redis == NULL) {
        return NGX_OK;
    }

    w = (ngx_http_consent_worker_t *)
            ngx_pcalloc(cycle->pool, sizeof(ngx_http_consent_worker_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->pool = ngx_create_pool(4096, cycle->log);
    if (w->pool == NULL) {
        return NGX_ERROR;
    }

    w->key = (u_char *) ngx_palloc(cycle->pool, cmcf->redis_prefix.len
                                                + consent::kMaxSubject + 2);
    if (w->key == NULL) {
        return NGX_ERROR;
    }

    w->cmcf = cmcf;
    ngx_rbtree_init(&w->pending, &w->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&w->free);

    purpose = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;
    for (i = 0; i < cmcf->purposes.nelts; i++) {
        w->names[i] = std::string_view((char *) purpose[i].name.data,
                                       purpose[i].name.len);
    }
    w->purposes.names = w->names;
    w->purposes.count = cmcf->purposes.nelts;

    ngx_http_consent_worker = w;

    subscribe = cmcf->cache_zone && ngx_worker == 0;

    w->topology = ngx_http_consent_topology_init(cycle, cmcf, w->pool,
                                                 subscribe);
    if (w->topology == NULL) {
        return NGX_ERROR;
    }

    if (subscribe) {
        /* <channel>:hb:<pid>: a name of its own, any collision harmless */
        w->heartbeat_channel.data = (u_char *)
            ngx_pnalloc(cycle->pool, cmcf->redis_channel.len
                                     + sizeof(":hb:") + NGX_INT64_LEN);
        if (w->heartbeat_channel.data == NULL) {
            return NGX_ERROR;
        }

        w->heartbeat_channel.len =
            ngx_sprintf(w->heartbeat_channel.data, "%V:hb:%P",
                        &cmcf->redis_channel, ngx_pid)
            - w->heartbeat_channel.data;

        w->topology->sub.on_ready = ngx_http_consent_subscribe;
        w->topology->sub.on_down = ngx_http_consent_subscriber_down;
    }

    ngx_http_consent_topology_start(w->topology);

    if (subscribe) {
        w->heartbeat.handler = ngx_http_consent_heartbeat;
        w->heartbeat.log = cycle->log;
        w->heartbeat.cancelable = 1;
        ngx_add_timer(&w->heartbeat, NGX_HTTP_CONSENT_HEARTBEAT_EVERY);
    }

    return NGX_OK;
}


void
ngx_http_consent_lookup_exit_process(ngx_cycle_t *cycle)
{
    ngx_rbtree_node_t           *node;
    ngx_http_consent_worker_t   *w = ngx_http_consent_worker;
    ngx_http_consent_pending_t  *p;

    if (w == NULL) {
        return;
    }

    /* the worker is going: let go of waiting requests without waking them */
    while (w->pending.root != w->pending.sentinel) {
        node = ngx_rbtree_min(w->pending.root, w->pending.sentinel);
        p = (ngx_http_consent_pending_t *) node;

        while (!ngx_queue_empty(&p->waiters)) {
            ngx_queue_t *q = ngx_queue_head(&p->waiters);
            ngx_queue_remove(q);
            (ngx_queue_data(q, ngx_http_consent_ctx_t, wait_link))->pending =
                NULL;
        }

        ngx_http_consent_pending_done(p);
    }

    if (w->heartbeat.timer_set) {
        ngx_del_timer(&w->heartbeat);
    }

    if (w->topology->subscribing) {
        ngx_http_consent_cache_unsubscribed(w->cmcf->cache_zone);
    }

    ngx_http_consent_topology_exit(w->topology);

    ngx_destroy_pool(w->pool);
    ngx_http_consent_worker = NULL;
}
