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
 * The request's Cookie headers, read through the index nginx keeps of them
 * beside the list (an array before 1.23, a chain since): no walk over
 * every header. For reading only; removal needs the list walk above.
 */
typedef struct {
#if (nginx_version >= 1023000)
    ngx_table_elt_t    *next;
#else
    ngx_array_t        *index;
    ngx_uint_t          i;
#endif
} ngx_http_consent_cookies_t;


static ngx_inline void
ngx_http_consent_cookies_init(ngx_http_consent_cookies_t *it,
    ngx_http_request_t *r)
{
#if (nginx_version >= 1023000)
    it->next = r->headers_in.cookie;
#else
    it->index = &r->headers_in.cookies;
    it->i = 0;
#endif
}


static ngx_inline ngx_table_elt_t *
ngx_http_consent_cookies_next(ngx_http_consent_cookies_t *it)
{
    ngx_table_elt_t  *h;

#if (nginx_version >= 1023000)
    h = it->next;
    if (h) {
        it->next = h->next;
    }
#else
    h = (it->i < it->index->nelts)
        ? ((ngx_table_elt_t **) it->index->elts)[it->i++] : NULL;
#endif

    return h;
}


/*
 * Removes the Cookie request header the walk stands on, from the list and
 * from nginx's cookie index; the walk goes on with the next header.
 */
void ngx_http_consent_headers_remove_cookie(ngx_http_request_t *r,
    ngx_http_consent_headers_t *it);

#endif /* NGX_HTTP_CONSENT_HEADERS_H_INCLUDED_ */
