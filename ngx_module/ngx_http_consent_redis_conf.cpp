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


/* what ngx_http_consent_redis_param() may take on a line */
#define NGX_HTTP_CONSENT_PARAM_CREDENTIALS  0x01   /* user= password= */
#define NGX_HTTP_CONSENT_PARAM_SERVER       0x02   /* db= *timeout= */
#define NGX_HTTP_CONSENT_PARAM_ROLE         0x04   /* role= */


/*
 * An address: host:port (6379 by default), [ipv6]:port or unix:/path. A
 * host name is resolved here, by the master, so nginx -t refuses a name
 * that does not resolve and workers never make a blocking DNS query. With
 * nginx's `resolver` set, workers resolve it again, without blocking, on
 * every connect (ngx_http_consent_redis.cpp).
 */
static char *
ngx_http_consent_redis_address(ngx_conf_t *cf, const char *directive,
    ngx_str_t *value, ngx_http_consent_redis_server_t *rs)
{
    ngx_str_t  v;
    ngx_url_t  u;

    rs->name = *value;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *value;
    u.default_port = 6379;

    if (value->len >= 5 && ngx_strncmp(value->data, "unix:", 5) == 0) {
        if (value->len == 5) {
            ngx_http_consent_conf_error(cf, "\"%s\": invalid address \"%V\", "
                                        "expected host:port or unix:/path",
                                        directive, value);
            return (char *) NGX_CONF_ERROR;
        }

        /* ngx_parse_url() would say "too long path" without the limit */
        if (value->len - 5 >= sizeof(((struct sockaddr_un *) 0)->sun_path)) {
            v.data = value->data + 5;
            v.len = value->len - 5;
            ngx_http_consent_conf_error(cf, "\"%s\": unix socket path \"%V\" "
                                        "is too long, at most %uz bytes",
                                        directive, &v,
                                        sizeof(((struct sockaddr_un *) 0)
                                                   ->sun_path) - 1);
            return (char *) NGX_CONF_ERROR;
        }

        rs->unix_socket = 1;
    }

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0
        || u.uri.len != 0)
    {
        ngx_http_consent_conf_error(cf, "\"%s\": invalid address \"%V\"%s%s",
                                    directive, value, u.err ? ": " : "",
                                    u.err ? u.err : "");
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

    return NGX_CONF_OK;
}


/* One NAME=VALUE of a line; NGX_DECLINED: not one `allowed` takes. */
static ngx_int_t
ngx_http_consent_redis_param(ngx_conf_t *cf, const char *directive,
    ngx_str_t *value, ngx_http_consent_redis_server_t *rs, ngx_uint_t allowed)
{
    size_t      skip;
    ngx_str_t   v;
    ngx_msec_t  ms;

    if ((allowed & NGX_HTTP_CONSENT_PARAM_SERVER)
        && ngx_strncmp(value->data, "db=", 3) == 0)
    {
        rs->db = ngx_atoi(value->data + 3, value->len - 3);
        if (rs->db == NGX_ERROR) {
            ngx_http_consent_conf_error(cf, "\"%s\": invalid \"%V\", expected "
                                        "db=N", directive, value);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if ((allowed & NGX_HTTP_CONSENT_PARAM_CREDENTIALS)
        && (ngx_strncmp(value->data, "password=", 9) == 0
            || ngx_strncmp(value->data, "user=", 5) == 0))
    {
        skip = value->data[0] == 'p' ? 9 : 5;

        v.data = value->data + skip;
        v.len = value->len - skip;

        /* an empty one would silently send no AUTH, or the wrong one */
        if (v.len == 0) {
            ngx_http_consent_conf_error(cf, "\"%s\": empty %s in \"%V\"",
                                        directive,
                                        skip == 9 ? "password" : "user", value);
            return NGX_ERROR;
        }

        if (skip == 9) {
            rs->password = v;

        } else {
            rs->user = v;
        }

        return NGX_OK;
    }

    if ((allowed & NGX_HTTP_CONSENT_PARAM_SERVER)
        && (ngx_strncmp(value->data, "connect_timeout=", 16) == 0
            || ngx_strncmp(value->data, "timeout=", 8) == 0))
    {
        skip = value->data[0] == 'c' ? 16 : 8;

        v.data = value->data + skip;
        v.len = value->len - skip;

        ms = ngx_parse_time(&v, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            ngx_http_consent_conf_error(cf, "\"%s\": invalid duration in "
                                        "\"%V\", expected e.g. 100ms",
                                        directive, value);
            return NGX_ERROR;
        }

        if (skip == 16) {
            rs->connect_timeout = ms;
        } else {
            rs->timeout = ms;
        }

        return NGX_OK;
    }

    if ((allowed & NGX_HTTP_CONSENT_PARAM_ROLE)
        && ngx_strncmp(value->data, "role=", 5) == 0)
    {
        v.data = value->data + 5;
        v.len = value->len - 5;

        if (v.len == 7 && ngx_strncmp(v.data, "primary", 7) == 0) {
            rs->role = NGX_HTTP_CONSENT_REDIS_PRIMARY;

        } else if (v.len == 7 && ngx_strncmp(v.data, "replica", 7) == 0) {
            rs->role = NGX_HTTP_CONSENT_REDIS_REPLICA;

        } else {
            ngx_http_consent_conf_error(cf, "\"%s\": invalid \"%V\", expected "
                                        "role=primary or role=replica",
                                        directive, value);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    return NGX_DECLINED;
}


static ngx_http_consent_redis_server_t *
ngx_http_consent_redis_server(ngx_conf_t *cf, ngx_array_t **servers)
{
    ngx_http_consent_redis_server_t  *rs;

    if (*servers == NULL) {
        *servers = ngx_array_create(cf->pool, 4,
                                    sizeof(ngx_http_consent_redis_server_t));
        if (*servers == NULL) {
            return NULL;
        }
    }

    rs = (ngx_http_consent_redis_server_t *) ngx_array_push(*servers);
    if (rs == NULL) {
        return NULL;
    }

    ngx_memzero(rs, sizeof(ngx_http_consent_redis_server_t));
    rs->connect_timeout = 200;
    rs->timeout = 100;

    return rs;
}


/*
 * consent_redis ADDRESS [role=primary|replica] [db=N] [user=NAME]
 *               [password=SECRET] [connect_timeout=TIME] [timeout=TIME];
 *
 * One line per server: exactly one role=primary (the default), any number
 * of replicas; or one sentinel:MASTER_NAME line alone, the servers then
 * being the ones the Sentinels name. The primary (or sentinel:) line is
 * kept first in cmcf->redis, the replicas after it in the order listed.
 */
char *
ngx_http_consent_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t                        *value;
    ngx_int_t                         rc;
    ngx_uint_t                        i, allowed;
    ngx_http_consent_redis_server_t  *rs, *first, line;

    value = (ngx_str_t *) cf->args->elts;

    if (cmcf->redis) {
        first = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;

        if (first->master.len
            || (value[1].len >= 9 && ngx_strncmp(value[1].data, "sentinel:", 9)
                                     == 0))
        {
            ngx_http_consent_conf_error(cf, "\"consent_redis\": a sentinel: "
                                        "line must be the only "
                                        "\"consent_redis\" line");
            return (char *) NGX_CONF_ERROR;
        }
    }

    ngx_memzero(&line, sizeof(ngx_http_consent_redis_server_t));
    line.connect_timeout = 200;
    line.timeout = 100;
    line.role = NGX_HTTP_CONSENT_REDIS_PRIMARY;

    if (value[1].len >= 9 && ngx_strncmp(value[1].data, "sentinel:", 9) == 0) {
        line.name = value[1];
        line.master.data = value[1].data + 9;
        line.master.len = value[1].len - 9;

        if (line.master.len == 0) {
            ngx_http_consent_conf_error(cf, "\"consent_redis\": \"sentinel:\" "
                                        "without a master name");
            return (char *) NGX_CONF_ERROR;
        }

        allowed = NGX_HTTP_CONSENT_PARAM_SERVER
                  | NGX_HTTP_CONSENT_PARAM_CREDENTIALS;

    } else {
        if (ngx_http_consent_redis_address(cf, "consent_redis", &value[1],
                                           &line)
            != NGX_CONF_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

        allowed = NGX_HTTP_CONSENT_PARAM_SERVER
                  | NGX_HTTP_CONSENT_PARAM_CREDENTIALS
                  | NGX_HTTP_CONSENT_PARAM_ROLE;
    }

    for (i = 2; i < cf->args->nelts; i++) {
        rc = ngx_http_consent_redis_param(cf, "consent_redis", &value[i],
                                          &line, allowed);
        if (rc == NGX_ERROR) {
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ngx_http_consent_conf_error(cf, "\"consent_redis\": invalid "
                                        "parameter \"%V\"%s", &value[i],
                                        line.master.len
                                        && ngx_strncmp(value[i].data, "role=",
                                                       5) == 0
                                        ? ": a sentinel: line names the "
                                          "primary and its replicas"
                                        : "");
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (line.user.len && line.password.len == 0) {
        ngx_http_consent_conf_error(cf, "\"consent_redis\": \"user=\" "
                                    "requires \"password=\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (cmcf->redis && line.role == NGX_HTTP_CONSENT_REDIS_PRIMARY) {
        first = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;

        if (first->role == NGX_HTTP_CONSENT_REDIS_PRIMARY) {
            ngx_http_consent_conf_error(cf, "\"consent_redis\": a second "
                                        "role=primary line (\"%V\" is the "
                                        "primary already): one primary, any "
                                        "number of role=replica lines",
                                        &first->name);
            return (char *) NGX_CONF_ERROR;
        }
    }

    rs = ngx_http_consent_redis_server(cf, &cmcf->redis);
    if (rs == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *rs = line;

    /* the primary first: its place is where everything else looks */
    if (rs->role == NGX_HTTP_CONSENT_REDIS_PRIMARY && cmcf->redis->nelts > 1) {
        first = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;
        ngx_memmove(first + 1, first,
                    (cmcf->redis->nelts - 1)
                    * sizeof(ngx_http_consent_redis_server_t));
        *first = line;
    }

    return NGX_CONF_OK;
}


/*
 * consent_redis_sentinels ADDRESS... [user=NAME] [password=SECRET];
 *
 * The credentials are the Sentinels' own, for all of them. Their timeouts
 * are those of the sentinel: line.
 */
char *
ngx_http_consent_redis_sentinels(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t                        *value;
    ngx_int_t                         rc;
    ngx_uint_t                        i, n;
    ngx_http_consent_redis_server_t  *rs, creds;

    if (cmcf->redis_sentinels) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;
    ngx_memzero(&creds, sizeof(ngx_http_consent_redis_server_t));
    n = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        rc = ngx_http_consent_redis_param(cf, "consent_redis_sentinels",
                                          &value[i], &creds,
                                          NGX_HTTP_CONSENT_PARAM_CREDENTIALS);
        if (rc == NGX_ERROR) {
            return (char *) NGX_CONF_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        rs = ngx_http_consent_redis_server(cf, &cmcf->redis_sentinels);
        if (rs == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        rs->role = NGX_HTTP_CONSENT_REDIS_SENTINEL;

        if (ngx_http_consent_redis_address(cf, "consent_redis_sentinels",
                                           &value[i], rs)
            != NGX_CONF_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

        n++;
    }

    if (n == 0) {
        ngx_http_consent_conf_error(cf, "\"consent_redis_sentinels\": no "
                                    "Sentinel address");
        return (char *) NGX_CONF_ERROR;
    }

    if (creds.user.len && creds.password.len == 0) {
        ngx_http_consent_conf_error(cf, "\"consent_redis_sentinels\": "
                                    "\"user=\" requires \"password=\"");
        return (char *) NGX_CONF_ERROR;
    }

    rs = (ngx_http_consent_redis_server_t *) cmcf->redis_sentinels->elts;

    for (i = 0; i < n; i++) {
        rs[i].user = creds.user;
        rs[i].password = creds.password;
    }

    return NGX_CONF_OK;
}


/* consent_redis_read primary | replica; */
char *
ngx_http_consent_redis_read(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_consent_main_conf_t *cmcf = (ngx_http_consent_main_conf_t *) conf;

    ngx_str_t  *value;

    if (cmcf->redis_read_replica != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "primary") == 0) {
        cmcf->redis_read_replica = 0;

    } else if (ngx_strcmp(value[1].data, "replica") == 0) {
        cmcf->redis_read_replica = 1;

    } else {
        ngx_http_consent_conf_error(cf, "\"consent_redis_read\": invalid value "
                                    "\"%V\", expected primary or replica",
                                    &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * What only the whole http block shows: the lines agree with each other.
 * Each refusal names the directive and the reason.
 */
static char *
ngx_http_consent_redis_check(ngx_conf_t *cf, ngx_http_consent_main_conf_t *cmcf)
{
    ngx_uint_t                        i;
    ngx_http_consent_redis_server_t  *first, *sentinel;

    ngx_conf_init_value(cmcf->redis_read_replica, 0);

    if (cmcf->redis == NULL) {
        if (cmcf->redis_sentinels) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"consent_redis_sentinels\" requires a "
                          "\"consent_redis sentinel:MASTER_NAME\" line");
            return (char *) NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    first = (ngx_http_consent_redis_server_t *) cmcf->redis->elts;

    if (first->master.len) {
        if (cmcf->redis_sentinels == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"consent_redis %V\" requires "
                          "\"consent_redis_sentinels\"", &first->name);
            return (char *) NGX_CONF_ERROR;
        }

        /* a Sentinel's counters are labelled with its address, too */
        sentinel = (ngx_http_consent_redis_server_t *)
                       cmcf->redis_sentinels->elts;

        for (i = 0; i < cmcf->redis_sentinels->nelts; i++) {
            sentinel[i].connect_timeout = first->connect_timeout;
            sentinel[i].timeout = first->timeout;
        }

        return NGX_CONF_OK;
    }

    if (cmcf->redis_sentinels) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_redis_sentinels\" requires a "
                      "\"consent_redis sentinel:MASTER_NAME\" line");
        return (char *) NGX_CONF_ERROR;
    }

    if (first->role != NGX_HTTP_CONSENT_REDIS_PRIMARY) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"consent_redis\": role=replica lines need a "
                      "role=primary line (writes and the liveness proof go "
                      "to the primary)");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The name a server's certificate must carry, NUL-terminated for SNI:
 * consent_redis_ssl_name, else the host of its address (for a server a
 * Sentinel names, the host it reported). A sentinel: line has none.
 */
ngx_int_t
ngx_http_consent_redis_ssl_name(ngx_pool_t *pool,
    ngx_http_consent_main_conf_t *cmcf, ngx_http_consent_redis_server_t *rs)
{
    ngx_str_t  *name;

    name = cmcf->redis_tls.name.len ? &cmcf->redis_tls.name : &rs->host;

    rs->ssl_name.data = (u_char *) ngx_pnalloc(pool, name->len + 1);
    if (rs->ssl_name.data == NULL) {
        return NGX_ERROR;
    }

    *ngx_cpymem(rs->ssl_name.data, name->data, name->len) = '\0';
    rs->ssl_name.len = name->len;

    return NGX_OK;
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

    if (ngx_http_consent_redis_check(cf, cmcf) != NGX_CONF_OK) {
        return (char *) NGX_CONF_ERROR;
    }

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
    ngx_str_t                        *none;
    ngx_uint_t                        i;
    ngx_array_t                      *passwords, *list;
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
    for (list = cmcf->redis; list; list = (list == cmcf->redis)
                                           ? cmcf->redis_sentinels : NULL)
    {
        server = (ngx_http_consent_redis_server_t *) list->elts;

        for (i = 0; i < list->nelts; i++) {
            if (ngx_http_consent_redis_ssl_name(cf->pool, cmcf, &server[i])
                != NGX_OK)
            {
                return (char *) NGX_CONF_ERROR;
            }
        }
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
