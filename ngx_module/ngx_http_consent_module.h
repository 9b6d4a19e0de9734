/*
 * Shared declarations of the nginx glue: configuration, the per-request
 * context, and the entry points each file of ngx_module/ offers the others.
 *
 * One way through a request: the preaccess handler (handler.cpp) extracts
 * the token and cookie, opens them, looks the subject up (lookup.cpp),
 * decides and rewrites (policy/); variables.cpp reads the context; the
 * header filter (filter.cpp) applies the decision to the response;
 * status.cpp counts.
 */

#ifndef NGX_HTTP_CONSENT_MODULE_H_INCLUDED_
#define NGX_HTTP_CONSENT_MODULE_H_INCLUDED_

#include "ngx_module/ngx_http_consent_nginx.h"

#include "crypto/keyring.h"
#include "crypto/pseudonym.h"
#include "crypto/token.h"
#include "crypto/token_memo.h"
#include "policy/choice_endpoint.h"
#include "policy/purposes.h"
#include "policy/query_rewrite.h"
#include "policy/segments.h"
#include "policy/strip_rules.h"
#include "policy/uid_cookie.h"


extern "C" ngx_module_t  ngx_http_consent_module;


typedef struct {
    ngx_str_t                    name;
    ngx_flag_t                   granted;      /* default */
    ngx_flag_t                   gpc;
} ngx_http_consent_purpose_t;


typedef struct ngx_http_consent_stats_s  ngx_http_consent_stats_t;


/* what a server is: consent_redis role=, or a consent_redis_sentinels one */
#define NGX_HTTP_CONSENT_REDIS_PRIMARY   0
#define NGX_HTTP_CONSENT_REDIS_REPLICA   1
#define NGX_HTTP_CONSENT_REDIS_SENTINEL  2


/*
 * One Redis server: a consent_redis line, a Sentinel of
 * consent_redis_sentinels, or a server a Sentinel named (made by a worker,
 * from its sentinel: line). The connection layer takes any of these.
 */
typedef struct {
    ngx_str_t                    name;         /* as written: logs, labels */
    ngx_str_t                    master;       /* sentinel:NAME: the master's
                                                  name; no address of its own */
    ngx_str_t                    host;         /* a name to resolve again, and
                                                  the default TLS name; no
                                                  brackets; empty for unix: */
    ngx_addr_t                  *addrs;        /* resolved when the
                                                  configuration was read */
    ngx_uint_t                   naddrs;
    in_port_t                    port;
    unsigned                     resolve:1;    /* host is a name, not an
                                                  address literal */
    unsigned                     unix_socket:1;
    ngx_uint_t                   role;
    ngx_int_t                    db;
    ngx_str_t                    user;         /* ACL user; empty: AUTH pass */
    ngx_str_t                    password;
    ngx_msec_t                   connect_timeout;
    ngx_msec_t                   timeout;
    ngx_str_t                    ssl_name;     /* SNI and the name verified:
                                                  NUL-terminated */
    ngx_uint_t                   stats_row;    /* its counters (status.cpp) */
} ngx_http_consent_redis_server_t;


/* consent_redis_ssl*: TLS on every TCP connection to Redis */
typedef struct {
    ngx_flag_t                   enable;
    ngx_flag_t                   verify;
    ngx_str_t                    trusted_certificate;
    ngx_str_t                    certificate;
    ngx_str_t                    certificate_key;
    ngx_str_t                    name;         /* empty: each server's host */
#if (NGX_SSL)
    ngx_ssl_t                   *ctx;          /* made once, by the master */
#endif
} ngx_http_consent_redis_tls_t;


typedef struct {
    /* Owned; freed (and wiped) by cleanups on the configuration pool, so a
     * reload that drops the old cycle also drops its keys. */
    consent::KeyRing            *keys;
    consent::PseudonymKey       *pseudonym_key;
    /* tokens that opened valid with these keys; each worker writes its
     * own copy-on-write pages of it */
    consent::TokenMemo          *token_memo;

    ngx_array_t                  purposes;     /* ngx_http_consent_purpose_t */
    std::string_view            *purpose_names;  /* the same, for the core */
    consent::PurposeMask         declared;
    consent::PurposeMask         defaults;
    consent::PurposeMask         gpc;

    ngx_shm_zone_t              *stats_zone;
    ngx_uint_t                   stats_generation;  /* of this configuration */

    /* the store: consent_redis*, consent_cache, consent_on_failure */
    ngx_array_t                 *redis;        /* ngx_http_consent_redis_server_t:
                                                  consent_redis lines, the
                                                  primary (or sentinel:) first */
    ngx_array_t                 *redis_sentinels;
    ngx_flag_t                   redis_read_replica;
    ngx_http_consent_redis_tls_t redis_tls;
    /* nginx's resolver of the http block, when one is set: host names are
     * resolved again through it on every connect */
    ngx_resolver_t              *resolver;
    ngx_msec_t                   resolver_timeout;
    ngx_str_t                    redis_prefix;
    ngx_str_t                    redis_channel;
    ngx_shm_zone_t              *cache_zone;
    ngx_msec_t                   cache_ttl;
    ngx_flag_t                   on_failure_default;

    /*
     * Indexes of nginx's cacheable variables that read what the rewrite
     * changes: $request_uri, $request, $http_cookie, $cookie_NAME. nginx
     * keeps such a value from its first read for the rest of the request,
     * and a read in the rewrite phase (set, if) comes before the preaccess
     * rewrite; the rewrite drops those values (ngx_http_consent_flush_vars).
     */
    ngx_uint_t                  *rewritten_vars;
    ngx_uint_t                   nrewritten_vars;

    /* consent_policy_revision: consent given under an older one is none */
    ngx_uint_t                   policy_revision;
    /* a consent_choice endpoint exists: workers write to the primary */
    ngx_uint_t                   choice_writes;

    /* where `consent on` first appeared, to name it in errors */
    ngx_str_t                    enabled_file;
    ngx_uint_t                   enabled_line;
    /* where a consent_choice_cookie first appeared */
    ngx_str_t                    choice_file;
    ngx_uint_t                   choice_line;
} ngx_http_consent_main_conf_t;


typedef struct {
    ngx_flag_t                   enable;
    ngx_flag_t                   dry_run;
    ngx_flag_t                   token_redirect;
    ngx_str_t                    token_arg;

    /* consent_uid_cookie: uid.name.len == 0 when none is configured */
    consent::UidCookieAttrs      uid;
    ngx_int_t                    uid_purpose;  /* -1: none */
    ngx_uint_t                   uid_set;      /* the directive appeared here */

    /* consent_choice_cookie: choice.name.len == 0 when none is configured */
    consent::UidCookieAttrs      choice;
    ngx_uint_t                   choice_set;
    ngx_flag_t                   choice_endpoint;  /* consent_choice here */

    /* consent_strip_args / consent_strip_cookies; inherited as a whole
     * when a level has none, like proxy_set_header */
    consent::StripRules         *strip_args;
    consent::StripRules         *strip_cookies;
} ngx_http_consent_loc_conf_t;


/* One Cookie header as the extract step split it (policy/segments.h). */
typedef struct {
    ngx_table_elt_t             *header;
    ngx_str_t                    value;        /* as it came */
    consent::Segments            pairs;
    ngx_uint_t                   gone;         /* keeps no pair: removed */
} ngx_http_consent_cookie_scan_t;


/* Per request; survives internal redirects (see ngx_http_consent_get_ctx). */
typedef struct {
    ngx_http_consent_loc_conf_t *conf;         /* where the decision was made */

    unsigned                     state:3;      /* NGX_HTTP_CONSENT_* below */
    unsigned                     has_token_arg:1;
    unsigned                     subject_from_purl:1;
    unsigned                     carried_uid:1;
    unsigned                     carried_valid_same:1;
    unsigned                     header_done:1;
    unsigned                     stripped_listed:1;
    unsigned                     has_choices:1;  /* a valid choice cookie */

    consent::TokenStatus         purl_status;
    consent::TokenStatus         uid_status;
    consent::Choices             choices;      /* when has_choices */

    /* the lookup step's answer */
    consent::LookupOutcome       outcome;
    consent::Source              record_source;
    consent::Record              record;

    consent::Decision            decision;
    consent::UidAction           uid_action;

    consent::TokenClaims         claims;       /* of the token that gave the subject */
    consent::TokenMemo::Ref      memo_ref;     /* of that token in the memo */
    u_char                       pseudonym[consent::kPseudonymHex];

    /*
     * The query and Cookie headers as they came, split once by the extract
     * step; the rewrite and $consent_stripped read these splits.
     */
    ngx_str_t                    args;
    consent::Segments            arg_segments;
    ngx_http_consent_cookie_scan_t *cookies;
    ngx_uint_t                   ncookies;

    /* the request line set_uri built; the rewrite reuses the token-hiding
     * step's, as it only removes more */
    ngx_str_t                    line_buf;

    ngx_str_t                    stripped;     /* once stripped_listed */
    ngx_uint_t                   stripped_args;
    ngx_uint_t                   stripped_cookies;

    /* consent_choice: an identified visitor's change, while Redis takes it
     * (choice.cpp, write.cpp) */
    consent::ChoiceChange        change;
    ngx_int_t                    written;      /* NGX_OK, NGX_DECLINED: erased,
                                                  NGX_ERROR: not written */
    uint64_t                     written_version;

    /* while waiting for Redis: the lookup it waits on (lookup.cpp) */
    void                        *pending;
    ngx_queue_t                  wait_link;
    ngx_http_request_t          *request;
} ngx_http_consent_ctx_t;

#define NGX_HTTP_CONSENT_START    0
#define NGX_HTTP_CONSENT_WAITING  1
#define NGX_HTTP_CONSENT_LOOKED   2
#define NGX_HTTP_CONSENT_DECIDED  3
#define NGX_HTTP_CONSENT_FAILED   4   /* extract or rewrite failed: fail closed */

#define ngx_http_consent_has_subject(ctx)                                     \
    ((ctx)->claims.subject_len != 0)


/* module.cpp */
ngx_http_consent_ctx_t *ngx_http_consent_get_ctx(ngx_http_request_t *r);
ngx_http_consent_ctx_t *ngx_http_consent_create_ctx(ngx_http_request_t *r);

/* handler.cpp */
ngx_int_t ngx_http_consent_handler(ngx_http_request_t *r);
void ngx_http_consent_decide(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_list_stripped(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_drop_token(ngx_http_request_t *r, ngx_str_t *text,
    consent::UrlText kind, ngx_str_t *token_arg, ngx_str_t *out,
    ngx_uint_t *removed);

/* lookup.cpp */
ngx_int_t ngx_http_consent_lookup(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
/* this worker's Redis connections, or NULL without consent_redis */
struct ngx_http_consent_topology_s *ngx_http_consent_lookup_topology(void);

/* write.cpp: an identified visitor's change, through the write script on
 * the primary. NGX_AGAIN: ctx->written is set when Redis answered or the
 * timeout passed, and `done` runs from the event loop; NGX_ERROR: nothing
 * was sent. */
ngx_int_t ngx_http_consent_write_choice(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_event_handler_pt done);
void ngx_http_consent_lookup_detach(ngx_http_consent_ctx_t *ctx);
ngx_int_t ngx_http_consent_lookup_init_process(ngx_cycle_t *cycle);
void ngx_http_consent_lookup_exit_process(ngx_cycle_t *cycle);

/* cache.cpp */
char *ngx_http_consent_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* filter.cpp */
ngx_int_t ngx_http_consent_filter_init(ngx_conf_t *cf);

/* variables.cpp */
ngx_int_t ngx_http_consent_add_variables(ngx_conf_t *cf);

/* status.cpp */
ngx_int_t ngx_http_consent_stats_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);
char *ngx_http_consent_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
void ngx_http_consent_count_request(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
void ngx_http_consent_count_set_cookies(ngx_http_request_t *r,
    ngx_uint_t removed);
void ngx_http_consent_count_uid(ngx_http_request_t *r,
    consent::UidAction action);
void ngx_http_consent_count_redirect(ngx_http_request_t *r);
/* which purposes, in which order: records keep them as bits by index */
uint32_t ngx_http_consent_purposes_crc(ngx_http_consent_main_conf_t *cmcf);

/* the store's counters, indexed by ngx_http_consent_store_counter_e */
typedef enum {
    NGX_HTTP_CONSENT_CACHE_HIT = 0,
    NGX_HTTP_CONSENT_CACHE_MISS,
    NGX_HTTP_CONSENT_CACHE_EVICTION,
    NGX_HTTP_CONSENT_REDIS_LOOKUP,
    NGX_HTTP_CONSENT_REDIS_MERGED,
    NGX_HTTP_CONSENT_REDIS_TIMEOUT,
    NGX_HTTP_CONSENT_REDIS_RECONNECT,
    NGX_HTTP_CONSENT_REDIS_FAST_FAIL,
    NGX_HTTP_CONSENT_UPDATE_APPLIED,
    NGX_HTTP_CONSENT_ERR_CONNECT,
    NGX_HTTP_CONSENT_ERR_IO,
    NGX_HTTP_CONSENT_ERR_REPLY,       /* LOADING, READONLY, OOM, NOAUTH, ... */
    NGX_HTTP_CONSENT_ERR_PROTOCOL,    /* wrong type, oversized */
    NGX_HTTP_CONSENT_ERR_MALFORMED,   /* a record that breaks the schema */
    NGX_HTTP_CONSENT_ERR_ROLE,        /* a server not in the role expected */
    NGX_HTTP_CONSENT_FAILOVER,        /* a failover followed (row 0) */
    NGX_HTTP_CONSENT_STORE_COUNTERS
} ngx_http_consent_store_counter_e;

/* the cache's and the channel's counters (no server label) */
void ngx_http_consent_count_store(ngx_cycle_t *cycle,
    ngx_http_consent_store_counter_e counter);
/* a Redis counter, consent_redis_*{server="..."}: lookups and errors */
void ngx_http_consent_count_redis(ngx_http_consent_redis_server_t *server,
    ngx_http_consent_store_counter_e counter);
/* a server a worker found (a Sentinel named it): its counters' row */
void ngx_http_consent_stats_server(ngx_http_consent_redis_server_t *server);
void ngx_http_consent_stats_init_process(ngx_cycle_t *cycle);
void ngx_http_consent_stats_exit_process(ngx_cycle_t *cycle);
/* this worker's connection to the server came up or went down: the
 * consent_redis_up gauge */
void ngx_http_consent_redis_state(ngx_http_consent_redis_server_t *server,
    ngx_uint_t up);
void ngx_http_consent_redis_state_exit(ngx_cycle_t *cycle);

/* redis_conf.cpp: consent_redis*, consent_redis_ssl* */
char *ngx_http_consent_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_consent_redis_sentinels(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_consent_redis_read(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_consent_redis_ssl_name(ngx_pool_t *pool,
    ngx_http_consent_main_conf_t *cmcf, ngx_http_consent_redis_server_t *rs);
char *ngx_http_consent_redis_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);
ngx_int_t ngx_http_consent_redis_postconfiguration(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);

/* conf.cpp */
extern ngx_command_t  ngx_http_consent_commands[];
ngx_int_t ngx_http_consent_purpose_index(ngx_http_consent_main_conf_t *cmcf,
    ngx_str_t *name);

/* cookie_conf.cpp */
char *ngx_http_consent_uid_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_consent_choice_cookie(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* choice.cpp: the consent_choice endpoint */
char *ngx_http_consent_choice(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_consent_policy_revision(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_consent_choice_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf);

#endif /* NGX_HTTP_CONSENT_MODULE_H_INCLUDED_ */
