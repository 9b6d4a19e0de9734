/*
 * The consent_redis* directives: the servers, their credentials, and TLS.
 *
 * Everything that can be checked is checked here, by the master, so that
 * `nginx -t` refuses what would only fail later in a worker: addresses,
 * certificate and key files, the TLS context itself. Workers inherit the
 * resolved addresses and the one SSL context.
 */

#include "ngx_module/ngx_http_consent_redis.h"

#include <sys/un.h>


#define ngx_http_consent_conf_error(cf, ...)                                  \
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, __VA_ARGS__)


/*
 * consent_redis ADDRESS [db=N] [user=NAME] [password=SECRET]
 *               [connect_timeout=TIME] [timeout=TIME];
 *
 * A host name is resolved here, by the master, so nginx -t refuses a name
 * that does not resolve and workers never make a blocking DNS query. With
 * nginx's `resolver` set, workers resolve it again, without blocking, on
 * every connect (ngx_http_consent_redis.cpp).
 */
char *
ngx_http_consent_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    size_t                            skip;
    ngx_str_t                        *value, v;
    ngx_url_t                         u;
    ngx_uint_t                        i;
    ngx_msec_t                        ms;
    ngx_http_consent_redis_server_t  *rs;

    if (cmcf->redis) {
        return (char *) "is duplicate";
    }

    cmcf->redis = ngx_array_create(cf->pool, 1,
                                   sizeof(ngx_http_consent_redis_server_t));
    if (cmcf->redis == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    rs = (ngx_http_consent_redis_server_t *) ngx_array_push(cmcf->redis);
    if (rs == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(rs, sizeof(ngx_http_consent_redis_server_t));

    value = (ngx_str_t *) cf->args->elts;
    rs->name = value[1];
    rs->role = NGX_HTTP_CONSENT_REDIS_PRIMARY;
    rs->connect_timeout = 200;
    rs->timeout = 100;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 6379;

    if (value[1].len >= 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len == 5) {
            goto bad_address;
        }

        /* ngx_parse_url() would say "too long path" without the limit */
        if (value[1].len - 5 >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
            v.data = value[1].data + 5;
            v.len = value[1].len - 5;
            ngx_http_consent_conf_error(cf, "\"consent_redis\": unix socket "
                                        "path \"%V\" is too long, at most %uz "
                                        "bytes", &v,
                                        sizeof(((struct sockaddr_un *) 0)
                                                   ->sun_path) - 1);
            return (char *) NGX_CONF_ERROR;
        }

        rs->unix_socket = 1;
    }

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0
        || u.uri.len != 0)
    {
        ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid "
                                    "address \"%V\"%s%s", &value[1],
                                    u.err ? ": " : "", u.err ? u.err : "");
        return (char *) NGX_CONF_ERROR;
    }

    rs->addrs = u.addrs;
    rs->naddrs = u.naddrs;

    if (!rs->unix_socket) {
        rs->port = u.port ? u.port : 6379;
        rs->host = u.host;

        if (rs->host.len > 2 && rs->host.data[0] == '[') {
            /* an IPv6 literal: the name for TLS is the address itself */
            rs->host.data++;
            rs->host.len -= 2;

        } else if (ngx_inet_addr(rs->host.data, rs->host.len) == INADDR_NONE) {
            rs->resolve = 1;
        }
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            rs->db = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (rs->db == NGX_ERROR) {
                ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid "
                                            "\"%V\", expected db=N", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

        } else if (ngx_strncmp(value[i].data, "password=", 9) == 0
                   || ngx_strncmp(value[i].data, "user=", 5) == 0)
        {
            skip = value[i].data[0] == 'p' ? 9 : 5;

            v.data = value[i].data + skip;
            v.len = value[i].len - skip;

            /* an empty one would silently send no AUTH, or the wrong one */
            if (v.len == 0) {
                ngx_http_consent_conf_error(cf, "\"consent_redis\": empty "
                                            "%s in \"%V\"",
                                            skip == 9 ? "password" : "user",
                                            &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            if (skip == 9) {
                rs->password = v;

            } else {
                rs->user = v;
            }

        } else if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0
                   || ngx_strncmp(value[i].data, "timeout=", 8) == 0)
        {
            skip = value[i].data[0] == 'c' ? 16 : 8;

            v.data = value[i].data + skip;
            v.len = value[i].len - skip;

            ms = ngx_parse_time(&v, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid "
                                            "duration in \"%V\", expected "
                                            "e.g. 100ms", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            if (skip == 16) {
                rs->connect_timeout = ms;
            } else {
                rs->timeout = ms;
            }

        } else {
            ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid "
                                        "parameter \"%V\"", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (rs->user.len && rs->password.len == 0) {
        ngx_http_consent_conf_error(cf, "\"consent_redis\": \"user=\" "
                                    "requires \"password=\"");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

bad_address:

    ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid address "
                                "\"%V\", expected host:port or unix:/path",
                                &value[1]);
    return (char *) NGX_CONF_ERROR;
}


#if (NGX_SSL)

/*
 * A file a TLS directive names: readable, and a regular file. OpenSSL would
 * block on a FIFO (and hang nginx -t), and its own messages do not name
 * the directive.
 */
static ngx_int_t
ngx_http_consent_redis_tls_file(ngx_conf_t *cf, const char *directive,
    ngx_str_t *file)
{
    ngx_fd_t         fd;
    ngx_err_t        err;
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY | NGX_FILE_NONBLOCK,
                       NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        ngx_log_error(NGX_LOG_EMERG, cf->log, err,
                      "\"%s\": cannot open \"%V\"", directive, file);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR || !ngx_is_file(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"%s\": \"%V\" is not a regular file", directive, file);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    (void) ngx_close_file(fd);

    return NGX_OK;
}


static void
ngx_http_consent_redis_ssl_cleanup(void *data)
{
    ngx_ssl_cleanup_ctx(data);
}

#endif


/*
 * After the http block: the TLS context. TLS 1.2 and 1.3; the server's
 * chain is verified against consent_redis_ssl_trusted_certificate, else
 * the system's CA store, after the handshake (ngx_http_consent_redis.cpp),
 * so a failure is logged with the reason OpenSSL gives.
 */
char *
ngx_http_consent_redis_init_conf(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_http_consent_redis_tls_t  *tls = &cmcf->redis_tls;

    ngx_conf_init_value(tls->enable, 0);
    ngx_conf_init_value(tls->verify, 1);

    if (!tls->enable) {
        if (tls->certificate.data || tls->certificate_key.data
            || tls->trusted_certificate.data || tls->name.data)
        {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "consent_redis_ssl_* directives are ignored "
                          "without \"consent_redis_ssl on\"");
        }

        return NGX_CONF_OK;
    }

#if (NGX_SSL)
    ngx_str_t                        *none, *name;
    ngx_uint_t                        i;
    ngx_array_t                      *passwords;
    ngx_pool_cleanup_t               *cln;
    ngx_http_consent_redis_server_t  *server;

    if (cmcf->redis == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_redis_ssl\" requires \"consent_redis\"");
        return (char *) NGX_CONF_ERROR;
    }

    if ((tls->certificate.data == NULL) != (tls->certificate_key.data == NULL))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      tls->certificate.data
                      ? "\"consent_redis_ssl_certificate\" requires "
                        "\"consent_redis_ssl_certificate_key\""
                      : "\"consent_redis_ssl_certificate_key\" requires "
                        "\"consent_redis_ssl_certificate\"");
        return (char *) NGX_CONF_ERROR;
    }

    tls->ctx = (ngx_ssl_t *) ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (tls->ctx == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    tls->ctx->log = cf->log;

    if (ngx_ssl_create(tls->ctx, NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(tls->ctx);
        return (char *) NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_consent_redis_ssl_cleanup;
    cln->data = tls->ctx;

    if (tls->certificate.data) {
        if (ngx_http_consent_redis_tls_file(cf, "consent_redis_ssl_certificate",
                                            &tls->certificate)
               != NGX_OK
            || ngx_http_consent_redis_tls_file(cf,
                   "consent_redis_ssl_certificate_key", &tls->certificate_key)
               != NGX_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

        /*
         * One empty password: an encrypted key fails to load, where no
         * password list at all would have OpenSSL ask on the terminal.
         */
        passwords = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));
        if (passwords == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        none = (ngx_str_t *) ngx_array_push(passwords);
        if (none == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        ngx_str_null(none);

        if (ngx_ssl_certificate(cf, tls->ctx, &tls->certificate,
                                &tls->certificate_key, passwords)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"consent_redis_ssl_certificate\": cannot use "
                          "\"%V\" with the key \"%V\" (see above)",
                          &tls->certificate, &tls->certificate_key);
            return (char *) NGX_CONF_ERROR;
        }
    }

    /* the name each server's certificate must carry (and SNI) */
    server = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;

    for (i = 0; i < cmcf->redis->nelts; i++) {
        name = tls->name.len ? &tls->name : &server[i].host;

        server[i].ssl_name.data = (u_char *) ngx_pnalloc(cf->pool,
                                                         name->len + 1);
        if (server[i].ssl_name.data == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        *ngx_cpymem(server[i].ssl_name.data, name->data, name->len) = '\0';
        server[i].ssl_name.len = name->len;
    }

    if (tls->trusted_certificate.data) {
        if (ngx_http_consent_redis_tls_file(cf,
                "consent_redis_ssl_trusted_certificate",
                &tls->trusted_certificate)
            != NGX_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

    } else {
        ngx_str_null(&tls->trusted_certificate);
    }

    /* depth 9: managed services present an intermediate or two */
    if (ngx_ssl_trusted_certificate(cf, tls->ctx, &tls->trusted_certificate,
                                    9)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_redis_ssl_trusted_certificate\": cannot "
                      "use \"%V\" (see above)", &tls->trusted_certificate);
        return (char *) NGX_CONF_ERROR;
    }

    if (tls->trusted_certificate.len == 0
        && SSL_CTX_set_default_verify_paths(tls->ctx->ctx) != 1)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      (char *) "consent_redis_ssl: cannot load the system's "
                      "CA store");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

#else

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "\"consent_redis_ssl on\" requires nginx built with SSL "
                  "(--with-http_ssl_module)");
    return (char *) NGX_CONF_ERROR;

#endif
}


/*
 * nginx's resolver as the http block set it. Without a `resolver`
 * directive, the core module leaves a resolver with no name servers
 * there: names are then only resolved when the configuration is read.
 */
ngx_int_t
ngx_http_consent_redis_postconfiguration(ngx_conf_t *cf,
    ngx_http_consent_main_conf_t *cmcf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (cmcf->redis && clcf->resolver && clcf->resolver->connections.nelts) {
        cmcf->resolver = clcf->resolver;

        /* merged into servers and locations only: unset here by default */
        cmcf->resolver_timeout = clcf->resolver_timeout == NGX_CONF_UNSET_MSEC
                                 ? 30000 : clcf->resolver_timeout;
    }

    return NGX_OK;
}
