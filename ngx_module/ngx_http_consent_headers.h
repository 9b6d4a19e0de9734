/*
 * Walking and editing nginx's header lists (headers_in.headers,
 * headers_out.headers) by name, including removing a request header
 * without moving any other (ngx_http_consent_headers.cpp).
 */

#ifndef NGX_HTTP_CONSENT_HEADERS_H_INCLUDED_
#define NGX_HTTP_CONSENT_HEADERS_H_INCLUDED_

#include "ngx_module/ngx_http_consent_nginx.h"


typedef struct {
    ngx_list_t         *list;
    ngx_list_part_t    *part;
    ngx_uint_t          i;          /* index of the current header + 1 */
    const char         *name;
    size_t              len;
} ngx_http_consent_headers_t;


/* Starts a walk over the headers named `name` (case-insensitive). */
void ngx_http_consent_headers_init(ngx_http_consent_headers_t *it,
    ngx_list_t *list, const char *name, size_t len);

/* The next live header of that name, or NULL. */
ngx_table_elt_t *ngx_http_consent_headers_next(ngx_http_consent_headers_t *it);

/*
 * Removes the Cookie request header the walk stands on, from the list and
 * from nginx's cookie index; the walk goes on with the next header.
 */
void ngx_http_consent_headers_remove_cookie(ngx_http_request_t *r,
    ngx_http_consent_headers_t *it);

#endif /* NGX_HTTP_CONSENT_HEADERS_H_INCLUDED_ */
