/*
 * The one place the module includes nginx. nginx's headers are C; C++
 * translation units see them through extern "C", and they come first so
 * nginx's feature macros (_GNU_SOURCE, _FILE_OFFSET_BITS) apply to every
 * system header that follows.
 */
#ifndef NGX_HTTP_CONSENT_NGINX_H_INCLUDED_
#define NGX_HTTP_CONSENT_NGINX_H_INCLUDED_

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#endif /* NGX_HTTP_CONSENT_NGINX_H_INCLUDED_ */
