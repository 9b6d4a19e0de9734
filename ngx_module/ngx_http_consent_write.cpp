/*
 * An identified visitor's change from the consent_choice endpoint: the
 * write script (store/write_script.h) on the primary, in mode "choice"
 * (refused on an erased record), at the policy revision, with a deadline
 * Redis checks against its own clock.
 *
 * The request waits, bounded by the primary's `timeout`. What waits on the
 * reply is a slot of this worker's, not the request: a request may be
 * answered 503 (the timeout) or go away before Redis answers, and the
 * reply still has somewhere to land. Slots are recycled once their reply
 * (or the connection's end) has come.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include "ngx_module/ngx_http_consent_cache.h"
#include "ngx_module/ngx_http_consent_topology.h"
#include "store/record.h"
#include "store/write_script.h"


typedef struct {
    ngx_http_request_t          *request;     /* NULL once answered or gone */
    ngx_http_event_handler_pt    done;
    ngx_pool_cleanup_t          *cleanup;     /* on the request's pool */
    ngx_event_t                  timer;
    ngx_queue_t                  free_link;
    ngx_shm_zone_t              *cache_zone;
    size_t                       subject_len;
    u_char                       subject[consent::kMaxSubject];
} ngx_http_consent_write_t;


static ngx_queue_t  ngx_http_consent_write_free;
static ngx_uint_t   ngx_http_consent_write_init;


/* Hands the outcome to the request, if it still waits, from the event loop. */
static void
ngx_http_consent_write_answer(ngx_http_consent_write_t *w, ngx_int_t written,
    uint64_t version)
{
    ngx_http_request_t      *r;
    ngx_http_consent_ctx_t  *ctx;

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    r = w->request;
    if (r == NULL) {
        return;
    }

    w->request = NULL;
    w->cleanup->handler = NULL;

    ctx = ngx_http_consent_get_ctx(r);
    ctx->written = written;
    ctx->written_version = version;

    r->write_event_handler = w->done;
    ngx_post_event(r->connection->write, &ngx_posted_events);
}


static void
ngx_http_consent_write_reply(ngx_http_consent_redis_t *rc, redisReply *reply,
    void *data)
{
    ngx_http_consent_write_t  *w = (ngx_http_consent_write_t *) data;

    static const char  erased[] = "ERR consent: erased";

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0) {
        /*
         * The channel will say so too, but later: this edge's next
         * request of the visitor must not be served the cached record.
         */
        if (w->cache_zone) {
            ngx_http_consent_cache_announce(w->cache_zone,
                std::string_view((char *) w->subject, w->subject_len),
                (uint64_t) reply->integer, rc->cycle);
        }

        ngx_http_consent_write_answer(w, NGX_OK, (uint64_t) reply->integer);

    } else if (reply && reply->type == REDIS_REPLY_ERROR
               && reply->len == sizeof(erased) - 1
               && ngx_strncmp(reply->str, erased, sizeof(erased) - 1) == 0)
    {
        ngx_http_consent_write_answer(w, NGX_DECLINED, 0);

    } else {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, rc->cycle->log, 0,
                          "consent: redis %V: a consent_choice write was "
                          "refused: %*s", &rc->server->name,
                          (size_t) reply->len, reply->str);
        }

        ngx_http_consent_write_answer(w, NGX_ERROR, 0);
    }

    /* whatever the request did meanwhile, nothing refers to the slot now */
    ngx_queue_insert_tail(&ngx_http_consent_write_free, &w->free_link);
}


static void
ngx_http_consent_write_timeout(ngx_event_t *ev)
{
    ngx_http_consent_write_t  *w = (ngx_http_consent_write_t *) ev->data;

    /* the reply may still come: the script's deadline makes it a refusal */
    ngx_http_consent_write_answer(w, NGX_ERROR, 0);
}


static void
ngx_http_consent_write_cleanup(void *data)
{
    ngx_http_consent_write_t  *w = (ngx_http_consent_write_t *) data;

    /* the request is going before Redis answered: the reply finds no one */
    w->request = NULL;

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


static ngx_http_consent_write_t *
ngx_http_consent_write_slot(void)
{
    ngx_queue_t               *q;
    ngx_http_consent_write_t  *w;

    if (!ngx_http_consent_write_init) {
        ngx_queue_init(&ngx_http_consent_write_free);
        ngx_http_consent_write_init = 1;
    }

    if (!ngx_queue_empty(&ngx_http_consent_write_free)) {
        q = ngx_queue_head(&ngx_http_consent_write_free);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_http_consent_write_t, free_link);

    } else {
        /* the worker's own pool: a slot may outlive any request */
        w = (ngx_http_consent_write_t *)
                ngx_palloc(ngx_cycle->pool, sizeof(ngx_http_consent_write_t));
        if (w == NULL) {
            return NULL;
        }
    }

    ngx_memzero(w, sizeof(ngx_http_consent_write_t));

    return w;
}


ngx_int_t
ngx_http_consent_write_choice(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_event_handler_pt done)
{
    u_char                            *key, *nums;
    size_t                             argc;
    uint64_t                           deadline;
    ngx_uint_t                         i;
    ngx_time_t                        *tp;
    ngx_http_consent_write_t          *w;
    ngx_http_consent_redis_t          *rc;
    ngx_http_consent_topology_t       *t;
    ngx_http_consent_main_conf_t      *cmcf;
    std::string_view                   argv[11 + 2 * consent::kMaxPurposes];

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    t = ngx_http_consent_lookup_topology();
    if (t == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "consent: an identified visitor's choice needs "
                      "\"consent_redis\"");
        return NGX_ERROR;
    }

    rc = ngx_http_consent_topology_primary(t);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    std::string_view  subject = ctx->claims.subject_view();

    key = (u_char *) ngx_pnalloc(r->pool, cmcf->redis_prefix.len
                                          + subject.size() + 2);
    nums = (u_char *) ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN);
    if (key == NULL || nums == NULL) {
        return NGX_ERROR;
    }

    /*
     * Half the timeout: a change Redis applies must have its reply back
     * before the request is answered 503. Redis's clock and this host's
     * must agree (NTP) to well within that.
     */
    tp = ngx_timeofday();
    deadline = (uint64_t) tp->sec * 1000 + tp->msec + rc->server->timeout / 2;

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = consent::kWriteScript;
    argv[argc++] = "1";
    argv[argc++] = std::string_view((char *) key,
        consent::record_key(std::string_view((char *) cmcf->redis_prefix.data,
                                             cmcf->redis_prefix.len),
                            subject, (char *) key));
    argv[argc++] = std::string_view((char *) cmcf->redis_channel.data,
                                    cmcf->redis_channel.len);
    argv[argc++] = subject;
    argv[argc++] = "choice";
    argv[argc++] = "rev";
    argv[argc++] = std::string_view((char *) nums,
        ngx_sprintf(nums, "%ui", cmcf->policy_revision) - nums);
    argv[argc++] = "@deadline";
    argv[argc++] = std::string_view((char *) nums + NGX_INT64_LEN,
        ngx_sprintf(nums + NGX_INT64_LEN, "%uL", deadline)
        - (nums + NGX_INT64_LEN));

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        if (ctx->change.named & consent::purpose_bit(i)) {
            argv[argc++] = cmcf->purpose_names[i];
            argv[argc++] = (ctx->change.granted & consent::purpose_bit(i))
                           ? "1" : "0";
        }
    }

    w = ngx_http_consent_write_slot();
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (w->cleanup == NULL) {
        ngx_queue_insert_tail(&ngx_http_consent_write_free, &w->free_link);
        return NGX_ERROR;
    }

    if (ngx_http_consent_redis_send(rc, ngx_http_consent_write_reply, w, argv,
                                    argc)
        != NGX_OK)
    {
        ngx_queue_insert_tail(&ngx_http_consent_write_free, &w->free_link);
        return NGX_ERROR;
    }

    w->request = r;
    w->done = done;
    w->cache_zone = cmcf->cache_zone;
    w->subject_len = subject.size();
    ngx_memcpy(w->subject, subject.data(), subject.size());

    w->cleanup->handler = ngx_http_consent_write_cleanup;
    w->cleanup->data = w;

    w->timer.handler = ngx_http_consent_write_timeout;
    w->timer.data = w;
    w->timer.log = r->connection->log;
    ngx_add_timer(&w->timer, rc->server->timeout);

    return NGX_AGAIN;
}
