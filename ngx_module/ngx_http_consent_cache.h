/*
 * The shared-memory cache of consent records (ngx_http_consent_cache.cpp).
 */

#ifndef NGX_HTTP_CONSENT_CACHE_H_INCLUDED_
#define NGX_HTTP_CONSENT_CACHE_H_INCLUDED_

#include "ngx_module/ngx_http_consent_module.h"

#include <string_view>

#include "store/cache_rules.h"


/*
 * The subscriber refreshes its heartbeat every second; after this long
 * without one, the subscription counts as down and nothing cached is
 * served (a worker killed outright cannot say goodbye).
 */
#define NGX_HTTP_CONSENT_HEARTBEAT_EVERY  1000
#define NGX_HTTP_CONSENT_HEARTBEAT_DEAD   3000


/* Copies the subject's slot; 0 when it has none. */
ngx_uint_t ngx_http_consent_cache_get(ngx_shm_zone_t *zone,
    std::string_view subject, consent::CacheSlot *slot);

#define NGX_HTTP_CONSENT_CACHE_REFUSED  0   /* raced an update, or no room */
#define NGX_HTTP_CONSENT_CACHE_STORED   1
#define NGX_HTTP_CONSENT_CACHE_NEWER    2   /* *newer answers instead */

/*
 * Stores a read (record NULL: Redis had none) sent at sent_ms on a
 * connection begun at conn_ms, unless the cache holds a newer version
 * (consent::slot_holds_newer()): then that is copied to *newer, and
 * answers the read's requests instead.
 *
 * server: the address the read came from, NULL for the primary. A read
 * from any other server than the one the subscription hears may be behind
 * what was announced there: it is stored only to move a slot forward, and
 * right after a resubscription only held, to outrank older reads
 * (consent::slot_may_advance()).
 */
ngx_uint_t ngx_http_consent_cache_store(ngx_shm_zone_t *zone,
    std::string_view subject, const consent::Record *record, uint64_t sent_ms,
    uint64_t conn_ms, const ngx_str_t *server, const consent::CacheClock &clock,
    consent::Record *newer, ngx_cycle_t *cycle);

/* "<subject> <v>" from the channel. */
void ngx_http_consent_cache_announce(ngx_shm_zone_t *zone,
    std::string_view subject, uint64_t version, ngx_cycle_t *cycle);

/* The subject was announced at or after ms (by its node, or by its slot of
 * announced_ms: another subject sharing it, or an eviction, counts too). */
ngx_uint_t ngx_http_consent_cache_announced_since(ngx_shm_zone_t *zone,
    std::string_view subject, uint64_t ms);

/* "*" from the channel: everything cached so far is stale. */
void ngx_http_consent_cache_flush(ngx_shm_zone_t *zone);

/* This process has just (re)subscribed to the channel, on server. */
void ngx_http_consent_cache_subscribed(ngx_shm_zone_t *zone, uint64_t now_ms,
    const ngx_str_t *server);
/* This process's subscription is alive. */
void ngx_http_consent_cache_heartbeat(ngx_shm_zone_t *zone, uint64_t now_ms);
/* This process's subscription is gone. */
void ngx_http_consent_cache_unsubscribed(ngx_shm_zone_t *zone);
/* Some process's subscription is alive (the gauge of consent_status). */
ngx_uint_t ngx_http_consent_cache_subscription_up(ngx_shm_zone_t *zone,
    uint64_t now_ms);

consent::CacheClock ngx_http_consent_cache_clock(ngx_shm_zone_t *zone,
    ngx_msec_t ttl, uint64_t now_ms);

#endif /* NGX_HTTP_CONSENT_CACHE_H_INCLUDED_ */
