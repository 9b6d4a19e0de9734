/*
 * The request path, in the contract's order: extract the PURL token and
 * the UID cookie, open them, look the subject up, decide, rewrite. It runs
 * in the preaccess phase on main requests, once per request: internal
 * redirects find the decision already made (ngx_http_consent_get_ctx).
 *
 * The lookup may suspend the request (NGX_AGAIN); the store resumes it by
 * running the phases again, and the handler continues from ctx->state.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include <cstring>
#include <exception>

#include "crypto/choice_token.h"
#include "ngx_module/ngx_http_consent_headers.h"
#include "policy/cookie_rewrite.h"
#include "policy/query_rewrite.h"


static ngx_int_t ngx_http_consent_handle(ngx_http_request_t *r);
static ngx_int_t ngx_http_consent_extract(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_main_conf_t *cmcf,
    ngx_http_consent_loc_conf_t *clcf);
static consent::TokenStatus ngx_http_consent_open(
    ngx_http_consent_main_conf_t *cmcf, std::string_view text,
    consent::ExpectKind kind, uint64_t now, consent::TokenClaims *claims,
    consent::TokenMemo::Ref *ref, u_char *pseudonym);
static ngx_int_t ngx_http_consent_rewrite(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf);
static void ngx_http_consent_open_choices(ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_main_conf_t *cmcf, uint64_t now);
static ngx_int_t ngx_http_consent_scan_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf);
static ngx_int_t ngx_http_consent_rewrite_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf,
    const consent::Removal &removal);
static ngx_int_t ngx_http_consent_rewrite_referer(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf);
static ngx_int_t ngx_http_consent_set_uri(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, const consent::Removal &removal,
    ngx_uint_t request_line_only, ngx_uint_t *removed);
static ngx_int_t ngx_http_consent_redirect(ngx_http_request_t *r);
static void ngx_http_consent_flush_vars(ngx_http_request_t *r);


static std::string_view
ngx_http_consent_sv(ngx_str_t *s)
{
    return std::string_view((const char *) s->data, s->len);
}


/* The splits of the query and the Cookie headers live in the request pool. */
static void *
ngx_http_consent_pool_alloc(void *pool, size_t size) noexcept
{
    return ngx_palloc((ngx_pool_t *) pool, size);
}


static consent::SegmentArena
ngx_http_consent_arena(ngx_http_request_t *r)
{
    return consent::SegmentArena{ ngx_http_consent_pool_alloc, r->pool };
}


ngx_int_t
ngx_http_consent_handler(ngx_http_request_t *r)
{
    ngx_http_consent_ctx_t  *ctx;

    try {
        return ngx_http_consent_handle(r);

    } catch (const std::exception &e) {
        /* only allocation can throw here; fail closed, never unstripped */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "consent: %s", e.what());

        ctx = (ngx_http_consent_ctx_t *)
                  ngx_http_get_module_ctx(r, ngx_http_consent_module);
        if (ctx) {
            ctx->state = NGX_HTTP_CONSENT_FAILED;
        }

        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_consent_handle(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_consent_ctx_t        *ctx;
    ngx_http_consent_loc_conf_t   *clcf;
    ngx_http_consent_main_conf_t  *cmcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_consent_get_ctx(r);

    if (ctx == NULL) {
        clcf = (ngx_http_consent_loc_conf_t *)
                   ngx_http_get_module_loc_conf(r, ngx_http_consent_module);

        if (!clcf->enable) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_consent_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cmcf = (ngx_http_consent_main_conf_t *)
                   ngx_http_get_module_main_conf(r, ngx_http_consent_module);

        ctx->conf = clcf;

        if (ngx_http_consent_extract(r, ctx, cmcf, clcf) != NGX_OK) {
            ctx->state = NGX_HTTP_CONSENT_FAILED;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_consent_has_subject(ctx)) {
            rc = ngx_http_consent_lookup(r, ctx);

            if (rc == NGX_AGAIN) {
                ctx->state = NGX_HTTP_CONSENT_WAITING;
                return NGX_AGAIN;
            }

            if (rc != NGX_OK) {
                ctx->outcome = consent::LookupOutcome::failure;
            }
        }

        ctx->state = NGX_HTTP_CONSENT_LOOKED;
    }

    switch (ctx->state) {

    case NGX_HTTP_CONSENT_WAITING:
        return NGX_AGAIN;

    case NGX_HTTP_CONSENT_DECIDED:
        return NGX_DECLINED;

    case NGX_HTTP_CONSENT_FAILED:
        /*
         * The tables or the request may be half made: an error_page
         * location this request is redirected to must not pass it on.
         */
        return NGX_HTTP_INTERNAL_SERVER_ERROR;

    default: /* NGX_HTTP_CONSENT_LOOKED */
        break;
    }

    clcf = ctx->conf;
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    ngx_http_consent_decide(r, ctx);

    if (ngx_http_consent_rewrite(r, ctx, clcf) != NGX_OK) {
        ctx->state = NGX_HTTP_CONSENT_FAILED;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = NGX_HTTP_CONSENT_DECIDED;
    ngx_http_consent_count_request(r, ctx);

    if (clcf->token_redirect && ctx->has_token_arg && !clcf->dry_run
        && (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)))
    {
        return ngx_http_consent_redirect(r);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_consent_hide_token(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    const consent::Removal  token_only;

    if (ngx_http_consent_set_uri(r, ctx, token_only, 1, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_consent_flush_vars(r);

    return NGX_OK;
}


/* Finds and opens the PURL token and the UID cookie; sets the subject. */
static ngx_int_t
ngx_http_consent_extract(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_main_conf_t *cmcf, ngx_http_consent_loc_conf_t *clcf)
{
    long                        n;
    ngx_uint_t                  i;
    std::string_view            raw, value;
    consent::TokenClaims        uid_claims;
    consent::TokenMemo::Ref     uid_ref;
    u_char                      uid_pseudonym[consent::kPseudonymHex];
    char                        decoded[3 * consent::kMaxTokenText];

    const uint64_t now = (uint64_t) ngx_time();

    uid_pseudonym[0] = '\0';
    ctx->purl_status = consent::TokenStatus::none;
    ctx->uid_status = consent::TokenStatus::none;

    /*
     * The query and the Cookie headers are split here, once: finding the
     * token and the UID cookie needs the split anyway, and the rewrite
     * reuses it after the decision.
     */
    ctx->args = r->args;

    if (ctx->args.len
        && !consent::scan_query(ngx_http_consent_sv(&ctx->args),
                                clcf->strip_args,
                                ngx_http_consent_sv(&clcf->token_arg),
                                &ctx->arg_segments, ngx_http_consent_arena(r)))
    {
        return NGX_ERROR;
    }

    if (consent::token_value(ngx_http_consent_sv(&ctx->args),
                             ctx->arg_segments, &raw))
    {
        ctx->has_token_arg = 1;

        /*
         * From here on, error log lines ("request: ...") must not carry
         * the token, even while the request waits for Redis or when
         * consent_dry_run leaves the request itself unchanged.
         */
        if (ngx_http_consent_hide_token(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }

        /* a token is base64url, but a mail client may percent-encode it */
        n = (long) raw.size();

        if (raw.find('%') != std::string_view::npos) {
            n = consent::percent_decode(raw, decoded, sizeof(decoded));
            raw = std::string_view(decoded, n < 0 ? 0 : (size_t) n);
        }

        ctx->purl_status = (n < 0)
            ? consent::TokenStatus::invalid
            : ngx_http_consent_open(cmcf, raw, consent::ExpectKind::purl, now,
                                    &ctx->claims, &ctx->memo_ref,
                                    ctx->pseudonym);

        if (ctx->purl_status == consent::TokenStatus::valid) {
            ctx->subject_from_purl = 1;

        } else {
            ctx->claims.subject_len = 0;
        }
    }

    if (ngx_http_consent_scan_cookies(r, ctx, clcf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_consent_open_choices(ctx, cmcf, now);

    for (i = 0; i < ctx->ncookies; i++) {
        if (consent::uid_value(ngx_http_consent_sv(&ctx->cookies[i].value),
                               ctx->cookies[i].pairs, &value))
        {
            ctx->carried_uid = 1;
            ctx->uid_status = ngx_http_consent_open(cmcf, value,
                                                    consent::ExpectKind::uid,
                                                    now, &uid_claims, &uid_ref,
                                                    uid_pseudonym);
            break;
        }
    }

    if (ctx->uid_status != consent::TokenStatus::valid) {
        return NGX_OK;
    }

    if (ctx->subject_from_purl) {
        ctx->carried_valid_same =
            ctx->claims.subject_view() == uid_claims.subject_view();

    } else {
        ctx->claims = uid_claims;
        ctx->memo_ref = uid_ref;
        ngx_memcpy(ctx->pseudonym, uid_pseudonym, consent::kPseudonymHex);
    }

    return NGX_OK;
}


/*
 * An anonymous visitor's answers: the first choice cookie, opened through
 * the memo (a returning visitor's costs what a UID cookie does). One that
 * does not open valid is ignored, like a tampered UID cookie; it is
 * removed before the request goes upstream all the same.
 */
static void
ngx_http_consent_open_choices(ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_main_conf_t *cmcf, uint64_t now)
{
    ngx_uint_t            i;
    std::string_view      value;
    consent::TokenStatus  status;

    for (i = 0; i < ctx->ncookies; i++) {
        if (!consent::choice_value(ngx_http_consent_sv(&ctx->cookies[i].value),
                                   ctx->cookies[i].pairs, &value))
        {
            continue;
        }

        if (cmcf->token_memo) {
            status = cmcf->token_memo->open_choice(value, *cmcf->keys, now,
                                                   cmcf->purpose_names,
                                                   cmcf->purposes.nelts,
                                                   &ctx->choices);
        } else {
            /*
             * Here, not at the top: the claims are 2 KB of zeroed names,
             * which every anonymous request would otherwise write to the
             * stack whether it carries a choice cookie or not.
             */
            consent::TokenHeader   hdr;
            consent::ChoiceClaims  claims;

            status = consent::open_choice_token(value, *cmcf->keys, now, &hdr,
                                                &claims);
            if (status == consent::TokenStatus::valid) {
                ctx->choices = consent::resolve_choices(claims,
                                                        cmcf->purpose_names,
                                                        cmcf->purposes.nelts);
            }
        }

        ctx->has_choices = (status == consent::TokenStatus::valid);
        return;
    }
}


/* Splits every Cookie header, when there is a UID cookie or a rule to find. */
static ngx_int_t
ngx_http_consent_scan_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf)
{
    ngx_uint_t                       n;
    ngx_table_elt_t                 *h;
    ngx_http_consent_cookies_t       it;
    ngx_http_consent_cookie_scan_t  *scan;

    if (clcf->uid.name.empty() && clcf->choice.name.empty()
        && clcf->strip_cookies == NULL)
    {
        return NGX_OK;
    }

    n = 0;
    ngx_http_consent_cookies_init(&it, r);

    while (ngx_http_consent_cookies_next(&it)) {
        n++;
    }

    if (n == 0) {
        return NGX_OK;
    }

    scan = (ngx_http_consent_cookie_scan_t *)
               ngx_palloc(r->pool, n * sizeof(ngx_http_consent_cookie_scan_t));
    if (scan == NULL) {
        return NGX_ERROR;
    }

    ctx->cookies = scan;
    ctx->ncookies = 0;

    ngx_http_consent_cookies_init(&it, r);

    while ((h = ngx_http_consent_cookies_next(&it))) {
        scan = new (&ctx->cookies[ctx->ncookies++])
                   ngx_http_consent_cookie_scan_t();
        scan->header = h;
        scan->value = h->value;

        if (!consent::scan_cookie_header(ngx_http_consent_sv(&scan->value),
                                         clcf->strip_cookies, clcf->uid.name,
                                         clcf->choice.name, &scan->pairs,
                                         ngx_http_consent_arena(r)))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * Opens one token, through the worker's memo of tokens that opened valid
 * (crypto/token_memo.h): a returning visitor's cookie is opened once, not
 * on every page. A hit may bring the subject's pseudonym too; `pseudonym`
 * is left alone otherwise.
 */
static consent::TokenStatus
ngx_http_consent_open(ngx_http_consent_main_conf_t *cmcf,
    std::string_view text, consent::ExpectKind kind, uint64_t now,
    consent::TokenClaims *claims, consent::TokenMemo::Ref *ref,
    u_char *pseudonym)
{
    bool                  has_pseudonym;
    consent::TokenHeader  hdr;

    if (cmcf->token_memo == NULL) {
        return consent::open_token(text, kind, *cmcf->keys, now, &hdr, claims);
    }

    return cmcf->token_memo->open(text, kind, *cmcf->keys, now, claims, ref,
                                  (char *) pseudonym, &has_pseudonym);
}


static ngx_uint_t
ngx_http_consent_sec_gpc(ngx_http_request_t *r)
{
    ngx_table_elt_t             *h;
    ngx_http_consent_headers_t   it;

    ngx_http_consent_headers_init(&it, &r->headers_in.headers, "Sec-GPC", 7);

    h = ngx_http_consent_headers_next(&it);

    return h && h->value.len == 1 && h->value.data[0] == '1';
}


/*
 * The decision, from what the extract and lookup steps found. The choice
 * endpoint runs it again once a POST has changed what it stands on.
 */
void
ngx_http_consent_decide(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    consent::UidFacts              facts;
    consent::DecisionInput         in;
    ngx_http_consent_loc_conf_t   *clcf;
    ngx_http_consent_main_conf_t  *cmcf;

    clcf = ctx->conf;
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    in.declared = cmcf->declared;
    in.defaults = cmcf->defaults;
    in.gpc = cmcf->gpc;
    in.sec_gpc = cmcf->gpc && ngx_http_consent_sec_gpc(r);
    in.has_subject = ngx_http_consent_has_subject(ctx);
    in.outcome = ctx->outcome;
    in.record_source = ctx->record_source;
    in.record = &ctx->record;
    in.failure_uses_defaults = cmcf->on_failure_default;
    in.now = (uint64_t) ngx_time();
    in.policy_revision = cmcf->policy_revision;
    in.choices = ctx->has_choices ? &ctx->choices : nullptr;

    ctx->decision = consent::decide(in);

    ctx->uid_action = consent::UidAction::none;

    /*
     * A failure decision is the edge being careful, not the customer
     * deciding: it must not wipe every visitor's cookie during a Redis
     * outage. The cookie still never reaches the upstream.
     */
    if (!clcf->uid.name.empty() && !clcf->dry_run
        && ctx->decision.source != consent::Source::failure)
    {
        facts.subject_from_purl = ctx->subject_from_purl;
        facts.erased = ctx->decision.erased;
        facts.purpose_granted = clcf->uid_purpose < 0
            || (ctx->decision.granted
                & consent::purpose_bit((unsigned) clcf->uid_purpose));
        facts.carried_cookie = ctx->carried_uid;
        facts.carried_valid_same = ctx->carried_valid_same;

        ctx->uid_action = consent::uid_action(facts);
    }
}


/*
 * Removes the token argument, the UID cookie and what the decision does not
 * allow, from the splits the extract step made. With consent_dry_run the
 * request is left as it came (but for the token in the request line that
 * error logs print, see ngx_http_consent_hide_token); $consent_stripped
 * says what would have gone.
 */
static ngx_int_t
ngx_http_consent_rewrite(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    ngx_http_consent_loc_conf_t *clcf)
{
    const consent::Removal  removal = consent::Removal::after_decision(ctx->decision.granted);

    if (!clcf->dry_run
        && consent::removes_any(ctx->arg_segments, removal)
        && ngx_http_consent_set_uri(r, ctx, removal, 0, &ctx->stripped_args)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_consent_rewrite_cookies(r, ctx, clcf, removal) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!clcf->dry_run
        && ngx_http_consent_rewrite_referer(r, ctx, clcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_consent_flush_vars(r);

    return NGX_OK;
}


/*
 * Drops the values nginx cached of $request_uri, $request, $http_cookie and
 * $cookie_NAME (cacheable variables: ngx_http_get_indexed_variable() returns
 * a value once valid). A read in the rewrite phase, before this handler,
 * would otherwise hand the token, the UID cookie and the stripped names to
 * every later reader: proxy_pass with $request_uri, fastcgi_param
 * REQUEST_URI, proxy_set_header Cookie $http_cookie, the access log.
 */
static void
ngx_http_consent_flush_vars(ngx_http_request_t *r)
{
    ngx_uint_t                     i;
    ngx_http_variable_value_t     *vv;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    for (i = 0; i < cmcf->nrewritten_vars; i++) {
        vv = &r->variables[cmcf->rewritten_vars[i]];
        vv->valid = 0;
        vv->not_found = 0;
    }
}


static ngx_int_t
ngx_http_consent_rewrite_cookies(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf,
    const consent::Removal &removal)
{
    u_char                          *out;
    ngx_uint_t                       i, gone;
    ngx_table_elt_t                 *h;
    consent::CookieRewrite           plan, cr;
    ngx_http_consent_headers_t       it;
    ngx_http_consent_cookie_scan_t  *scan;

    if (clcf->dry_run) {
        return NGX_OK;
    }

    /* each header through its split: no walk over the request's headers */
    gone = 0;

    for (i = 0; i < ctx->ncookies; i++) {
        scan = &ctx->cookies[i];

        plan = consent::plan_cookie_rewrite(ngx_http_consent_sv(&scan->value),
                                            scan->pairs, removal);
        if (plan.removed == 0) {
            continue;
        }

        ctx->stripped_cookies += plan.removed;

        if (plan.kept == 0) {
            scan->gone = 1;
            gone++;
            continue;
        }

        /* exactly what is kept: the pool's blocks are only 4 KB */
        out = (u_char *) ngx_pnalloc(r->pool, plan.len + 1);
        if (out == NULL) {
            return NGX_ERROR;
        }

        cr = consent::emit_cookie_header(ngx_http_consent_sv(&scan->value),
                                         scan->pairs, removal, (char *) out);

        out[cr.len] = '\0';
        scan->header->value.data = out;
        scan->header->value.len = cr.len;
    }

    if (gone == 0) {
        return NGX_OK;
    }

    /* a header that keeps nothing goes: that needs the list walk */
    ngx_http_consent_headers_init(&it, &r->headers_in.headers, "Cookie", 6);

    while (gone && (h = ngx_http_consent_headers_next(&it))) {

        for (i = 0; i < ctx->ncookies; i++) {
            if (ctx->cookies[i].header == h && ctx->cookies[i].gone) {
                ngx_http_consent_headers_remove_cookie(r, &it);
                gone--;
                break;
            }
        }
    }

    return NGX_OK;
}


/*
 * The page a subresource request comes from was often opened from a mail
 * link: its Referer carries the token, whatever its host. nginx indexes
 * the Referer headers (the first before 1.23, a chain since); a client
 * that sends a second one on 1.22 sends its own token, not a page's.
 */
static ngx_int_t
ngx_http_consent_rewrite_referer(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, ngx_http_consent_loc_conf_t *clcf)
{
    ngx_uint_t        removed;
    ngx_table_elt_t  *h;

    for (h = r->headers_in.referer; h; ) {

        if (ngx_http_consent_drop_token(r, &h->value, consent::UrlText::url,
                                        &clcf->token_arg, &h->value, &removed)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->stripped_args += removed;

#if (nginx_version >= 1023000)
        h = h->next;
#else
        h = NULL;
#endif
    }

    return NGX_OK;
}


/*
 * `text` without the token argument in its query, through the same scan
 * and emit as the request's own query; `out` may be `text`. *removed
 * counts the arguments that went: none leaves *out as `text` was. A URL
 * without a token, nearly every one, costs one vectorized pass
 * (consent::url_may_name); the rest is here.
 */
static ngx_int_t __attribute__((noinline))
ngx_http_consent_drop_token_found(ngx_http_request_t *r, ngx_str_t *text,
    consent::UrlText kind, ngx_str_t *token_arg, ngx_str_t *out,
    ngx_uint_t *removed)
{
    consent::Segments      table;
    consent::QueryRewrite  qr;

    std::string_view  in = ngx_http_consent_sv(text);
    std::string_view  query = consent::url_query(in, kind);

    if (!consent::scan_query(query, NULL, ngx_http_consent_sv(token_arg),
                             &table, ngx_http_consent_arena(r)))
    {
        return NGX_ERROR;
    }

    /* the kept query, then the whole text; +1: header values end in NUL */
    u_char *kept = (u_char *) ngx_pnalloc(r->pool, query.size() + in.size() + 1);
    if (kept == NULL) {
        return NGX_ERROR;
    }

    qr = consent::emit_query(query, table, consent::Removal{}, (char *) kept);

    if (qr.removed == 0) {
        return NGX_OK;
    }

    u_char *line = kept + query.size();

    out->len = consent::splice_query(in, query,
                                     std::string_view((char *) kept, qr.len),
                                     (char *) line);
    out->data = line;
    line[out->len] = '\0';
    *removed = qr.removed;

    return NGX_OK;
}


ngx_int_t
ngx_http_consent_drop_token(ngx_http_request_t *r, ngx_str_t *text,
    consent::UrlText kind, ngx_str_t *token_arg, ngx_str_t *out,
    ngx_uint_t *removed)
{
    *removed = 0;
    *out = *text;

    if (!consent::url_may_name(ngx_http_consent_sv(text),
                               ngx_http_consent_sv(token_arg)))
    {
        return NGX_OK;
    }

    return ngx_http_consent_drop_token_found(r, text, kind, token_arg, out,
                                             removed);
}


/*
 * $consent_stripped, made when first read rather than on every request:
 * the names the rewrite removes (or, with consent_dry_run, would remove),
 * each once, arguments first, from the extract step's splits.
 */
ngx_int_t
ngx_http_consent_list_stripped(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    size_t      cap;
    ngx_uint_t  i;

    if (ctx->stripped_listed) {
        return NGX_OK;
    }

    const consent::Removal  removal = consent::Removal::after_decision(ctx->decision.granted);

    /* every listed name is at most its own bytes and a comma */
    cap = ctx->args.len + 1;

    for (i = 0; i < ctx->ncookies; i++) {
        cap += ctx->cookies[i].value.len + 1;
    }

    u_char *list = (u_char *) ngx_pnalloc(r->pool, cap);
    if (list == NULL) {
        return NGX_ERROR;
    }

    consent::NameList  names((char *) list, cap);

    consent::list_removed_args(ngx_http_consent_sv(&ctx->args),
                               ctx->arg_segments, removal, &names);

    for (i = 0; i < ctx->ncookies; i++) {
        consent::list_removed_cookies(
            ngx_http_consent_sv(&ctx->cookies[i].value),
            ctx->cookies[i].pairs, removal, &names);
    }

    ctx->stripped.data = list;
    ctx->stripped.len = names.view().size();
    ctx->stripped_listed = 1;

    return NGX_OK;
}


/*
 * Points the request at the arguments `removal` keeps. The raw request
 * target (r->unparsed_uri) is rebuilt rather than invalidated: proxy_pass
 * without a URI part forwards it, and rebuilding keeps every byte of the
 * path as the client sent it, where `set $args` would make nginx re-escape
 * it. The request line is rebuilt too, so that $request in logs and the
 * "request:" of error log lines no longer carry the token. The kept
 * arguments are written straight into the new line, and a request with a
 * token has its line written twice (hidden token, then the rewrite) into
 * one buffer: the request pool's blocks are 4 KB, and nginx's own path
 * fills nearly three.
 */
/* the length of r->unparsed_uri's path, up to its '?' */
static size_t
ngx_http_consent_path_len(ngx_http_request_t *r)
{
    const void  *q;

    q = std::memchr(r->unparsed_uri.data, '?', r->unparsed_uri.len);

    return q ? (size_t) ((u_char *) q - r->unparsed_uri.data)
             : r->unparsed_uri.len;
}


static ngx_int_t
ngx_http_consent_set_uri(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx,
    const consent::Removal &removal, ngx_uint_t request_line_only,
    ngx_uint_t *removed)
{
    u_char                 *p;
    size_t                  path_len, size;
    ngx_str_t               uri, args;
    consent::QueryRewrite   qr;

    path_len = ngx_http_consent_path_len(r);

    /* the kept arguments are never longer than the arguments */
    size = r->method_name.len + 1 + path_len + 1 + ctx->args.len
           + 1 + r->http_protocol.len;

    if (ctx->line_buf.len >= size) {
        p = ctx->line_buf.data;

    } else {
        p = (u_char *) ngx_pnalloc(r->pool, size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ctx->line_buf.data = p;
        ctx->line_buf.len = size;
    }

    /* one buffer: "METHOD SP uri [SP protocol]", the uri shared by both */
    u_char *line = p;

    p = ngx_cpymem(p, r->method_name.data, r->method_name.len);
    *p++ = ' ';

    uri.data = p;
    p = ngx_cpymem(p, r->unparsed_uri.data, path_len);

    args.data = p + 1;
    qr = consent::emit_query(ngx_http_consent_sv(&ctx->args),
                             ctx->arg_segments, removal, (char *) args.data);
    args.len = qr.len;

    if (args.len) {
        *p = '?';
        p = args.data + args.len;

    } else {
        args.data = NULL;
    }

    if (!request_line_only) {
        r->args = args;
    }

    if (removed) {
        *removed = qr.removed;
    }

    uri.len = p - uri.data;

    if (r->http_protocol.len) {
        *p++ = ' ';
        p = ngx_cpymem(p, r->http_protocol.data, r->http_protocol.len);
    }

    r->request_line.data = line;
    r->request_line.len = p - line;

    if (!request_line_only) {
        r->unparsed_uri = uri;
    }

    return NGX_OK;
}


/* to the rewritten target: r->unparsed_uri and r->args, as set_uri left them */
static ngx_int_t
ngx_http_consent_redirect(ngx_http_request_t *r)
{
    u_char           *p, *path;
    size_t            path_len;
    ngx_table_elt_t  *location;

    /* r->unparsed_uri is the rewritten target, its path as the client sent it */
    path = r->unparsed_uri.data;
    path_len = ngx_http_consent_path_len(r);

    /*
     * One leading '/', whatever the client sent: with absolute_redirect off
     * the Location goes out as it is, and browsers read "//host/..." and
     * "/\host/..." as another host. Such a raw path does reach a location
     * here, since nginx matches the normalized path (merged slashes, dot
     * segments resolved): "//evil.example/../r/x" is "/r/x".
     */
    while (path_len && (*path == '/' || *path == '\\')) {
        path++;
        path_len--;
    }

    location = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (location == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = (u_char *) ngx_pnalloc(r->pool, 1 + path_len + 1 + r->args.len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    location->value.data = p;
    *p++ = '/';
    p = ngx_cpymem(p, path, path_len);

    if (r->args.len) {
        *p++ = '?';
        p = ngx_cpymem(p, r->args.data, r->args.len);
    }

    location->value.len = p - location->value.data;
    location->hash = 1;
    ngx_str_set(&location->key, "Location");
#if (nginx_version >= 1023000)
    location->next = NULL;
#endif

    ngx_http_clear_location(r);
    r->headers_out.location = location;

    ngx_http_consent_count_redirect(r);

    return NGX_HTTP_MOVED_TEMPORARILY;
}


