/*
 * The response side of a decision: drop the upstream's Set-Cookie for
 * tracking cookies of purposes not granted, and set or clear the UID
 * cookie (contract rules 7 and 8). Runs once, for the main request.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include <exception>

#include "ngx_module/ngx_http_consent_headers.h"
#include "policy/cookie_rewrite.h"


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_int_t ngx_http_consent_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_filter_set_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);
static ngx_int_t ngx_http_consent_filter_uid(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx);


ngx_int_t
ngx_http_consent_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_consent_header_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_header_filter(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_consent_get_ctx(r);

    if (ctx == NULL || ctx->state != NGX_HTTP_CONSENT_DECIDED
        || ctx->header_done || ctx->conf->dry_run)
    {
        return ngx_http_next_header_filter(r);
    }

    ctx->header_done = 1;

    try {
        if (ngx_http_consent_filter_set_cookies(r, ctx) != NGX_OK
            || ngx_http_consent_filter_uid(r, ctx) != NGX_OK)
        {
            return NGX_ERROR;
        }

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "consent: %s", e.what());
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_consent_filter_set_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    ngx_uint_t                   removed;
    ngx_table_elt_t             *h;
    consent::StripPolicy         policy;
    ngx_http_consent_headers_t   it;

    if (ctx->conf->strip_cookies == NULL) {
        return NGX_OK;
    }

    policy.rules = ctx->conf->strip_cookies;
    policy.granted = ctx->decision.granted;
    removed = 0;

    ngx_http_consent_headers_init(&it, &r->headers_out.headers, "Set-Cookie",
                                  sizeof("Set-Cookie") - 1);

    while ((h = ngx_http_consent_headers_next(&it))) {
        std::string_view value((const char *) h->value.data, h->value.len);

        if (policy.removes(consent::set_cookie_name(value))) {
            /* the header filter skips what has no hash */
            h->hash = 0;
            removed++;
        }
    }

    ngx_http_consent_count_set_cookies(r, removed);

    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_filter_uid(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    u_char                        *p;
    size_t                         len;
    ngx_table_elt_t               *h;
    consent::TokenClaims           claims;
    ngx_http_consent_main_conf_t  *cmcf;
    char                           token[consent::kMaxTokenTextOut];

    const consent::UidCookieAttrs  &attrs = ctx->conf->uid;

    if (ctx->uid_action == consent::UidAction::none) {
        return NGX_OK;
    }

    len = 0;

    if (ctx->uid_action == consent::UidAction::set) {
        cmcf = (ngx_http_consent_main_conf_t *)
                   ngx_http_get_module_main_conf(r, ngx_http_consent_module);

        const consent::Key *key = cmcf->keys->issuer();
        if (key == NULL) {
            return NGX_OK;
        }

        claims.set(ctx->claims.subject_view(), std::string_view());
        claims.issued_at = (uint64_t) ngx_time();
        claims.expires_at = claims.issued_at + attrs.max_age;

        len = consent::seal_token(*key, consent::TokenKind::uid, claims,
                                  nullptr, token, sizeof(token));
        if (len == 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "consent: could not seal a UID cookie");
            return NGX_OK;
        }
    }

    p = (u_char *) ngx_pnalloc(r->pool, consent::set_cookie_max_len(attrs, len));
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;
    h->value.len = consent::format_set_cookie(
                       attrs, std::string_view(token, len),
                       ctx->uid_action == consent::UidAction::clear,
                       (char *) p);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    ngx_http_consent_count_uid(r, ctx->uid_action);

    return NGX_OK;
}
