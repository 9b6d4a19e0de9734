/*
 * ngx_http_consent_module: consent enforcement at the edge.
 *
 * The module definition, configuration create/merge, phase and filter
 * registration, and the per-request context. Directives are parsed in
 * ngx_http_consent_conf.cpp; the request path lives in the other files of
 * ngx_module/, and the work itself in the pure libraries (crypto/, policy/).
 *
 * Every function nginx calls catches whatever C++ may throw, logs it and
 * returns an nginx error code: no exception crosses into nginx's C.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include <exception>
#include <new>
#include <type_traits>


/*
 * Opened tokens each worker remembers: about 500 bytes a slot, 2 MB in
 * all, made resident when the worker starts (see crypto/token_memo.h).
 */
#define NGX_HTTP_CONSENT_TOKEN_MEMO_SLOTS  4096


static void *ngx_http_consent_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_consent_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_consent_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_consent_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_consent_postconfiguration(ngx_conf_t *cf);
static void ngx_http_consent_cleanup_main_conf(void *data);
static void ngx_http_consent_cleanup_ctx(void *data);
static ngx_int_t ngx_http_consent_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_consent_index_rewritten_vars(ngx_cycle_t *cycle,
    ngx_http_consent_main_conf_t *cmcf);
static void ngx_http_consent_exit_process(ngx_cycle_t *cycle);


/* pools free memory without running destructors */
static_assert(std::is_trivially_destructible<ngx_http_consent_ctx_t>::value,
              "the request context must be plain data");
static_assert(std::is_trivially_destructible<ngx_http_consent_loc_conf_t>::value,
              "the location configuration must be plain data");


static ngx_http_module_t  ngx_http_consent_module_ctx = {
    ngx_http_consent_preconfiguration,     /* preconfiguration */
    ngx_http_consent_postconfiguration,    /* postconfiguration */

    ngx_http_consent_create_main_conf,     /* create main configuration */
    ngx_http_consent_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_consent_create_loc_conf,      /* create location configuration */
    ngx_http_consent_merge_loc_conf        /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_consent_module = {
    NGX_MODULE_V1,
    &ngx_http_consent_module_ctx,          /* module context */
    ngx_http_consent_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_consent_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_consent_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void *
ngx_http_consent_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->purposes, cf->pool, 8,
                       sizeof(ngx_http_consent_purpose_t))
        != NGX_OK)
    {
        return NULL;
    }

    cmcf->cache_ttl = NGX_CONF_UNSET_MSEC;
    cmcf->on_failure_default = NGX_CONF_UNSET;
    cmcf->redis_read_replica = NGX_CONF_UNSET;
    cmcf->redis_tls.enable = NGX_CONF_UNSET;
    cmcf->redis_tls.verify = NGX_CONF_UNSET;
    cmcf->policy_revision = NGX_CONF_UNSET_UINT;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_consent_cleanup_main_conf;
    cln->data = cmcf;

    try {
        cmcf->keys = new consent::KeyRing();

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "consent: %s", e.what());
        return NULL;
    }

    return cmcf;
}


static void
ngx_http_consent_cleanup_main_conf(void *data)
{
    ngx_http_consent_main_conf_t  *cmcf = (ngx_http_consent_main_conf_t *) data;

    delete cmcf->keys;
    delete cmcf->pseudonym_key;
    delete cmcf->token_memo;
    cmcf->keys = NULL;
    cmcf->pseudonym_key = NULL;
    cmcf->token_memo = NULL;
}


static char *
ngx_http_consent_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_consent_main_conf_t  *cmcf = (ngx_http_consent_main_conf_t *) conf;

    if (cmcf->enabled_line && cmcf->pseudonym_key == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent on\" in %V:%ui requires "
                      "\"consent_pseudonym_key\" in the http block",
                      &cmcf->enabled_file, cmcf->enabled_line);
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->redis_prefix.data == NULL) {
        ngx_str_set(&cmcf->redis_prefix, "consent:");
    }

    if (cmcf->redis_channel.data == NULL) {
        ngx_str_set(&cmcf->redis_channel, "consent:updates");
    }

    ngx_conf_init_msec_value(cmcf->cache_ttl, 60000);
    ngx_conf_init_value(cmcf->on_failure_default, 0);
    ngx_conf_init_uint_value(cmcf->policy_revision, 0);

    if (ngx_http_consent_choice_init_conf(cf, cmcf) != NGX_CONF_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->cache_zone && cmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_cache\" requires \"consent_redis\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_consent_redis_init_conf(cf, cmcf) != NGX_CONF_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->enabled_line) {
        try {
            cmcf->token_memo = new consent::TokenMemo(
                                   NGX_HTTP_CONSENT_TOKEN_MEMO_SLOTS);

        } catch (const std::exception &e) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "consent: %s", e.what());
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (cmcf->enabled_line && cmcf->keys->empty()) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"consent on\" in %V:%ui without any \"consent_key\": "
                      "every token will be \"unknown_key\"",
                      &cmcf->enabled_file, cmcf->enabled_line);
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_consent_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = (ngx_http_consent_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     clcf->token_arg = { 0, NULL };
     *     clcf->uid_set = 0;
     *     clcf->strip_args = NULL;
     *     clcf->strip_cookies = NULL;
     *
     * uid is a C++ aggregate of views and scalars: placement-construct it
     * so its defaults hold, with nothing to destroy later.
     */

    new (&clcf->uid) consent::UidCookieAttrs();
    new (&clcf->choice) consent::UidCookieAttrs();

    clcf->enable = NGX_CONF_UNSET;
    clcf->dry_run = NGX_CONF_UNSET;
    clcf->token_redirect = NGX_CONF_UNSET;
    clcf->choice_endpoint = NGX_CONF_UNSET;
    clcf->uid_purpose = -1;

    return clcf;
}


static char *
ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_consent_loc_conf_t  *prev = (ngx_http_consent_loc_conf_t *) parent;
    ngx_http_consent_loc_conf_t  *conf = (ngx_http_consent_loc_conf_t *) child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_value(conf->token_redirect, prev->token_redirect, 0);
    ngx_conf_merge_str_value(conf->token_arg, prev->token_arg, "ctk");

    if (!conf->uid_set) {
        conf->uid = prev->uid;
        conf->uid_purpose = prev->uid_purpose;
        conf->uid_set = prev->uid_set;
    }

    if (!conf->choice_set) {
        conf->choice = prev->choice;
        conf->choice_set = prev->choice_set;
    }

    /* a content handler: this location only, never inherited */
    ngx_conf_init_value(conf->choice_endpoint, 0);

    if (conf->choice_endpoint) {
        /* the endpoint answers with this request's decision */
        conf->enable = 1;

        if (conf->choice.name.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"consent_choice\" "
                               "requires a \"consent_choice_cookie\" for "
                               "its location: anonymous visitors' choices "
                               "go there");
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (!conf->uid.name.empty() && !conf->choice.name.empty()
        && consent::ascii_iequal(conf->uid.name, conf->choice.name))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"consent_choice_cookie\" "
                           "and \"consent_uid_cookie\" name the same cookie "
                           "\"%*s\"", conf->uid.name.size(),
                           conf->uid.name.data());
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->strip_args == NULL) {
        conf->strip_args = prev->strip_args;
    }

    if (conf->strip_cookies == NULL) {
        conf->strip_cookies = prev->strip_cookies;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_consent_preconfiguration(ngx_conf_t *cf)
{
    return ngx_http_consent_add_variables(cf);
}


static ngx_int_t
ngx_http_consent_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt           *h;
    ngx_http_core_main_conf_t     *cmcf;
    ngx_http_consent_main_conf_t  *ccmcf;

    ccmcf = (ngx_http_consent_main_conf_t *)
                ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    /*
     * The preaccess phase, as limit_req: the access phase can be left early
     * (satisfy any with a matching allow, auth_basic, auth_request), and
     * consent must never be skipped that way.
     */

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = (ngx_http_handler_pt *)
            ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_consent_handler;

    if (ngx_http_consent_stats_init_conf(cf, ccmcf) != NGX_OK
        || ngx_http_consent_redis_postconfiguration(cf, ccmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_consent_filter_init(cf);
}


/*
 * The context lives in a cleanup of the request pool as well as in r->ctx:
 * an internal redirect clears r->ctx, and the decision must survive it so
 * that it is made once per request (the realip module does the same).
 *
 * A header filter that replaces the response with an error
 * (ngx_http_filter_finalize_request(): the not_modified filter's 412,
 * image_filter's 415) clears r->ctx too, without an internal redirect, and
 * sets r->filter_finalize instead.
 */

ngx_http_consent_ctx_t *
ngx_http_consent_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_consent_ctx_t  *ctx;

    r = r->main;

    ctx = (ngx_http_consent_ctx_t *) ngx_http_get_module_ctx(r,
                                                    ngx_http_consent_module);
    if (ctx || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_consent_cleanup_ctx) {
            ctx = (ngx_http_consent_ctx_t *) cln->data;

            /*
             * nginx clears r->ctx where it drops the response under way:
             * ngx_http_filter_finalize_request() cleans the headers the
             * filter worked on (ngx_http_clean_header), and an internal
             * redirect brings a response of its own. Either is filtered
             * anew: its Set-Cookie headers, and the UID cookie.
             */
            ctx->header_done = 0;

            ngx_http_set_ctx(r, ctx, ngx_http_consent_module);
            return ctx;
        }
    }

    return NULL;
}


ngx_http_consent_ctx_t *
ngx_http_consent_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t      *cln;
    ngx_http_consent_ctx_t  *ctx;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_consent_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    /*
     * Value-initialised in place: plain fields are zeroed, the C++ members
     * get their defaults. All of it is trivially destructible, so the pool
     * frees it without a destructor call.
     */
    ctx = new (cln->data) ngx_http_consent_ctx_t();

    cln->handler = ngx_http_consent_cleanup_ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_consent_module);

    return ctx;
}


/* Also the marker ngx_http_consent_get_ctx() looks for. */
static void
ngx_http_consent_cleanup_ctx(void *data)
{
    /* a request that ends while it waits for Redis leaves the queue */
    ngx_http_consent_lookup_detach((ngx_http_consent_ctx_t *) data);
}


static ngx_int_t
ngx_http_consent_init_process(ngx_cycle_t *cycle)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle,
                                                   ngx_http_consent_module);

    ngx_http_consent_stats_init_process(cycle);

    /* the worker's memory is all there from the start, not grown into */
    if (cmcf && cmcf->token_memo) {
        cmcf->token_memo->prefault();
    }

    if (cmcf && cmcf->enabled_line
        && ngx_http_consent_index_rewritten_vars(cycle, cmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    try {
        return ngx_http_consent_lookup_init_process(cycle);

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "consent: %s", e.what());
        return NGX_ERROR;
    }
}


/*
 * Finds the indexed variables the rewrite must drop from a request's
 * variable cache. Here, not at configuration time: the list of indexed
 * variables is final only once every module's postconfiguration has run.
 */
static ngx_int_t
ngx_http_consent_index_rewritten_vars(ngx_cycle_t *cycle,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_str_t                  *name;
    ngx_uint_t                  i;
    ngx_http_variable_t        *v;
    ngx_http_core_main_conf_t  *core;

    core = (ngx_http_core_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);

    if (core->variables.nelts == 0) {
        return NGX_OK;
    }

    cmcf->rewritten_vars = (ngx_uint_t *)
        ngx_palloc(cycle->pool, core->variables.nelts * sizeof(ngx_uint_t));
    if (cmcf->rewritten_vars == NULL) {
        return NGX_ERROR;
    }

    v = (ngx_http_variable_t *) core->variables.elts;

    for (i = 0; i < core->variables.nelts; i++) {
        name = &v[i].name;      /* lowercased by ngx_http_get_variable_index() */

        if ((name->len == 11 && ngx_strncmp(name->data, "request_uri", 11) == 0)
            || (name->len == 7 && ngx_strncmp(name->data, "request", 7) == 0)
            || (name->len == 11 && ngx_strncmp(name->data, "http_cookie", 11) == 0)
            || (name->len == 12 && ngx_strncmp(name->data, "http_referer", 12) == 0)
            || (name->len > 7 && ngx_strncmp(name->data, "cookie_", 7) == 0))
        {
            cmcf->rewritten_vars[cmcf->nrewritten_vars++] = i;
        }
    }

    return NGX_OK;
}


static void
ngx_http_consent_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_consent_lookup_exit_process(cycle);
    ngx_http_consent_redis_state_exit(cycle);
    ngx_http_consent_stats_exit_process(cycle);
}
