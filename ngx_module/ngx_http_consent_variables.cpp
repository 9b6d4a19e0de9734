/*
 * $consent_* variables. They read the decision the handler made, so they
 * have values from the preaccess phase on (proxy_set_header, add_header,
 * log_format); before that, or where consent is off, they are empty.
 * They are not cacheable, so a look before the decision is not kept.
 *
 * $consent_request and $consent_http_referer are the exception: made from
 * the request line and the Referer as they are when read, in any phase and
 * for any request, even one nginx answered before the module ran (a bad
 * request line, a `return`, a location without `consent on`), so that a
 * log_format built on them never writes a token.
 */

#include "ngx_module/ngx_http_consent_module.h"


enum {
    NGX_HTTP_CONSENT_VAR_TOKEN_STATUS,
    NGX_HTTP_CONSENT_VAR_SUBJECT,
    NGX_HTTP_CONSENT_VAR_SUBJECT_ID,
    NGX_HTTP_CONSENT_VAR_CAMPAIGN,
    NGX_HTTP_CONSENT_VAR_PURPOSES,
    NGX_HTTP_CONSENT_VAR_SOURCE,
    NGX_HTTP_CONSENT_VAR_VERSION,
    NGX_HTTP_CONSENT_VAR_REPROMPT,
    NGX_HTTP_CONSENT_VAR_REVISION,
    NGX_HTTP_CONSENT_VAR_STRIPPED
};


static ngx_int_t ngx_http_consent_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_consent_purpose_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_consent_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_consent_referer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


#define NGX_HTTP_CONSENT_VAR_FLAGS  NGX_HTTP_VAR_NOCACHEABLE

static ngx_http_variable_t  ngx_http_consent_vars[] = {

    { ngx_string("consent_token_status"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_TOKEN_STATUS, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_subject"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_SUBJECT, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_subject_id"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_SUBJECT_ID, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_campaign"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_CAMPAIGN, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_purposes"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_PURPOSES, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_source"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_SOURCE, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_version"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_VERSION, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_stripped"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_STRIPPED, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_reprompt"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_REPROMPT, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_revision"), NULL, ngx_http_consent_variable,
      NGX_HTTP_CONSENT_VAR_REVISION, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_request"), NULL, ngx_http_consent_request_variable,
      0, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_http_referer"), NULL,
      ngx_http_consent_referer_variable, 0, NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

    { ngx_string("consent_purpose_"), NULL,
      ngx_http_consent_purpose_variable, 0,
      NGX_HTTP_VAR_PREFIX|NGX_HTTP_CONSENT_VAR_FLAGS, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_consent_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_consent_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void
ngx_http_consent_set(ngx_http_variable_value_t *v, const u_char *data,
    size_t len)
{
    v->data = (u_char *) data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
}


static ngx_http_consent_ctx_t *
ngx_http_consent_decided_ctx(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t  *ctx;

    ctx = ngx_http_consent_get_ctx(r);

    return (ctx && ctx->state == NGX_HTTP_CONSENT_DECIDED) ? ctx : NULL;
}


static ngx_int_t
ngx_http_consent_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                        *p;
    size_t                         len;
    const char                    *s;
    ngx_uint_t                     i;
    ngx_http_consent_ctx_t        *ctx;
    ngx_http_consent_purpose_t    *purpose;
    ngx_http_consent_main_conf_t  *cmcf;

    ctx = ngx_http_consent_decided_ctx(r);
    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    /* subject variables stay empty when there is none, or it was erased */
    bool subject = ngx_http_consent_has_subject(ctx) && !ctx->decision.erased;

    switch (data) {

    case NGX_HTTP_CONSENT_VAR_TOKEN_STATUS:
        s = consent::token_status_name(ctx->has_token_arg ? ctx->purl_status
                                       : ctx->carried_uid ? ctx->uid_status
                                       : consent::TokenStatus::none);
        ngx_http_consent_set(v, (const u_char *) s, ngx_strlen(s));
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_SUBJECT:
        if (!subject) {
            ngx_http_consent_set(v, NULL, 0);
            return NGX_OK;
        }

        if (ctx->pseudonym[0] == '\0') {
            cmcf = (ngx_http_consent_main_conf_t *)
                       ngx_http_get_module_main_conf(r, ngx_http_consent_module);
            cmcf->pseudonym_key->pseudonym(ctx->claims.subject_view(),
                                           (char *) ctx->pseudonym);

            if (cmcf->token_memo) {
                cmcf->token_memo->attach_pseudonym(ctx->memo_ref,
                    ctx->claims.subject_view(), (const char *) ctx->pseudonym);
            }
        }

        ngx_http_consent_set(v, ctx->pseudonym, consent::kPseudonymHex);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_SUBJECT_ID:
        ngx_http_consent_set(v, (const u_char *) ctx->claims.subject,
                             subject ? ctx->claims.subject_len : 0);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_CAMPAIGN:
        ngx_http_consent_set(v, (const u_char *) ctx->claims.campaign,
                             ctx->subject_from_purl ? ctx->claims.campaign_len
                                                    : 0);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_PURPOSES:
        cmcf = (ngx_http_consent_main_conf_t *)
                   ngx_http_get_module_main_conf(r, ngx_http_consent_module);
        purpose = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

        /*
         * Exactly what the list takes: nginx's own request nearly fills
         * the pool's 4 KB blocks, and a generous guess (65 bytes per
         * purpose) can make the request take one more.
         */
        len = 0;

        for (i = 0; i < cmcf->purposes.nelts; i++) {
            if (ctx->decision.granted & consent::purpose_bit(i)) {
                len += purpose[i].name.len + 1;
            }
        }

        p = (u_char *) ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;

        for (i = 0; i < cmcf->purposes.nelts; i++) {
            if (ctx->decision.granted & consent::purpose_bit(i)) {
                if (p != v->data) {
                    *p++ = ',';
                }
                p = ngx_cpymem(p, purpose[i].name.data, purpose[i].name.len);
            }
        }

        ngx_http_consent_set(v, v->data, p - v->data);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_SOURCE:
        s = consent::source_name(ctx->decision.source);
        ngx_http_consent_set(v, (const u_char *) s, ngx_strlen(s));
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_VERSION:
        if (!ctx->decision.has_version) {
            ngx_http_consent_set(v, NULL, 0);
            return NGX_OK;
        }

        p = (u_char *) ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_http_consent_set(v, p, ngx_sprintf(p, "%uL", ctx->decision.version)
                                   - p);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_REPROMPT:
        ngx_http_consent_set(v, (const u_char *) (ctx->decision.reprompt
                                                  ? "1" : "0"), 1);
        return NGX_OK;

    case NGX_HTTP_CONSENT_VAR_REVISION:
        if (!ctx->decision.has_revision) {
            ngx_http_consent_set(v, NULL, 0);
            return NGX_OK;
        }

        p = (u_char *) ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_http_consent_set(v, p, ngx_sprintf(p, "%uL", ctx->decision.revision)
                                   - p);
        return NGX_OK;

    default: /* NGX_HTTP_CONSENT_VAR_STRIPPED */
        if (ngx_http_consent_list_stripped(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        ngx_http_consent_set(v, ctx->stripped.data, ctx->stripped.len);
        return NGX_OK;
    }
}


/* $consent_purpose_NAME: "1" or "0"; empty for an undeclared NAME */
static ngx_int_t
ngx_http_consent_purpose_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                     *name = (ngx_str_t *) data;
    ngx_uint_t                     i;
    ngx_http_consent_ctx_t        *ctx;
    ngx_http_consent_purpose_t    *purpose;
    ngx_http_consent_main_conf_t  *cmcf;

    static const size_t  prefix = sizeof("consent_purpose_") - 1;

    ctx = ngx_http_consent_decided_ctx(r);
    if (ctx == NULL || name->len <= prefix) {
        v->not_found = 1;
        return NGX_OK;
    }

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);
    purpose = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        if (purpose[i].name.len == name->len - prefix
            && ngx_strncmp(purpose[i].name.data, name->data + prefix,
                           purpose[i].name.len) == 0)
        {
            ngx_http_consent_set(v, (const u_char *)
                                 ((ctx->decision.granted
                                   & consent::purpose_bit(i)) ? "1" : "0"), 1);
            return NGX_OK;
        }
    }

    v->not_found = 1;
    return NGX_OK;
}


static ngx_int_t
ngx_http_consent_request_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                     line;
    ngx_uint_t                    removed;
    ngx_http_consent_loc_conf_t  *clcf;

    /* the configuration the request has now: the default server's, for a
     * request that never got further */
    clcf = (ngx_http_consent_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (ngx_http_consent_drop_token(r, &r->request_line,
                                    consent::UrlText::request_line,
                                    &clcf->token_arg, &line, &removed)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_consent_set(v, line.data, line.len);

    return NGX_OK;
}


/* Several Referer headers (nginx 1.23 on) are joined as $http_referer
 * joins them. */
static ngx_int_t
ngx_http_consent_referer_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p;
    size_t                        len;
    ngx_str_t                     one;
    ngx_uint_t                    removed;
    ngx_table_elt_t              *h;
    ngx_http_consent_loc_conf_t  *clcf;

    h = r->headers_in.referer;

    if (h == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    clcf = (ngx_http_consent_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

    if (ngx_http_consent_drop_token(r, &h->value, consent::UrlText::url,
                                    &clcf->token_arg, &one, &removed)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

#if (nginx_version >= 1023000)
    if (h->next) {
        len = 0;

        for (ngx_table_elt_t *t = h; t; t = t->next) {
            len += t->value.len + 2;
        }

        p = (u_char *) ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;

        for ( ;; ) {
            p = ngx_cpymem(p, one.data, one.len);
            h = h->next;

            if (h == NULL) {
                break;
            }

            *p++ = ','; *p++ = ' ';

            if (ngx_http_consent_drop_token(r, &h->value, consent::UrlText::url,
                                            &clcf->token_arg, &one, &removed)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        ngx_http_consent_set(v, v->data, p - v->data);
        return NGX_OK;
    }
#else
    (void) p;
    (void) len;
#endif

    ngx_http_consent_set(v, one.data, one.len);

    return NGX_OK;
}
