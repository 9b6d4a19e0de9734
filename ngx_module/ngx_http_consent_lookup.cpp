/*
 * The lookup step: the subject's consent record.
 *
 * The contract: NGX_OK when ctx->outcome (and ctx->record, ctx->record_source)
 * are set now; NGX_AGAIN when the answer will come later, in which case the
 * store sets them, sets ctx->state to NGX_HTTP_CONSENT_LOOKED and runs the
 * request's phases again (ngx_http_core_run_phases), which re-enters the
 * handler where it left off. Any other value counts as a store failure.
 *
 * No store is configured yet: every subject has no record, and its
 * purposes take their defaults.
 */

#include "ngx_module/ngx_http_consent_module.h"


ngx_int_t
ngx_http_consent_lookup(ngx_http_request_t *r, ngx_http_consent_ctx_t *ctx)
{
    ctx->outcome = consent::LookupOutcome::no_store;

    return NGX_OK;
}
