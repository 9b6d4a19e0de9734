/*
 * The cookie directives: consent_uid_cookie and consent_choice_cookie.
 * Both take the same attributes, and both are refused when a browser
 * would drop the cookie they describe: a name that is not a token, a
 * __Host- or __Secure- name without what its prefix demands, SameSite=None
 * without Secure.
 */

#include "ngx_module/ngx_http_consent_module.h"

#include "policy/strip_rules.h"


#define ngx_http_consent_conf_error(cf, ...)                                  \
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, __VA_ARGS__)


/* RFC 6265 cookie-name: an RFC 7230 token */
static ngx_uint_t
ngx_http_consent_is_token(ngx_str_t *s)
{
    ngx_uint_t  i;

    if (s->len == 0) {
        return 0;
    }

    for (i = 0; i < s->len; i++) {
        u_char c = s->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9')
              || ngx_strchr("!#$%&'*+-.^_`|~", c) != NULL))
        {
            return 0;
        }
    }

    return 1;
}


/* an attribute value: visible ASCII other than ';' */
static ngx_uint_t
ngx_http_consent_is_attr_value(ngx_str_t *s)
{
    ngx_uint_t  i;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] <= 0x20 || s->data[i] >= 0x7f || s->data[i] == ';') {
            return 0;
        }
    }

    return 1;
}


static ngx_uint_t
ngx_http_consent_has_prefix(std::string_view name, std::string_view prefix)
{
    return name.size() >= prefix.size()
           && consent::ascii_iequal(name.substr(0, prefix.size()), prefix);
}


/*
 * NAME [purpose=P] [domain=D] [path=/] [max_age=TIME]
 * [samesite=lax|strict|none] [secure=on|off], into `a`; purpose= only
 * where `purpose` is not NULL.
 */
static char *
ngx_http_consent_cookie_attrs(ngx_conf_t *cf, ngx_command_t *cmd,
    consent::UidCookieAttrs *a, ngx_int_t *purpose)
{
    time_t                         max_age;
    ngx_str_t                     *value, v;
    ngx_uint_t                     i;
    ngx_http_consent_main_conf_t  *cmcf;

    value = (ngx_str_t *) cf->args->elts;
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (!ngx_http_consent_is_token(&value[1])) {
        ngx_http_consent_conf_error(cf, "\"%V\": invalid cookie name \"%V\"",
                                    &cmd->name, &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    *a = consent::UidCookieAttrs();
    a->name = std::string_view((char *) value[1].data, value[1].len);
    a->path = "/";

    for (i = 2; i < cf->args->nelts; i++) {

        if (purpose && ngx_strncmp(value[i].data, "purpose=", 8) == 0) {
            v.data = value[i].data + 8;
            v.len = value[i].len - 8;

            *purpose = ngx_http_consent_purpose_index(cmcf, &v);
            if (*purpose < 0) {
                ngx_http_consent_conf_error(cf, "\"%V\": purpose \"%V\" is "
                                            "not declared by a "
                                            "\"consent_purpose\" before it",
                                            &cmd->name, &v);
                return (char *) NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "domain=", 7) == 0
                   || ngx_strncmp(value[i].data, "path=", 5) == 0)
        {
            size_t skip = value[i].data[0] == 'd' ? 7 : 5;

            v.data = value[i].data + skip;
            v.len = value[i].len - skip;

            if (v.len == 0 || !ngx_http_consent_is_attr_value(&v)) {
                ngx_http_consent_conf_error(cf, "\"%V\": invalid value in "
                                            "\"%V\"", &cmd->name, &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            if (skip == 7) {
                a->domain = std::string_view((char *) v.data, v.len);
            } else {
                a->path = std::string_view((char *) v.data, v.len);
            }

        } else if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            v.data = value[i].data + 8;
            v.len = value[i].len - 8;

            max_age = ngx_parse_time(&v, 1);
            if (max_age == (time_t) NGX_ERROR || max_age <= 0) {
                ngx_http_consent_conf_error(cf, "\"%V\": invalid duration in "
                                            "\"%V\", expected e.g. 30d",
                                            &cmd->name, &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            a->max_age = (uint64_t) max_age;

        } else if (ngx_strcmp(value[i].data, "samesite=lax") == 0) {
            a->samesite = consent::SameSite::lax;

        } else if (ngx_strcmp(value[i].data, "samesite=strict") == 0) {
            a->samesite = consent::SameSite::strict;

        } else if (ngx_strcmp(value[i].data, "samesite=none") == 0) {
            a->samesite = consent::SameSite::none;

        } else if (ngx_strcmp(value[i].data, "secure=on") == 0) {
            a->secure = true;

        } else if (ngx_strcmp(value[i].data, "secure=off") == 0) {
            a->secure = false;

        } else {
            ngx_http_consent_conf_error(cf, "\"%V\": invalid parameter "
                                        "\"%V\"", &cmd->name, &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    /* what browsers demand, or they drop the cookie without a word */

    if (a->samesite == consent::SameSite::none && !a->secure) {
        ngx_http_consent_conf_error(cf, "\"%V\": \"samesite=none\" requires "
                                    "\"secure=on\"; browsers drop it "
                                    "otherwise", &cmd->name);
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_consent_has_prefix(a->name, "__Host-")
        && (!a->secure || a->path != "/" || !a->domain.empty()))
    {
        ngx_http_consent_conf_error(cf, "\"%V\": a \"__Host-\" cookie "
                                    "requires \"secure=on\", \"path=/\" and "
                                    "no \"domain\"; browsers drop it "
                                    "otherwise", &cmd->name);
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_consent_has_prefix(a->name, "__Secure-") && !a->secure) {
        ngx_http_consent_conf_error(cf, "\"%V\": a \"__Secure-\" cookie "
                                    "requires \"secure=on\"; browsers drop it "
                                    "otherwise", &cmd->name);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * consent_uid_cookie NAME [purpose=P] [domain=D] [path=/] [max_age=TIME]
 *                    [samesite=lax|strict|none] [secure=on|off];
 */
char *
ngx_http_consent_uid_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = (ngx_http_consent_loc_conf_t *) conf;

    if (clcf->uid_set) {
        return (char *) "is duplicate";
    }

    clcf->uid_purpose = -1;

    if (ngx_http_consent_cookie_attrs(cf, cmd, &clcf->uid, &clcf->uid_purpose)
        != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    clcf->uid_set = 1;

    return NGX_CONF_OK;
}


/*
 * consent_choice_cookie NAME [max_age=TIME] [domain=D] [path=/]
 *                       [samesite=lax|strict|none] [secure=on|off];
 */
char *
ngx_http_consent_choice_cookie(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_loc_conf_t *clcf = (ngx_http_consent_loc_conf_t *) conf;

    ngx_http_consent_main_conf_t  *cmcf;

    if (clcf->choice_set) {
        return (char *) "is duplicate";
    }

    if (ngx_http_consent_cookie_attrs(cf, cmd, &clcf->choice, NULL)
        != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    clcf->choice_set = 1;

    /* the main conf checks, once every purpose is known, that a token
     * answering all of them fits a cookie */
    cmcf = (ngx_http_consent_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_consent_module);

    if (cmcf->choice_line == 0) {
        cmcf->choice_file = cf->conf_file->file.name;
        cmcf->choice_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}
