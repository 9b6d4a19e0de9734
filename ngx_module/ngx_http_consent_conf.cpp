/*
 * Directives. Keys are read here, once, by the master process while it
 * parses the configuration, so workers may run unprivileged and never open
 * a key file. Every error names the directive and the reason; nginx adds
 * the file and line.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include <exception>
#include <memory>
#include <string>

#include "crypto/keyfile.h"
#include "policy/query_rewrite.h"


static char *ngx_http_consent_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_pseudonym_key(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_consent_purpose(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_consent_strip(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_on_failure(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_consent_not_empty(ngx_conf_t *cf, void *post,
    void *data);


/* a name that matches nothing, a channel consentctl cannot publish to, a
 * file or TLS name that is no name at all */
static ngx_conf_post_t  ngx_http_consent_not_empty_post =
    { ngx_http_consent_not_empty };


ngx_command_t  ngx_http_consent_commands[] = {

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

    { ngx_string("consent_purpose"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_consent_purpose,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_consent_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_redis_sentinels"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_consent_redis_sentinels,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_redis_read"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_redis_read,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_redis_ssl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.enable),
      NULL },

    { ngx_string("consent_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.verify),
      NULL },

    { ngx_string("consent_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.trusted_certificate),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.certificate),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.certificate_key),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_tls.name),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_prefix),
      NULL },

    { ngx_string("consent_redis_channel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_consent_main_conf_t, redis_channel),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_consent_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_on_failure"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_on_failure,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_consent,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, enable),
      NULL },

    { ngx_string("consent_token_arg"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, token_arg),
      &ngx_http_consent_not_empty_post },

    { ngx_string("consent_uid_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_consent_uid_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_choice_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_consent_choice_cookie,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_choice"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_consent_choice,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_policy_revision"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_consent_policy_revision,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("consent_strip_args"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_consent_strip,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, strip_args),
      NULL },

    { ngx_string("consent_strip_cookies"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_consent_strip,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, strip_cookies),
      NULL },

    { ngx_string("consent_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, dry_run),
      NULL },

    { ngx_string("consent_token_redirect"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_consent_loc_conf_t, token_redirect),
      NULL },

    { ngx_string("consent_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_consent_status,
      0,
      0,
      NULL },

      ngx_null_command
};


#define ngx_http_consent_conf_error(cf, ...)                                  \
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, __VA_ARGS__)


static ngx_http_consent_main_conf_t *
ngx_http_consent_main_conf(ngx_conf_t *cf)
{
    return (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);
}


/* The declared purpose named `name`, or -1. */
ngx_int_t
ngx_http_consent_purpose_index(ngx_http_consent_main_conf_t *cmcf,
    ngx_str_t *name)
{
    ngx_uint_t                   i;
    ngx_http_consent_purpose_t  *p;

    p = (ngx_http_consent_purpose_t *) cmcf->purposes.elts;

    for (i = 0; i < cmcf->purposes.nelts; i++) {
        if (p[i].name.len == name->len
            && ngx_strncmp(p[i].name.data, name->data, name->len) == 0)
        {
            return (ngx_int_t) i;
        }
    }

    return -1;
}


/* Allocates a C++ object that the configuration pool will delete. */
template <typename T>
static T *
ngx_http_consent_conf_new(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    T *obj = new T();

    cln->handler = [](void *data) { delete static_cast<T *>(data); };
    cln->data = obj;

    return obj;
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
        ngx_http_consent_conf_error(cf, "\"consent_key\": invalid key id "
                                    "\"%V\", expected 1..65535", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    issue = 0;
    if (cf->args->nelts == 4) {
        if (ngx_strcmp(value[3].data, "issue") != 0) {
            ngx_http_consent_conf_error(cf, "\"consent_key\": invalid "
                                        "parameter \"%V\", expected \"issue\"",
                                        &value[3]);
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
            ngx_http_consent_conf_error(cf, "\"consent_key\": key file "
                                        "\"%V\": %s", &file, err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        std::unique_ptr<consent::Key> key =
            consent::Key::create((uint16_t) id, suite, bytes.b, &err);

        if (key == nullptr || !cmcf->keys->add(std::move(key), issue, &err)) {
            ngx_http_consent_conf_error(cf, "\"consent_key\": %s",
                                        err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

    } catch (const std::exception &e) {
        ngx_http_consent_conf_error(cf, "\"consent_key\": %s", e.what());
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
            ngx_http_consent_conf_error(cf, "\"consent_pseudonym_key\": key "
                                        "file \"%V\": %s", &file, err.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        cmcf->pseudonym_key = new consent::PseudonymKey(bytes.b);

    } catch (const std::exception &e) {
        ngx_http_consent_conf_error(cf, "\"consent_pseudonym_key\": %s",
                                    e.what());
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* consent_purpose NAME [granted|denied] [gpc]; */
static char *
ngx_http_consent_purpose(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t                   *value;
    ngx_uint_t                   i, seen_default;
    ngx_http_consent_purpose_t  *p;

    value = (ngx_str_t *) cf->args->elts;

    if (value[1].len == 0 || value[1].len > 64) {
        ngx_http_consent_conf_error(cf, "\"consent_purpose\": invalid name "
                                    "\"%V\", expected 1..64 of [a-z0-9_]",
                                    &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        u_char c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            ngx_http_consent_conf_error(cf, "\"consent_purpose\": invalid "
                                        "name \"%V\", expected [a-z0-9_]+",
                                        &value[1]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    /* the record's own fields cannot double as purposes */
    if (ngx_strcmp(value[1].data, "v") == 0
        || ngx_strcmp(value[1].data, "exp") == 0
        || ngx_strcmp(value[1].data, "erased") == 0
        || ngx_strcmp(value[1].data, "rev") == 0)
    {
        ngx_http_consent_conf_error(cf, "\"consent_purpose\": \"%V\" is a "
                                    "field of the consent record, not a "
                                    "purpose name", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_consent_purpose_index(cmcf, &value[1]) >= 0) {
        ngx_http_consent_conf_error(cf, "\"consent_purpose\": duplicate "
                                    "purpose \"%V\"", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->purposes.nelts >= consent::kMaxPurposes) {
        ngx_http_consent_conf_error(cf, "\"consent_purpose\": too many "
                                    "purposes, at most %uz may be declared",
                                    consent::kMaxPurposes);
        return (char *) NGX_CONF_ERROR;
    }

    p = (ngx_http_consent_purpose_t *) ngx_array_push(&cmcf->purposes);
    if (p == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    p->name = value[1];
    p->granted = 0;
    p->gpc = 0;
    seen_default = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        if (!seen_default && ngx_strcmp(value[i].data, "granted") == 0) {
            p->granted = 1;
            seen_default = 1;

        } else if (!seen_default && ngx_strcmp(value[i].data, "denied") == 0) {
            seen_default = 1;

        } else if (!p->gpc && ngx_strcmp(value[i].data, "gpc") == 0) {
            p->gpc = 1;

        } else {
            ngx_http_consent_conf_error(cf, "\"consent_purpose\": invalid "
                                        "parameter \"%V\", expected "
                                        "[granted|denied] [gpc]", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    i = cmcf->purposes.nelts - 1;
    cmcf->declared |= consent::purpose_bit(i);

    if (p->granted) {
        cmcf->defaults |= consent::purpose_bit(i);
    }

    if (p->gpc) {
        cmcf->gpc |= consent::purpose_bit(i);
    }

    return NGX_CONF_OK;
}


/* consent on|off; remembers where it was turned on for init_main_conf */
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

    cmcf = ngx_http_consent_main_conf(cf);

    if (clcf->enable && cmcf->enabled_line == 0) {
        cmcf->enabled_file = cf->conf_file->file.name;
        cmcf->enabled_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


/* consent_strip_args | consent_strip_cookies PURPOSE PATTERN...; */
static char *
ngx_http_consent_strip(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = (char *) conf;

    ngx_int_t                      purpose;
    ngx_str_t                     *value;
    ngx_uint_t                     i;
    std::string                    err;
    consent::StripRules          **rules;
    ngx_http_consent_main_conf_t  *cmcf;

    rules = (consent::StripRules **) (p + cmd->offset);
    value = (ngx_str_t *) cf->args->elts;
    cmcf = ngx_http_consent_main_conf(cf);

    purpose = ngx_http_consent_purpose_index(cmcf, &value[1]);
    if (purpose < 0) {
        ngx_http_consent_conf_error(cf, "\"%V\": purpose \"%V\" is not "
                                    "declared by a \"consent_purpose\" before "
                                    "it", &cmd->name, &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    try {
        if (*rules == NULL) {
            *rules = ngx_http_consent_conf_new<consent::StripRules>(cf);
            if (*rules == NULL) {
                return (char *) NGX_CONF_ERROR;
            }
        }

        for (i = 2; i < cf->args->nelts; i++) {
            if (value[i].len > consent::kMaxArgName) {
                ngx_http_consent_conf_error(cf, "\"%V\": pattern \"%V\" is "
                                            "longer than %uz bytes",
                                            &cmd->name, &value[i],
                                            consent::kMaxArgName);
                return (char *) NGX_CONF_ERROR;
            }

            /*
             * A cookie name ends at the first '=' or ';' and is trimmed of
             * blanks: such a pattern would never match, silently.
             */
            if (cmd->offset == offsetof(ngx_http_consent_loc_conf_t,
                                        strip_cookies)
                && value[i].len
                && (ngx_strlchr(value[i].data, value[i].data + value[i].len,
                                ';') != NULL
                    || ngx_strlchr(value[i].data,
                                   value[i].data + value[i].len, '=')
                       != NULL
                    || value[i].data[0] == ' ' || value[i].data[0] == '\t'
                    || value[i].data[value[i].len - 1] == ' '
                    || value[i].data[value[i].len - 1] == '\t'))
            {
                ngx_http_consent_conf_error(cf, "\"%V\": invalid pattern "
                                            "\"%V\": a cookie name never "
                                            "contains ';' or '=' nor begins "
                                            "or ends with a blank",
                                            &cmd->name, &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            if (!(*rules)->add((unsigned) purpose,
                               std::string_view((char *) value[i].data,
                                                value[i].len),
                               &err))
            {
                ngx_http_consent_conf_error(cf, "\"%V\": invalid pattern "
                                            "\"%V\": %s", &cmd->name,
                                            &value[i], err.c_str());
                return (char *) NGX_CONF_ERROR;
            }
        }

    } catch (const std::exception &e) {
        ngx_http_consent_conf_error(cf, "\"%V\": %s", &cmd->name, e.what());
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* consent_on_failure deny | default; */
static char *
ngx_http_consent_on_failure(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t  *value;

    if (cmcf->on_failure_default != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "deny") == 0) {
        cmcf->on_failure_default = 0;

    } else if (ngx_strcmp(value[1].data, "default") == 0) {
        cmcf->on_failure_default = 1;

    } else {
        ngx_http_consent_conf_error(cf, "\"consent_on_failure\": invalid "
                                    "value \"%V\", expected deny or default",
                                    &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_consent_not_empty(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *s = (ngx_str_t *) data;

    if (s->len == 0) {
        return (char *) "must not be empty";
    }

    return NGX_CONF_OK;
}
