/*
 * What nginx looks up with dlsym() in a dynamic module. nginx's own build
 * generates this file (objs/ngx_http_consent_module_modules.c) when the
 * module is built through the `config` shim; the CMake build compiles this
 * copy instead.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#define NGX_CONSENT_EXPORT __attribute__((visibility("default")))

extern ngx_module_t  ngx_http_consent_module;

NGX_CONSENT_EXPORT ngx_module_t *ngx_modules[] = {
    &ngx_http_consent_module,
    NULL
};

NGX_CONSENT_EXPORT char *ngx_module_names[] = {
    "ngx_http_consent_module",
    NULL
};

NGX_CONSENT_EXPORT char *ngx_module_order[] = {
    NULL
};
