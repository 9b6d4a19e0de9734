/*
 * ngx_http_consent_module: consent enforcement at the edge.
 *
 * This file is the nginx glue for configuration: directives, the
 * create/merge functions and the module definition. The work itself
 * (tokens, records, decisions, rewrites) lives in the pure C++ libraries
 * under crypto/, store/ and policy/, which never see an nginx structure.
 *
 * Every function nginx calls catches whatever C++ may throw (in practice
 * std::bad_alloc at configuration time), logs it, and returns an nginx error
 * code: no exception crosses into nginx's C.
 */

#include "ngx_module/ngx_http_consent_nginx.h"

#include <exception>
#include <memory>
#include <string>

#include "crypto/keyfile.h"
#include "crypto/keyring.h"
#include "crypto/pseudonym.h"


typedef struct {
    /* Owned; freed (and wiped) by a cleanup on the configuration pool, so a
     * reload that drops the old cycle also drops its keys. */
    consent::KeyRing          *keys;
    consent::PseudonymKey     *pseudonym_key;

    /* where `consent on` first appeared, to name it in errors */
    ngx_str_t                  enabled_file;
    ngx_uint_t                 enabled_line;
} ngx_http_consent_main_conf_t;


typedef struct {
    ngx_flag_t                 enable;
} ngx_http_consent_loc_conf_t;


static void *ngx_http_consent_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_consent_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_consent_postconfiguration(ngx_conf_t *cf);

static char *ngx_http_consent_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_pseudonym_key(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_consent(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_http_consent_commands[] = {

    { ngx_string("consent_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE23,
      ngx_http_consent_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_pseudonym_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_pseudonym_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_consent,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, enable),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_consent_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_consent_postconfiguration,    /* postconfiguration */

    ngx_http_consent_create_main_conf,     /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_consent_create_loc_conf,      /* create location configuration */
    ngx_http_consent_merge_loc_conf        /* merge location configuration */
};


extern "C" {

ngx_module_t  ngx_http_consent_module = {
    NGX_MODULE_V1,
    &ngx_http_consent_module_ctx,          /* module context */
    ngx_http_consent_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};

}


static void
ngx_http_consent_cleanup_main_conf(void *data)
{
    ngx_http_consent_main_conf_t  *cmcf = (ngx_http_consent_main_conf_t *) data;

    delete cmcf->keys;
    delete cmcf->pseudonym_key;
    cmcf->keys = NULL;
    cmcf->pseudonym_key = NULL;
}


static void *
ngx_http_consent_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_consent_cleanup_main_conf;
    cln->data = cmcf;

    try {
        cmcf->keys = new consent::KeyRing();

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "consent: %s", e.what());
        return NULL;
    }

    return cmcf;
}


static void *
ngx_http_consent_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_consent_loc_conf_t  *clcf;

    clcf = (ngx_http_consent_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_consent_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    clcf->enable = NGX_CONF_UNSET;

    return clcf;
}


static char *
ngx_http_consent_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_consent_loc_conf_t  *prev = (ngx_http_consent_loc_conf_t *) parent;
    ngx_http_consent_loc_conf_t  *conf = (ngx_http_consent_loc_conf_t *) child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_consent_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_consent_main_conf_t  *cmcf;

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (cmcf->enabled_line && cmcf->pseudonym_key == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent on\" in %V:%ui requires "
                      "\"consent_pseudonym_key\" in the http block",
                      &cmcf->enabled_file, cmcf->enabled_line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* consent_key ID FILE [issue]; */
static char *
ngx_http_consent_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_int_t         id;
    ngx_str_t        *value, file;
    ngx_uint_t        issue;
    consent::Suite    suite;
    std::string       err;

    value = (ngx_str_t *) cf->args->elts;

    id = ngx_atoi(value[1].data, value[1].len);
    if (id < 1 || id > 65535) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_key\": invalid key id \"%V\", "
                           "expected 1..65535", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    issue = 0;
    if (cf->args->nelts == 4) {
        if (ngx_strcmp(value[3].data, "issue") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"consent_key\": invalid parameter \"%V\", "
                               "expected \"issue\"", &value[3]);
            return (char *) NGX_CONF_ERROR;
        }
        issue = 1;
    }

    file = value[2];
    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    try {
        consent::KeyBytes  bytes;

        /* file.data is NUL-terminated by ngx_conf_full_name() */
        if (!consent::load_key_file((const char *) file.data, &suite, &bytes,
                                    &err))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"consent_key\": key file \"%V\": %s",
                               &file, err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        std::unique_ptr<consent::Key> key =
            consent::Key::create((uint16_t) id, suite, bytes.b, &err);

        if (key == nullptr || !cmcf->keys->add(std::move(key), issue, &err)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"consent_key\": %s",
                               err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"consent_key\": %s",
                           e.what());
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* consent_pseudonym_key FILE; */
static char *
ngx_http_consent_pseudonym_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t    *value, file;
    std::string   err;

    if (cmcf->pseudonym_key) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;
    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    try {
        consent::KeyBytes  bytes;

        if (!consent::load_pseudonym_key_file((const char *) file.data, &bytes,
                                              &err))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"consent_pseudonym_key\": key file \"%V\": %s",
                               &file, err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        cmcf->pseudonym_key = new consent::PseudonymKey(bytes.b);

    } catch (const std::exception &e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"consent_pseudonym_key\": %s", e.what());
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* consent on|off; remembers where it was turned on for postconfiguration */
static char *
ngx_http_consent(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                          *rv;
    ngx_http_consent_loc_conf_t   *clcf = (ngx_http_consent_loc_conf_t *) conf;
    ngx_http_consent_main_conf_t  *cmcf;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (clcf->enable && cmcf->enabled_line == 0) {
        cmcf->enabled_file = cf->conf_file->file.name;
        cmcf->enabled_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}
