/*
 * The consent choice endpoint (consent_choice): a site's banner reads the
 * decision for this visitor (GET) and records new choices (POST).
 *
 * The request has been through the preaccess handler like any other: the
 * endpoint answers with its decision, and a POST changes what that
 * decision stood on. An anonymous visitor's answers go into the choice
 * cookie, sealed here; an identified visitor's go to Redis (write.cpp),
 * the request suspended until Redis acknowledges or the timeout passes.
 * Parsing, the CSRF rule and the documents are the pure core's
 * (policy/choice_endpoint.h).
 */

#include "ngx_module/ngx_http_consent_module.h"

#include <exception>

#include "crypto/choice_token.h"
#include "ngx_module/ngx_http_consent_headers.h"


static ngx_int_t ngx_http_consent_choice_handler(ngx_http_request_t *r);
static void ngx_http_consent_choice_body(ngx_http_request_t *r);
static void ngx_http_consent_choice_written(ngx_http_request_t *r);


/* consent_choice; */
char *
ngx_http_consent_choice(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = (ngx_http_consent_loc_conf_t *) conf;

    ngx_http_core_loc_conf_t      *core;
    ngx_http_consent_main_conf_t  *cmcf;

    if (clcf->choice_endpoint != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    clcf->choice_endpoint = 1;

    core = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    core->handler = ngx_http_consent_choice_handler;

    /* the endpoint decides like `consent on`, which needs the keys */
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (cmcf->enabled_line == 0) {
        cmcf->enabled_file = cf->conf_file->file.name;
        cmcf->enabled_line = cf->conf_file->line;
    }

    cmcf->choice_writes = 1;

    return NGX_CONF_OK;
}


/* consent_policy_revision N; 0 to 4294967295 */
char *
ngx_http_consent_policy_revision(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    off_t       n;
    ngx_str_t  *value;

    if (cmcf->policy_revision != NGX_CONF_UNSET_UINT) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    n = (value[1].len <= 10) ? ngx_atoof(value[1].data, value[1].len)
                             : NGX_ERROR;

    if (n == NGX_ERROR || n > 4294967295LL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"consent_policy_revision\": "
                           "invalid revision \"%V\", expected 0..4294967295",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    cmcf->policy_revision = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/*
 * Once every purpose is declared: the names as the core takes them, and
 * whether a choice cookie answering all of them fits a token.
 */
char *
ngx_http_consent_choice_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    size_t                       bytes;
    ngx_uint_t                   i;
    ngx_http_consent_purpose_t  *p;

    p = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

    cmcf->purpose_names = (std::string_view *)
        ngx_palloc(cf->pool, (cmcf->purposes.nelts + 1)
                             * sizeof(std::string_view));
    if (cmcf->purpose_names == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    bytes = 0;

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        new (&cmcf->purpose_names[i])
            std::string_view((char *) p[i].name.data, p[i].name.len);

        /* 1..64 bytes each, as consent_purpose checked: a token holds it */
        bytes += p[i].name.len;
    }

    if (cmcf->choice_line
        && consent::choice_plaintext_len(cmcf->purposes.nelts, bytes)
           > consent::kMaxSealedPlaintext)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_choice_cookie\" in %V:%ui: the purposes' "
                      "names take %uz bytes, more than a choice cookie holds "
                      "(%uz with %ui purposes); use shorter names",
                      &cmcf->choice_file, cmcf->choice_line, bytes,
                      consent::kMaxSealedPlaintext
                      - consent::choice_plaintext_len(cmcf->purposes.nelts, 0),
                      cmcf->purposes.nelts);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ---- answers ---------------------------------------------------------- */

static ngx_int_t
ngx_http_consent_choice_header(ngx_http_request_t *r, const char *name,
    size_t name_len, u_char *value, size_t len)
{
    ngx_table_elt_t  *h;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = name_len;
    h->value.data = value;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* Sends a JSON document, never to be stored by any cache. */
static ngx_int_t
ngx_http_consent_choice_send(ngx_http_request_t *r, ngx_uint_t status,
    u_char *doc, size_t len)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = (off_t) len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_consent_choice_header(r, "Cache-Control", 13,
                                       (u_char *) "no-store", 8)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_NOT_ALLOWED
        && ngx_http_consent_choice_header(r, "Allow", 5,
                                          (u_char *) "GET, POST", 9)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = (ngx_buf_t *) ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = doc;
    b->last = doc + len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_consent_choice_error(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view reason, std::string_view name)
{
    u_char  *doc;

    doc = (u_char *) ngx_pnalloc(r->pool,
                                 consent::error_document_max(reason, name));
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_consent_choice_send(r, status, doc,
               consent::write_error_document(reason, name, (char *) doc));
}


/* The GET document: the decision for this request as it stands. */
static ngx_int_t
ngx_http_consent_choice_document(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    u_char                        *doc;
    consent::ChoiceDocument        d;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    d.names = cmcf->purpose_names;
    d.count = cmcf->purposes.nelts;
    d.granted = ctx->decision.granted;
    d.source = consent::source_name(ctx->decision.source);
    d.has_revision = ctx->decision.has_revision;
    d.revision = ctx->decision.revision;
    d.reprompt = ctx->decision.reprompt;
    d.identified = ngx_http_consent_has_subject(ctx) && !ctx->decision.erased;

    doc = (u_char *) ngx_pnalloc(r->pool,
                                 consent::choice_document_max(d.names, d.count));
    if (doc == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_consent_choice_send(r, NGX_HTTP_OK, doc,
                                        consent::write_choice_document(d,
                                                                 (char *) doc));
}


/* ---- the request ------------------------------------------------------- */

static std::string_view
ngx_http_consent_choice_sv(ngx_str_t *s)
{
    return std::string_view((const char *) s->data, s->len);
}


static ngx_table_elt_t *
ngx_http_consent_choice_find(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_http_consent_headers_t  it;

    ngx_http_consent_headers_init(&it, &r->headers_in.headers, name, len);

    return ngx_http_consent_headers_next(&it);
}


static ngx_int_t
ngx_http_consent_choice_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_table_elt_t         *origin, *site;
    std::string_view         o, s, host;
    ngx_http_consent_ctx_t  *ctx;

    try {
        ctx = ngx_http_consent_get_ctx(r);

        if (ctx == NULL || ctx->state != NGX_HTTP_CONSENT_DECIDED) {
            /* a subrequest, or a decision that failed (already a 500) */
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_consent_choice_document(r, ctx);
        }

        if (!(r->method & NGX_HTTP_POST)) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_consent_choice_error(r, NGX_HTTP_NOT_ALLOWED,
                                                 "method not allowed", "");
        }

        /* the refusals that need no body come before reading it */

        origin = ngx_http_consent_choice_find(r, "Origin", 6);
        site = ngx_http_consent_choice_find(r, "Sec-Fetch-Site", 14);

        if (origin) {
            o = ngx_http_consent_choice_sv(&origin->value);
        }

        if (site) {
            s = ngx_http_consent_choice_sv(&site->value);
        }

        if (r->headers_in.host) {
            host = ngx_http_consent_choice_sv(&r->headers_in.host->value);
        }

        if (consent::cross_site_post(origin ? &o : NULL, site ? &s : NULL,
                                     host))
        {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_consent_choice_error(r, NGX_HTTP_FORBIDDEN,
                                                 "cross-site request", "");
        }

        if (r->headers_in.content_type == NULL
            || consent::body_type(ngx_http_consent_choice_sv(
                   &r->headers_in.content_type->value))
               == consent::BodyType::unsupported)
        {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_consent_choice_error(r,
                       NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                       "expected application/x-www-form-urlencoded or "
                       "application/json", "");
        }

        if (r->headers_in.content_length_n > (off_t) consent::kMaxChoiceBody) {
            rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }

            return ngx_http_consent_choice_error(r,
                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                       "body over 4096 bytes", "");
        }

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_consent_choice_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "consent: %s", e.what());
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The body, copied into `buf` (kMaxChoiceBody bytes): a body too big
 * gives -1. nginx keeps it in memory unless client_body_buffer_size is
 * below it, or client_body_in_file_only is on: then it is read back.
 */
static ssize_t
ngx_http_consent_choice_copy_body(ngx_http_request_t *r, u_char *buf)
{
    size_t        len, n;
    ssize_t       got;
    ngx_chain_t  *cl;

    len = 0;

    if (r->request_body == NULL) {
        return 0;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        ngx_buf_t *b = cl->buf;

        if (ngx_buf_in_memory(b)) {
            n = b->last - b->pos;

            if (len + n > consent::kMaxChoiceBody) {
                return -1;
            }

            ngx_memcpy(buf + len, b->pos, n);
            len += n;
            continue;
        }

        if (b->in_file && b->file) {
            n = (size_t) (b->file_last - b->file_pos);

            if (len + n > consent::kMaxChoiceBody) {
                return -1;
            }

            got = ngx_read_file(b->file, buf + len, n, b->file_pos);
            if (got != (ssize_t) n) {
                return -2;
            }

            len += n;
        }
    }

    return (ssize_t) len;
}


static ngx_int_t
ngx_http_consent_choice_set_cookie(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx, const consent::Choices &choices)
{
    size_t                         len;
    u_char                        *p;
    ngx_uint_t                     i;
    consent::ChoiceClaims          claims;
    ngx_http_consent_main_conf_t  *cmcf;
    char                           token[consent::kMaxChoiceTextOut];

    const consent::UidCookieAttrs  &attrs = ctx->conf->choice;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    const consent::Key *key = cmcf->keys->issuer();
    if (key == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "consent: no \"consent_key\" to seal a choice cookie "
                      "with");
        return NGX_ERROR;
    }

    /* by name: a later configuration reads them as they were given */
    for (i = 0; i < cmcf->purposes.nelts; i++) {
        if (choices.answered & consent::purpose_bit(i)) {
            claims.add(cmcf->purpose_names[i],
                       (choices.granted & consent::purpose_bit(i)) != 0);
        }
    }

    claims.revision = (uint32_t) choices.revision;
    claims.issued_at = (uint64_t) ngx_time();
    claims.expires_at = claims.issued_at + attrs.max_age;

    len = consent::seal_choice_token(*key, claims, nullptr, token,
                                     sizeof(token));
    if (len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "consent: could not seal a choice cookie");
        return NGX_ERROR;
    }

    p = (u_char *) ngx_pnalloc(r->pool, consent::set_cookie_max_len(attrs, len));
    if (p == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_consent_choice_header(r, "Set-Cookie", 10, p,
               consent::format_set_cookie(attrs, std::string_view(token, len),
                                          false, (char *) p));
}


static ngx_int_t
ngx_http_consent_choice_post(ngx_http_request_t *r,
    ngx_http_consent_ctx_t *ctx)
{
    ssize_t                        len;
    ngx_int_t                      rc;
    consent::BodyParse             parsed;
    consent::Choices               choices;
    ngx_http_consent_main_conf_t  *cmcf;
    u_char                         body[consent::kMaxChoiceBody];

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    len = ngx_http_consent_choice_copy_body(r, body);

    if (len == -1) {
        return ngx_http_consent_choice_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "body over 4096 bytes",
                   "");
    }

    if (len < 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    consent::parse_choice_body(
        consent::body_type(ngx_http_consent_choice_sv(
            &r->headers_in.content_type->value)),
        std::string_view((char *) body, (size_t) len), cmcf->purpose_names,
        cmcf->purposes.nelts, &parsed);

    switch (parsed.error) {
    case consent::BodyError::ok:
        break;
    case consent::BodyError::unknown_purpose:
        return ngx_http_consent_choice_error(r, NGX_HTTP_BAD_REQUEST,
                                             "unknown purpose", parsed.culprit);
    case consent::BodyError::bad_value:
        return ngx_http_consent_choice_error(r, NGX_HTTP_BAD_REQUEST,
                   "expected 1 or 0 (form) or true or false (JSON) for",
                   parsed.culprit);
    default:
        return ngx_http_consent_choice_error(r, NGX_HTTP_BAD_REQUEST,
                                             "malformed body", parsed.culprit);
    }

    if (ngx_http_consent_has_subject(ctx)) {
        if (ctx->decision.erased) {
            return ngx_http_consent_choice_error(r, NGX_HTTP_CONFLICT,
                                                 "erased", "");
        }

        ctx->change = parsed.change;

        rc = ngx_http_consent_write_choice(r, ctx,
                                           ngx_http_consent_choice_written);
        if (rc == NGX_AGAIN) {
            return NGX_DONE;
        }

        return ngx_http_consent_choice_error(r,
                   NGX_HTTP_SERVICE_UNAVAILABLE,
                   "consent could not be stored, nothing changed", "");
    }

    choices = consent::merge_choices(ctx->has_choices ? &ctx->choices : NULL,
                                     cmcf->policy_revision, parsed.change);

    if (ngx_http_consent_choice_set_cookie(r, ctx, choices) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->choices = choices;
    ctx->has_choices = 1;
    ngx_http_consent_decide(r, ctx);

    return ngx_http_consent_choice_document(r, ctx);
}


static void
ngx_http_consent_choice_body(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_consent_ctx_t  *ctx;

    try {
        ctx = ngx_http_consent_get_ctx(r);
        rc = ngx_http_consent_choice_post(r, ctx);

    } catch (const std::exception &e) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "consent: %s", e.what());
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DONE) {
        return;   /* Redis has it; ngx_http_consent_choice_written follows */
    }

    ngx_http_finalize_request(r, rc);
}


/* Redis answered an identified visitor's change, or the timeout passed. */
static void
ngx_http_consent_choice_written(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    consent::Record                record;
    ngx_http_consent_ctx_t        *ctx;
    ngx_http_consent_main_conf_t  *cmcf;

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_consent_get_ctx(r);
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_http_consent_module);

    if (ctx->written == NGX_DECLINED) {
        rc = ngx_http_consent_choice_error(r, NGX_HTTP_CONFLICT, "erased", "");

    } else if (ctx->written != NGX_OK) {
        rc = ngx_http_consent_choice_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                 "consent could not be stored, nothing changed", "");

    } else {
        /*
         * The record as the script left it: the fields of a record of the
         * current revision (an older one's were dropped), the change on
         * top, the new version and revision.
         */
        if (ctx->outcome == consent::LookupOutcome::record
            && ctx->record.rev >= cmcf->policy_revision)
        {
            record = ctx->record;

        } else if (ctx->outcome == consent::LookupOutcome::record) {
            record.has_exp = ctx->record.has_exp;
            record.exp = ctx->record.exp;
        }

        const consent::ChoiceChange  &c = ctx->change;

        record.granted = (record.granted & ~c.named) | c.granted;
        record.denied = (record.denied & ~c.named) | (c.named & ~c.granted);
        record.version = ctx->written_version;
        record.rev = cmcf->policy_revision;
        record.erased = false;

        ctx->record = record;
        ctx->outcome = consent::LookupOutcome::record;
        ctx->record_source = consent::Source::redis;
        ngx_http_consent_decide(r, ctx);

        rc = ngx_http_consent_choice_document(r, ctx);
    }

    ngx_http_finalize_request(r, rc);
}
