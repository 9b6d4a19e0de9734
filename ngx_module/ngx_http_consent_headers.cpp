/*
 * Header lists: walks by name, and removal of a request header.
 */

#include "ngx_module/ngx_http_consent_headers.h"


void
ngx_http_consent_headers_init(ngx_http_consent_headers_t *it, ngx_list_t *list,
    const char *name, size_t len)
{
    it->list = list;
    it->part = &list->part;
    it->i = 0;
    it->name = name;
    it->len = len;
}


ngx_table_elt_t *
ngx_http_consent_headers_next(ngx_http_consent_headers_t *it)
{
    ngx_table_elt_t  *h;

    for ( ;; ) {

        /* every part is re-read: a removal may have changed it */
        while (it->i >= it->part->nelts) {
            if (it->part->next == NULL) {
                return NULL;
            }

            it->part = it->part->next;
            it->i = 0;
        }

        h = &((ngx_table_elt_t *) it->part->elts)[it->i++];

        if (h->hash && h->key.len == it->len
            && ngx_strncasecmp(h->key.data, (u_char *) it->name, it->len) == 0)
        {
            return h;
        }
    }
}


/*
 * Removes a request header without moving any element of the list:
 * headers_in keeps pointers into it (host, user_agent, ...). Instead the
 * part descriptors change around the header. Two invariants of nginx's
 * lists must survive, or list walkers and ngx_list_push() go wrong:
 *
 *  - no part but the first is ever empty: the walking idiom reads element 0
 *    of the next part without checking its count;
 *  - the last part must not accept pushes beyond its own storage: after a
 *    change it is marked full (l->nalloc = its count), so the next push
 *    allocates a new part.
 *
 * On the one allocation failure possible, the header's value is blanked
 * instead: the cookies are gone either way.
 */
void
ngx_http_consent_headers_remove_cookie(ngx_http_request_t *r,
    ngx_http_consent_headers_t *it)
{
    ngx_uint_t        i;
    ngx_list_t       *list;
    ngx_list_part_t  *part, *prev, *tail;
    ngx_table_elt_t  *elts, *h;

    list = it->list;
    part = it->part;
    elts = (ngx_table_elt_t *) part->elts;
    i = it->i - 1;
    h = &elts[i];

    prev = NULL;

    if (part != &list->part) {
        for (prev = &list->part; prev->next != part; prev = prev->next) {
            /* void */
        }
    }

    if (part->nelts == 1) {

        if (prev == NULL && part->next) {
            /* the first part is embedded in the list: pull the next in */
            if (list->last == part->next) {
                list->last = part;
            }
            *part = *part->next;
            it->i = 0;

        } else if (prev == NULL) {
            /* the only part: give it fresh storage, nothing to preserve */
            void *fresh = ngx_palloc(r->pool, list->nalloc * list->size);
            if (fresh == NULL) {
                h->value.len = 0;
                return;
            }
            part->elts = fresh;
            part->nelts = 0;
            it->i = 0;

        } else {
            prev->next = part->next;
            if (list->last == part) {
                list->last = prev;
                list->nalloc = prev->nelts;
            }
            part->nelts = 0;   /* detached; the caller's walk moves on */
        }

    } else if (i == 0) {
        part->elts = elts + 1;
        part->nelts--;
        it->i = 0;
        if (list->last == part) {
            list->nalloc = part->nelts;
        }

    } else if (i == part->nelts - 1) {
        part->nelts--;
        if (list->last == part) {
            list->nalloc = part->nelts;
        }

    } else {
        tail = (ngx_list_part_t *) ngx_palloc(r->pool, sizeof(ngx_list_part_t));
        if (tail == NULL) {
            h->value.len = 0;
            return;
        }

        tail->elts = elts + i + 1;
        tail->nelts = part->nelts - i - 1;
        tail->next = part->next;

        part->nelts = i;
        part->next = tail;

        if (list->last == part) {
            list->last = tail;
            list->nalloc = tail->nelts;
        }
    }

    /* and from the Cookie index nginx keeps beside the list */

#if (nginx_version >= 1023000)
    ngx_table_elt_t  **pp;

    for (pp = &r->headers_in.cookie; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
#else
    ngx_table_elt_t  **cookies;

    cookies = (ngx_table_elt_t **) r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        if (cookies[i] == h) {
            ngx_memmove(&cookies[i], &cookies[i + 1],
                        (r->headers_in.cookies.nelts - i - 1)
                        * sizeof(ngx_table_elt_t *));
            r->headers_in.cookies.nelts--;
            break;
        }
    }
#endif
}
